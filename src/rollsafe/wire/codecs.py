"""Codecs: bytes in, object out, and back.

A codec is bound to what it may decode (one class, or every class of a
registry) and to the limits that bound decoding. It encodes through
:func:`rollsafe.to_primitive` and decodes through
:func:`rollsafe.from_primitive`, so both codecs carry exactly the same
envelope. Decoding never runs code from the payload (no pickle, no eval), and
every failure is a :class:`rollsafe.DecodeError`.

The drivers (orjson, msgpack) are imported when a codec is first built, not
when rollsafe is imported.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from rollsafe.errors import DecodeError, EncodeError, LimitExceededError
from rollsafe.objects.api import from_primitive, to_primitive
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.limits import DEFAULT_LIMITS, DecodeLimits
from rollsafe.objects.registry import Registry

__all__ = ["Codec", "JsonCodec", "MsgpackCodec"]

T = TypeVar("T", bound=VersionedObject)


class Codec(Generic[T]):
    """Base of the codecs: turns objects into bytes and back.

    ``target`` is the class a payload must hold, or a registry whose
    classes it may hold."""

    #: Media type of the encoded bytes.
    media_type = "application/octet-stream"

    def __init__(self, target: type[T] | Registry, *,
                 limits: DecodeLimits = DEFAULT_LIMITS) -> None:
        self.target = target
        self.limits = limits

    def encode(self, obj: T, version: str | None = None, *,
               manifest: dict[str, str] | None = None) -> bytes:
        """``obj`` as bytes, at ``version`` / per ``manifest`` (see
        :func:`rollsafe.to_primitive`)."""
        primitive = to_primitive(obj, version, manifest=manifest)
        try:
            return self.dumps(primitive)
        except (TypeError, ValueError, OverflowError) as exc:  # UnicodeEncodeError included
            raise EncodeError(f"{type(obj).__name__} cannot be written as "
                              f"{self.media_type}: {exc}") from None

    def decode(self, payload: bytes) -> T:
        """The object held in ``payload``; raises :class:`DecodeError`
        (never anything else) when it is malformed or over a limit."""
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise DecodeError("", f"expected bytes, got {type(payload).__name__}")
        if len(payload) > self.limits.max_bytes:
            raise LimitExceededError(
                "", f"payload of {len(payload)} bytes is over max_bytes {self.limits.max_bytes}")
        primitive = self.loads(bytes(payload))
        return from_primitive(primitive, self.target, limits=self.limits)  # type: ignore[return-value]

    def dumps(self, primitive: Any) -> bytes:
        """Primitive -> bytes."""
        raise NotImplementedError

    def loads(self, payload: bytes) -> Any:
        """Bytes -> primitive; raises :class:`DecodeError` on bad bytes."""
        raise NotImplementedError


class JsonCodec(Codec[T]):
    """JSON (UTF-8), through orjson."""

    media_type = "application/json"

    def __init__(self, target: type[T] | Registry, *,
                 limits: DecodeLimits = DEFAULT_LIMITS) -> None:
        import orjson

        super().__init__(target, limits=limits)
        self._dumps = orjson.dumps
        self._loads = orjson.loads
        self._error = orjson.JSONDecodeError

    def dumps(self, primitive: Any) -> bytes:
        return self._dumps(primitive)

    def loads(self, payload: bytes) -> Any:
        try:
            return self._loads(payload)
        except self._error as exc:
            if "recursion" in str(exc) or "depth" in str(exc):
                raise LimitExceededError(
                    "", f"JSON nested deeper than the parser allows (max_depth is "
                        f"{self.limits.max_depth}): {exc}") from None
            raise DecodeError("", f"not valid JSON: {exc}") from None


class MsgpackCodec(Codec[T]):
    """msgpack, with string keys only and no extension types."""

    media_type = "application/msgpack"

    def __init__(self, target: type[T] | Registry, *,
                 limits: DecodeLimits = DEFAULT_LIMITS) -> None:
        import msgpack

        super().__init__(target, limits=limits)
        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb
        self._stack_error = msgpack.StackError

    def dumps(self, primitive: Any) -> bytes:
        return self._packb(primitive, use_bin_type=True)  # type: ignore[no-any-return]

    def loads(self, payload: bytes) -> Any:
        # Lengths are bounded by max_bytes here (an item takes at least a
        # byte); max_items is applied per collection by the decoder, which
        # tells an object's field map from a collection.
        limit = self.limits.max_bytes
        try:
            return self._unpackb(payload, raw=False, strict_map_key=True, use_list=True,
                                 max_array_len=limit, max_map_len=limit, max_str_len=limit,
                                 max_bin_len=limit, max_ext_len=0)
        except self._stack_error:
            raise LimitExceededError(
                "", f"msgpack nested deeper than the parser allows (max_depth is "
                    f"{self.limits.max_depth})") from None
        except Exception as exc:  # msgpack raises many types; none may escape
            raise DecodeError("", f"not valid msgpack: {type(exc).__name__}: {exc}") from None
