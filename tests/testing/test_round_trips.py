"""Round trips of every version pair (rollsafe.testing.roundtrips) and the
strategies behind them: payloads of any version decode, a sound history
passes, and a broken one is caught with the payload that shows it."""

import uuid
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rollsafe
from rollsafe import (
    Added,
    Custom,
    EnumValuesAdded,
    History,
    NestedVersion,
    Registry,
    Removed,
    Renamed,
    Retyped,
    Version,
    VersionedObject,
    field,
)
from rollsafe.errors import RoundTripError
from rollsafe.testing.roundtrips import assert_round_trips, check_round_trips
from rollsafe.testing.strategies import instances, version_payloads

sound = Registry("sound")


class Part(VersionedObject, registry=sound):
    """A nested class with a history of its own."""

    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Parts have a weight", Added("weight")))
    code: str = field(max_length=8)
    weight: float = 0.0


class Machine(VersionedObject, registry=sound):
    """Every mechanical kind of change, each declared as it should be."""

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "Machines are named", Renamed("label", "name")),
        Version("1.2", "Paused machines",
                EnumValuesAdded("state", ["paused"], fallback={"paused": "on"}),
                NestedVersion("parts", "1.1")),
        Version("1.3", "No more legacy flag", Removed("legacy", bool, default=False)),
        Version("1.4", "Notes may be longer",
                Retyped("note", str | None, max_length=10, upgrade=lambda v: v,
                        downgrade=lambda v: v if v is None else v[:10])),
    )
    id: uuid.UUID
    name: str
    state: Literal["on", "off", "paused"] = "off"
    parts: list[Part] = field(default_factory=list)
    note: str | None = field(default=None, max_length=40)


def broken_registry(upgrade: Any, downgrade: Any, annotation: Any = str) -> Registry:
    reg = Registry("broken")

    class Gauge(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0", "Initial version"),
                           Version("1.1", "Readings are numbers",
                                   Retyped("reading", annotation, upgrade=upgrade,
                                           downgrade=downgrade)))
        reading: int = 0

    return reg


def test_a_sound_history_passes_every_version_pair() -> None:
    assert check_round_trips(sound, max_examples=10) == []
    assert_round_trips(Machine, max_examples=5)


def test_a_converter_that_refuses_old_values_is_caught_once_per_version() -> None:
    reg = broken_registry(upgrade=int, downgrade=str)
    problems = check_round_trips(reg, max_examples=10)
    # Payloads of 1.0 cannot even be read: one line for 1.0, not one per pair.
    assert len(problems) == 1, problems
    assert problems[0].startswith("Gauge 1.0 payload cannot be read by 1.1")
    assert "invalid literal for int()" in problems[0]
    assert "payload: {" in problems[0]


def test_a_converter_that_loses_data_is_caught_and_raised() -> None:
    reg = broken_registry(upgrade=len, downgrade=lambda v: "x" * min(max(v, 0), 3))
    with pytest.raises(RoundTripError, match=r"Gauge 1.0 -> 1.1 -> 1.0 -> 1.0: field "
                                             r"'reading' was '.+', came back 'x+'"):
        assert_round_trips(reg, max_examples=20)


def test_a_custom_change_that_alters_every_value_is_caught() -> None:
    reg = Registry("custom")

    def exclaim(values: dict[str, Any]) -> None:
        values["text"] += "!"

    class Banner(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0", "Initial version"),
                           Version("1.1", "Excited", Custom("exclaim", upgrade=exclaim,
                                                            downgrade=lambda v: None)))
        text: str

    problems = check_round_trips(Banner, max_examples=5)
    # 1.0 payloads come back with a "!"; 1.0 payloads sent by 1.1 are not stable.
    assert [p.split(":")[0] for p in problems] == ["Banner 1.0 -> 1.1 -> 1.0 -> 1.0",
                                                  "Banner 1.1 -> 1.1 -> 1.0 -> 1.1 -> 1.0"]
    assert "field 'text' was '', came back '!!'" in problems[0]  # up twice on the way


@pytest.mark.parametrize("version", Machine.VERSIONS.numbers)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_version_payloads_are_valid_envelopes_of_that_version(version: str,
                                                            data: st.DataObject) -> None:
    payload = data.draw(version_payloads(Machine, version))
    assert payload[sound.key_version] == version
    assert set(payload[sound.key_data]) == set(rollsafe.schema_of(Machine, version))
    decoded = rollsafe.from_primitive(payload, Machine)
    assert type(decoded) is Machine


@pytest.mark.parametrize("version", Machine.VERSIONS.numbers)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_instances_of_any_version_are_valid_and_survive_it(version: str,
                                                          data: st.DataObject) -> None:
    obj = data.draw(instances(Machine, version))
    assert type(obj) is Machine
    sent = rollsafe.to_primitive(obj, version)
    assert rollsafe.to_primitive(rollsafe.from_primitive(sent, Machine), version) == sent


def test_version_payloads_reach_values_no_downgrade_produces() -> None:
    # Today's code sends the removed flag as False; a 1.2 service sent either.
    @settings(max_examples=100, deadline=None)
    @given(version_payloads(Machine, "1.2"))
    def legacy_is_false(payload: dict[str, Any]) -> None:
        assert payload[sound.key_data]["legacy"] is False

    with pytest.raises(AssertionError):
        legacy_is_false()


def test_version_payloads_refuses_an_unknown_version() -> None:
    from hypothesis.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=r"Machine has no version '9\.9'"):
        version_payloads(Machine, "9.9")
