"""How objects look as bytes: the JSON and msgpack codecs."""
