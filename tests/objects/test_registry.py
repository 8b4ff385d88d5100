"""Registries: explicit holders of the classes of one namespace, several
versions of one name side by side, and payloads exchanged between the
registries of two releases."""

from typing import Literal

import pytest

from rollsafe import (
    Added,
    DecodeError,
    DefinitionError,
    EnumValuesAdded,
    History,
    NestedVersion,
    PayloadVersionError,
    Registry,
    Renamed,
    UnknownObjectError,
    Version,
    VersionedObject,
    field,
    from_primitive,
    reset_changes,
    to_primitive,
    version_manifest,
    what_changed,
)

VERSION = "versioned_object.version"
DATA = "versioned_object.data"


# Two releases of the same service. Each helper declares its classes in the
# registry it is given, so release N and N+1 can live side by side.

def release_1(reg: Registry) -> dict[str, type[VersionedObject]]:
    class Port(VersionedObject, registry=reg):
        number: int

    class App(VersionedObject, registry=reg):
        name: str
        owner: str
        status: Literal["running", "stopped"] = "running"
        ports: list[Port] = field(default_factory=list)

    return {"App": App, "Port": Port}


def release_2(reg: Registry) -> dict[str, type[VersionedObject]]:
    class Port(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "Protocol", Added("protocol", default="tcp")))
        number: int
        protocol: Literal["tcp", "udp"] = "tcp"

    class App(VersionedObject, registry=reg):
        VERSIONS = History(
            Version("1.0", "Initial"),
            Version("1.1", "Restarts, project, paused",
                    Added("restarts", default=0),
                    Renamed("owner", "project"),
                    EnumValuesAdded("status", ["paused"], fallback={"paused": "stopped"}),
                    NestedVersion("ports", "1.1")),
        )
        name: str
        project: str
        restarts: int = 0
        status: Literal["running", "stopped", "paused"] = "running"
        ports: list[Port] = field(default_factory=list)

    return {"App": App, "Port": Port}


@pytest.fixture
def old() -> Registry:
    reg = Registry("svc")
    release_1(reg)
    return reg


@pytest.fixture
def new() -> Registry:
    reg = Registry("svc")
    release_2(reg)
    return reg


# -- lookups ---------------------------------------------------------------------

def test_get_returns_the_registered_class(old: Registry) -> None:
    app = old.get("App")
    assert app.__name__ == "App"
    assert old.get("App", "1.0") is app


def test_get_of_an_unknown_name_raises_unknown_object_error_listing_known_names(
        old: Registry) -> None:
    with pytest.raises(UnknownObjectError) as info:
        old.get("Nope")
    assert "'Nope'" in str(info.value)
    assert "App, Port" in str(info.value)
    assert isinstance(info.value, LookupError)


def test_get_never_returns_none_even_for_an_empty_registry() -> None:
    with pytest.raises(UnknownObjectError, match="known: none"):
        Registry("empty").get("App")


def test_get_of_an_unregistered_version_raises_unknown_object_error(old: Registry) -> None:
    with pytest.raises(UnknownObjectError) as info:
        old.get("App", "1.1")
    assert "registered versions: 1.0" in str(info.value)


def test_get_of_a_malformed_version_raises_unknown_object_error(old: Registry) -> None:
    with pytest.raises(UnknownObjectError):
        old.get("App", "latest")


def test_names_lists_every_object_name_sorted(new: Registry) -> None:
    assert new.names() == ["App", "Port"]
    assert Registry("empty").names() == []


def test_contains_tells_whether_a_name_is_registered(new: Registry) -> None:
    assert "App" in new
    assert "Nope" not in new


def test_classes_lists_every_class_by_name_then_version() -> None:
    reg = Registry("svc")
    first = release_1(reg)
    second = release_2(reg)
    assert reg.classes() == [first["App"], second["App"], first["Port"], second["Port"]]


def test_manifest_maps_each_name_to_its_newest_version(old: Registry, new: Registry) -> None:
    assert old.manifest() == {"App": "1.0", "Port": "1.0"}
    assert new.manifest() == {"App": "1.1", "Port": "1.1"}


def test_registries_are_independent(old: Registry) -> None:
    other = Registry("other")
    assert "App" not in other
    assert old.names() == ["App", "Port"]


@pytest.mark.parametrize("namespace", ["", "has space", "1starts-with-digit", "x" * 101])
def test_registry_namespace_must_be_a_short_identifier(namespace: str) -> None:
    with pytest.raises(DefinitionError, match="namespace"):
        Registry(namespace)


# -- several versions of one name in one registry ----------------------------------------

def test_one_registry_holds_several_versions_of_a_name() -> None:
    reg = Registry("svc")
    first = release_1(reg)["App"]
    second = release_2(reg)["App"]
    assert reg.get("App") is second
    assert reg.get("App", "1.0") is first
    assert reg.get("App", "1.1") is second
    assert reg.get("App", "1.1.4") is second  # patch level ignored
    assert reg.names() == ["App", "Port"]
    assert reg.manifest() == {"App": "1.1", "Port": "1.1"}


def test_newest_wins_whatever_the_declaration_order() -> None:
    reg = Registry("svc")
    second = release_2(reg)["App"]
    release_1(reg)
    assert reg.get("App") is second


def test_same_name_and_version_twice_is_a_definition_error(old: Registry) -> None:
    with pytest.raises(DefinitionError, match=r"already has Port 1\.0"):
        release_1(old)


def test_same_name_and_major_minor_with_another_patch_is_a_definition_error() -> None:
    reg = Registry("svc")

    def declare(number: str) -> None:
        class App(VersionedObject, registry=reg):
            VERSIONS = History(Version("1.0"), Version(number, "fix"))
            name: str

    declare("1.1")
    with pytest.raises(DefinitionError, match="already has App"):
        declare("1.1.1")


