"""Codec behaviours beyond the round trip: encoding failures and int range."""

from __future__ import annotations

import pytest

import rollsafe
from rollsafe import Registry, VersionedObject, field

reg = Registry("codecs")


class Note(VersionedObject, registry=reg):
    text: str
    counts: list[int] = field(default_factory=list)
    by_name: dict[str, int] = field(default_factory=dict)


CODECS = [rollsafe.JsonCodec(reg), rollsafe.MsgpackCodec(reg)]


@pytest.mark.parametrize("codec", CODECS, ids=["json", "msgpack"])
def test_a_lone_surrogate_fails_to_encode_with_encode_error(codec: rollsafe.Codec) -> None:
    note = Note(text="broken \ud800 text")
    with pytest.raises(rollsafe.EncodeError, match="Note cannot be written"):
        codec.encode(note)


@pytest.mark.parametrize("codec", CODECS, ids=["json", "msgpack"])
def test_ints_at_the_64_bit_edges_cross_both_codecs(codec: rollsafe.Codec) -> None:
    note = Note(text="edges", counts=[-(2**63), 2**63 - 1], by_name={"max": 2**63 - 1})
    assert codec.decode(codec.encode(note)) == note


@pytest.mark.parametrize("values", [[1, 2**63], [-(2**63) - 1]], ids=["over", "under"])
def test_list_of_ints_beyond_64_bits_is_refused_at_construction(values: list[int]) -> None:
    with pytest.raises(rollsafe.ValidationError, match="signed 64-bit range"):
        Note(text="big", counts=values)


def test_dict_of_ints_beyond_64_bits_is_refused_at_assignment() -> None:
    note = Note(text="big")
    with pytest.raises(rollsafe.ValidationError, match="signed 64-bit range"):
        note.by_name = {"x": 2**64}
    assert note.by_name == {}


def test_int_appended_in_place_beyond_64_bits_is_refused_when_sent() -> None:
    note = Note(text="big", counts=[1])
    note.counts.append(2**64)
    with pytest.raises(rollsafe.ValidationError) as caught:
        rollsafe.to_primitive(note)
    assert caught.value.path == "Note.counts[1]"


def test_decoded_int_beyond_64_bits_is_a_decode_error_with_path() -> None:
    primitive = rollsafe.to_primitive(Note(text="x", counts=[1, 2]))
    primitive["versioned_object.data"]["counts"][1] = 2**64
    with pytest.raises(rollsafe.DecodeError) as caught:
        rollsafe.from_primitive(primitive, reg)
    assert caught.value.path == "Note.counts[1]"