def test_same_name_and_version_in_two_registries_is_fine() -> None:
    first, second = Registry("svc"), Registry("svc")
    release_1(first)
    release_1(second)
    assert first.get("App") is not second.get("App")


def test_registry_decodes_a_payload_into_its_newest_class() -> None:
    reg = Registry("svc")
    first = release_1(reg)
    second = release_2(reg)
    obj = first["App"](name="a", owner="me")
    decoded = from_primitive(to_primitive(obj), reg)
    assert type(decoded) is second["App"]
    assert decoded == second["App"](name="a", project="me")


# -- two releases exchanging payloads ----------------------------------------------------------

def test_new_release_sends_what_the_old_release_reads_with_its_manifest(
        old: Registry, new: Registry) -> None:
    App, Port = new.get("App"), new.get("Port")
    obj = App(name="web", project="ops", restarts=3, status="paused",
              ports=[Port(number=53, protocol="udp")])
    prim = to_primitive(obj, manifest=version_manifest(old))
    assert prim[VERSION] == "1.0"
    assert prim[DATA]["ports"][0][VERSION] == "1.0"
    decoded = from_primitive(prim, old)
    OldApp, OldPort = old.get("App"), old.get("Port")
    assert type(decoded) is OldApp
    assert decoded == OldApp(name="web", owner="ops", status="stopped",
                             ports=[OldPort(number=53)])


def test_new_class_downgrades_to_the_old_class_version(old: Registry, new: Registry) -> None:
    obj = new.get("App")(name="web", project="ops")
    decoded = from_primitive(to_primitive(obj, "1.0"), old.get("App"))
    assert decoded == old.get("App")(name="web", owner="ops")


def test_old_release_refuses_a_payload_newer_than_it_knows(
        old: Registry, new: Registry) -> None:
    obj = new.get("App")(name="web", project="ops")
    with pytest.raises(PayloadVersionError) as info:
        from_primitive(to_primitive(obj), old)
    assert (info.value.name, info.value.version, info.value.known) == ("App", "1.1", "1.0")


def test_new_release_reads_old_payloads_upgraded(old: Registry, new: Registry) -> None:
    OldApp, OldPort = old.get("App"), old.get("Port")
    obj = OldApp(name="web", owner="ops", status="stopped", ports=[OldPort(number=80)])
    decoded = from_primitive(to_primitive(obj), new)
    NewApp, NewPort = new.get("App"), new.get("Port")
    assert type(decoded) is NewApp
    assert decoded == NewApp(name="web", project="ops", restarts=0, status="stopped",
                             ports=[NewPort(number=80, protocol="tcp")])


def test_old_payload_changes_arrive_under_the_new_names(old: Registry, new: Registry) -> None:
    obj = old.get("App")(name="web", owner="ops")
    reset_changes(obj, recursive=True)
    obj.owner = "dev"
    decoded = from_primitive(to_primitive(obj), new)
    assert what_changed(decoded) == {"project"}


def test_round_trip_old_to_new_to_old_keeps_the_values(old: Registry, new: Registry) -> None:
    OldApp, OldPort = old.get("App"), old.get("Port")
    original = OldApp(name="web", owner="ops", ports=[OldPort(number=1), OldPort(number=2)])
    upgraded = from_primitive(to_primitive(original), new)
    back = from_primitive(to_primitive(upgraded, manifest=version_manifest(old)), old)
    assert back == original


def test_payload_of_another_namespace_is_refused(old: Registry) -> None:
    other = Registry("other")
    release_1(other)
    obj = other.get("App")(name="a", owner="b")
    with pytest.raises(DecodeError, match="namespace 'other' is not 'svc'"):
        from_primitive(to_primitive(obj), old.get("App"))


def test_payload_of_a_name_the_registry_lacks_is_a_decode_error(old: Registry) -> None:
    empty = Registry("svc")
    with pytest.raises(DecodeError, match="not a registered object"):
        from_primitive(to_primitive(old.get("Port")(number=1)), empty)


def test_registry_lookup_of_a_non_envelope_is_a_decode_error(old: Registry) -> None:
    with pytest.raises(DecodeError):
        from_primitive(["not", "an", "envelope"], old)


# -- version_manifest ---------------------------------------------------------------------

def test_version_manifest_of_a_registry_is_its_manifest(new: Registry) -> None:
    assert version_manifest(new) == new.manifest() == {"App": "1.1", "Port": "1.1"}


def test_version_manifest_of_a_class_covers_the_classes_it_contains(new: Registry) -> None:
    assert version_manifest(new.get("App")) == {"App": "1.1", "Port": "1.1"}
    assert version_manifest(new.get("Port")) == {"Port": "1.1"}


def test_version_manifest_of_an_object_is_that_of_its_class(new: Registry) -> None:
    obj = new.get("App")(name="a", project="b")
    assert version_manifest(obj) == version_manifest(type(obj))


def test_version_manifest_follows_nested_classes_at_any_depth() -> None:
    reg = Registry("deep")

    class Leaf(VersionedObject, registry=reg):
        n: int = 0

    class Mid(VersionedObject, registry=reg):
        leaves: dict[str, Leaf] = field(default_factory=dict)

    class Top(VersionedObject, registry=reg):
        mid: Mid | None = None

    class Unrelated(VersionedObject, registry=reg):
        n: int = 0

    assert version_manifest(Top) == {"Leaf": "1.0", "Mid": "1.0", "Top": "1.0"}
    assert version_manifest(reg) == {"Leaf": "1.0", "Mid": "1.0", "Top": "1.0",
                                     "Unrelated": "1.0"}
