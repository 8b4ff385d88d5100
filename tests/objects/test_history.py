"""Version histories: every change kind moves values down and up, nested
objects follow their parent's version or a manifest, and malformed histories
are refused."""

from typing import Any, Literal

import pytest

from rollsafe import (
    Added,
    Custom,
    DecodeError,
    DefinitionError,
    DowngradeError,
    EnumValuesAdded,
    History,
    IncompatibleVersionError,
    NestedVersion,
    PayloadVersionError,
    Registry,
    Removed,
    Renamed,
    Retyped,
    RollsafeError,
    UnknownVersionError,
    Version,
    VersionedObject,
    VersionTooNewError,
    field,
    fields_of,
    from_primitive,
    reset_changes,
    schema_of,
    to_primitive,
    version_manifest,
    what_changed,
)

NAME = "versioned_object.name"
VERSION = "versioned_object.version"
DATA = "versioned_object.data"
CHANGES = "versioned_object.changes"


@pytest.fixture
def reg() -> Registry:
    """A fresh registry per test, so class names never clash."""
    return Registry("hist")


def envelope(reg: Registry, name: str, version: str, data: dict[str, Any],
             changes: list[str] | None = None) -> dict[str, Any]:
    """A hand-written payload, as an older peer would send it."""
    prim: dict[str, Any] = {NAME: name, "versioned_object.namespace": reg.namespace,
                            VERSION: version, DATA: data}
    if changes is not None:
        prim[CHANGES] = changes
    return prim


def nested(prim: dict[str, Any], *path: str | int) -> dict[str, Any]:
    """The envelope found by following ``path`` through data dicts/lists."""
    for step in path:
        prim = prim[DATA][step] if isinstance(step, str) else prim[step]  # type: ignore[index]
    return prim


# -- Added ------------------------------------------------------------------------

def test_added_field_is_dropped_on_downgrade_and_defaulted_on_upgrade(reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0", "Initial"),
                           Version("1.1", "Count restarts", Added("restarts", default=0)))
        name: str
        restarts: int = 0

    prim = to_primitive(App(name="web", restarts=4), "1.0")
    assert prim[VERSION] == "1.0"
    assert prim[DATA] == {"name": "web"}
    assert from_primitive(prim, App) == App(name="web", restarts=0)


def test_added_without_its_own_default_uses_the_field_default(reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Added("restarts")))
        name: str
        restarts: int = 7

    old = envelope(reg, "App", "1.0", {"name": "web"})
    assert from_primitive(old, App).restarts == 7


def test_added_default_overrides_the_field_default_for_old_payloads(reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Added("mode", default="legacy")))
        name: str
        mode: str = "modern"

    assert App(name="a").mode == "modern"
    assert from_primitive(envelope(reg, "App", "1.0", {"name": "a"}), App).mode == "legacy"


def test_added_mutable_default_is_a_fresh_copy_for_each_upgraded_object(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Added("tags", default=["x"])))
        name: str
        tags: list[str] = field(default_factory=list)

    old = envelope(reg, "App", "1.0", {"name": "a"})
    first, second = from_primitive(old, App), from_primitive(old, App)
    first.tags.append("y")
    assert second.tags == ["x"]


def test_old_payload_carrying_an_added_field_is_refused(reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Added("restarts", default=0)))
        name: str
        restarts: int = 0

    with pytest.raises(DecodeError) as info:
        from_primitive(envelope(reg, "App", "1.0", {"name": "a", "restarts": 1}), App)
    assert info.value.path == "App.restarts"


# -- Removed ----------------------------------------------------------------------

def test_removed_field_is_sent_with_its_default_on_downgrade_and_dropped_on_upgrade(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Removed("legacy", int, default=-1)))
        name: str

    assert to_primitive(App(name="a"), "1.0")[DATA] == {"name": "a", "legacy": -1}
    upgraded = from_primitive(envelope(reg, "App", "1.0", {"name": "a", "legacy": 5}), App)
    assert upgraded == App(name="a")


def test_removed_field_is_validated_against_its_old_type_in_old_payloads(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Removed("legacy", int, default=-1)))
        name: str

    with pytest.raises(DecodeError) as info:
        from_primitive(envelope(reg, "App", "1.0", {"name": "a", "legacy": "x"}), App)
    assert info.value.path == "App.legacy"


def test_removed_nullable_field_may_default_to_none(reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Removed("note", str | None, default=None)))
        name: str

    assert to_primitive(App(name="a"), "1.0")[DATA] == {"name": "a", "note": None}


# -- Renamed ----------------------------------------------------------------------

def test_renamed_field_goes_under_its_old_name_on_downgrade_and_back_on_upgrade(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Renamed("owner", "project")))
        name: str
        project: str

    prim = to_primitive(App(name="a", project="p"), "1.0")
    assert prim[DATA] == {"name": "a", "owner": "p"}
    assert from_primitive(prim, App) == App(name="a", project="p")


def test_renamed_field_changes_are_listed_under_the_old_name_when_downgraded(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Renamed("owner", "project")))
        name: str
        project: str

    obj = App(name="a", project="p")
    reset_changes(obj)
    obj.project = "q"
    assert to_primitive(obj, "1.0")[CHANGES] == ["owner"]
    assert to_primitive(obj)[CHANGES] == ["project"]


def test_renamed_field_changes_in_an_old_payload_map_to_the_new_name(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Renamed("owner", "project")))
        name: str
        project: str

    old = envelope(reg, "App", "1.0", {"name": "a", "owner": "p"}, changes=["owner"])
    assert what_changed(from_primitive(old, App)) == {"project"}


def test_field_renamed_twice_maps_changes_from_the_oldest_name(reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Renamed("a", "b")),
                           Version("1.2", "", Renamed("b", "c")))
        c: int

    old = envelope(reg, "App", "1.0", {"a": 1}, changes=["a"])
    decoded = from_primitive(old, App)
    assert decoded.c == 1
    assert what_changed(decoded) == {"c"}
    obj = App(c=2)
    assert to_primitive(obj, "1.0")[DATA] == {"a": 2}
    assert to_primitive(obj, "1.0")[CHANGES] == ["a"]


# -- Retyped ------------------------------------------------------------------------

def test_retyped_converters_run_on_downgrade_and_upgrade(reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Retyped("size", int, upgrade=str, downgrade=int)))
        size: str

    prim = to_primitive(App(size="12"), "1.0")
    assert prim[DATA] == {"size": 12}
    upgraded = from_primitive(prim, App)
    assert upgraded.size == "12"
    assert type(upgraded.size) is str


def test_retyped_downgrade_refusal_is_a_downgrade_error_naming_the_path(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Retyped("size", int, upgrade=str, downgrade=int)))
        size: str

    with pytest.raises(DowngradeError) as info:
        to_primitive(App(size="twelve"), "1.0")
    assert info.value.path == "App.size"
    assert isinstance(info.value, IncompatibleVersionError)


def test_retyped_upgrade_refusal_is_a_decode_error(reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Retyped("size", str, upgrade=int, downgrade=str)))
        size: int

    with pytest.raises(DecodeError, match=r"upgrade from 1\.0"):
        from_primitive(envelope(reg, "App", "1.0", {"size": "big"}), App)


def test_retyped_downgrade_result_of_the_wrong_type_is_refused_at_the_sender(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Retyped("size", str, upgrade=int,
                                                      downgrade=lambda v: v)))
        size: int

    # The 1.0 schema says size is a str; sending the int would give every 1.0
    # reader a payload it refuses.
    with pytest.raises(RollsafeError) as info:
        to_primitive(App(size=3), "1.0")
    assert getattr(info.value, "path", None) == "App.size"


# -- EnumValuesAdded ---------------------------------------------------------------------

def _enum_app(reg: Registry, fallback: dict[str, str] | None) -> type[VersionedObject]:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(
            Version("1.0"),
            Version("1.1", "",
                    EnumValuesAdded("status", ["paused", "dead"], fallback=fallback),
                    EnumValuesAdded("history", ["paused", "dead"], fallback=fallback)),
        )
        status: Literal["running", "stopped", "paused", "dead"] = "running"
        history: list[Literal["running", "stopped", "paused", "dead"]] = field(
            default_factory=list)

    return App


def test_enum_value_added_with_fallback_is_replaced_on_downgrade(reg: Registry) -> None:
    App = _enum_app(reg, {"paused": "stopped", "dead": "stopped"})
    prim = to_primitive(App(status="paused", history=["running", "dead"]), "1.0")
    assert prim[DATA] == {"status": "stopped", "history": ["running", "stopped"]}


def test_enum_values_the_older_version_has_pass_unchanged(reg: Registry) -> None:
    App = _enum_app(reg, None)
    prim = to_primitive(App(status="stopped", history=["running"]), "1.0")
    assert prim[DATA] == {"status": "stopped", "history": ["running"]}


def test_enum_value_added_without_fallback_raises_downgrade_error_naming_the_path(
        reg: Registry) -> None:
    App = _enum_app(reg, None)
    with pytest.raises(DowngradeError) as info:
        to_primitive(App(status="dead"), "1.0")
    assert info.value.path == "App.status"
    assert "'dead'" in str(info.value)
    with pytest.raises(DowngradeError) as info:
        to_primitive(App(history=["running", "paused"]), "1.0")
    assert info.value.path == "App.history[1]"


def test_enum_downgrade_error_inside_a_nested_object_names_the_full_path(
        reg: Registry) -> None:
    class Item(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", EnumValuesAdded("state", ["new"])))
        state: Literal["old", "new"]

    class Box(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", NestedVersion("items", "1.1")))
        items: list[Item]

    with pytest.raises(DowngradeError) as info:
        to_primitive(Box(items=[Item(state="old"), Item(state="new")]), "1.0")
    assert info.value.path == "Box.items[1].state"


def test_enum_values_of_an_old_payload_upgrade_unchanged(reg: Registry) -> None:
    App = _enum_app(reg, None)
    old = envelope(reg, "App", "1.0", {"status": "stopped", "history": ["running"]})
    assert from_primitive(old, App) == App(status="stopped", history=["running"])


def test_old_payload_with_a_value_added_later_is_refused(reg: Registry) -> None:
    App = _enum_app(reg, None)
    with pytest.raises(DecodeError) as info:
        from_primitive(envelope(reg, "App", "1.0", {"status": "paused", "history": []}), App)
    assert info.value.path == "App.status"


# -- Custom --------------------------------------------------------------------------

def _split(values: dict[str, Any]) -> None:
    first, _, last = values.pop("full_name").partition(" ")
    values["first"], values["last"] = first, last


def _join(values: dict[str, Any]) -> None:
    values["full_name"] = f"{values.pop('first')} {values.pop('last')}"


def test_custom_change_functions_run_on_downgrade_and_upgrade(reg: Registry) -> None:
    class Person(VersionedObject, registry=reg):
        VERSIONS = History(
            Version("1.0"),
            Version("1.1", "Split the name",
                    # Changes apply in order on upgrade and in reverse on downgrade:
                    # the Custom must see full_name before Removed drops it.
                    Added("first", default=""), Added("last", default=""),
                    Custom("split full_name", upgrade=_split, downgrade=_join),
                    Removed("full_name", str, default="")),
        )
        first: str
        last: str

    prim = to_primitive(Person(first="Ada", last="Lovelace"), "1.0")
    assert prim[DATA] == {"full_name": "Ada Lovelace"}
    assert from_primitive(prim, Person) == Person(first="Ada", last="Lovelace")


def test_custom_function_failure_is_a_downgrade_error(reg: Registry) -> None:
    def refuse(values: dict[str, Any]) -> None:
        raise ValueError("cannot express this")

    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Custom("x", upgrade=refuse, downgrade=refuse)))
        n: int = 0

    with pytest.raises(DowngradeError, match="cannot express this"):
        to_primitive(App(), "1.0")


def test_custom_downgrade_editing_a_list_in_place_does_not_change_the_object_sent(
        reg: Registry) -> None:
    def drop_new(values: dict[str, Any]) -> None:
        values["tags"].remove("new")

    def add_new(values: dict[str, Any]) -> None:
        values["tags"].append("new")

    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Custom("tag", upgrade=add_new, downgrade=drop_new)))
        tags: list[str]

    obj = App(tags=["a", "new"])
    assert to_primitive(obj, "1.0")[DATA] == {"tags": ["a"]}
    assert obj.tags == ["a", "new"]


# -- several steps ----------------------------------------------------------------------

class _Steps:
    """Builds the 1.0 -> 1.3 class used by the multi-step tests."""

    @staticmethod
    def build(reg: Registry) -> type[VersionedObject]:
        class App(VersionedObject, registry=reg):
            VERSIONS = History(
                Version("1.0", "Initial"),
                Version("1.1", "Count restarts", Added("restarts", default=0)),
                Version("1.2", "Owner is the project", Renamed("owner", "project")),
                Version("1.3", "Size is text; legacy gone",
                        Retyped("size", int, upgrade=str, downgrade=int),
                        Removed("legacy", bool, default=False)),
            )
            name: str
            project: str
            restarts: int = 0
            size: str = "1"

        return App


DOWNGRADED = {
    "1.0": {"name": "web", "owner": "ops", "size": 12, "legacy": False},
    "1.1": {"name": "web", "owner": "ops", "restarts": 3, "size": 12, "legacy": False},
    "1.2": {"name": "web", "project": "ops", "restarts": 3, "size": 12, "legacy": False},
    "1.3": {"name": "web", "project": "ops", "restarts": 3, "size": "12"},
}


@pytest.mark.parametrize("version", sorted(DOWNGRADED))
def test_multi_step_history_downgrades_to_every_older_version(
        reg: Registry, version: str) -> None:
    App = _Steps.build(reg)
    prim = to_primitive(App(name="web", project="ops", restarts=3, size="12"), version)
    assert prim[VERSION] == version
    assert prim[DATA] == DOWNGRADED[version]


@pytest.mark.parametrize("version", sorted(DOWNGRADED))
def test_multi_step_history_upgrades_from_every_older_version(
        reg: Registry, version: str) -> None:
    App = _Steps.build(reg)
    decoded = from_primitive(envelope(reg, "App", version, DOWNGRADED[version]), App)
    restarts = 0 if version == "1.0" else 3
    assert decoded == App(name="web", project="ops", restarts=restarts, size="12")


def test_multi_step_upgrade_maps_changes_through_every_step(reg: Registry) -> None:
    App = _Steps.build(reg)
    old = envelope(reg, "App", "1.0", DOWNGRADED["1.0"], changes=["owner", "legacy", "size"])
    assert what_changed(from_primitive(old, App)) == {"project", "size"}


def test_schema_of_gives_the_fields_of_each_version(reg: Registry) -> None:
    App = _Steps.build(reg)
    assert list(schema_of(App, "1.0")) == ["name", "owner", "size", "legacy"]
    assert list(schema_of(App, "1.2")) == ["name", "project", "restarts", "size", "legacy"]
    assert schema_of(App, "1.0")["size"].ftype.describe() == "int"
    assert schema_of(App, "1.3") == fields_of(App)
    assert list(schema_of(App)) == ["name", "project", "restarts", "size"]


# -- nested versions and manifests ----------------------------------------------------------

def _family(reg: Registry) -> tuple[type[VersionedObject], type[VersionedObject]]:
    class Child(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Added("extra", default=0)))
        n: int = 0
        extra: int = 0

    class Parent(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "Child 1.1", NestedVersion("child", "1.1")))
        child: Child
        kids: list[Child] = field(default_factory=list)

    return Child, Parent


def test_downgraded_parent_sends_children_at_the_version_it_embedded_them(
        reg: Registry) -> None:
    Child, Parent = _family(reg)
    prim = to_primitive(Parent(child=Child(n=1, extra=2), kids=[Child(extra=3)]), "1.0")
    assert prim[VERSION] == "1.0"
    assert nested(prim, "child")[VERSION] == "1.0"
    assert nested(prim, "child")[DATA] == {"n": 1}
    assert nested(prim, "kids", 0)[VERSION] == "1.0"
    assert nested(prim, "kids", 0)[DATA] == {"n": 0}


def test_current_parent_sends_children_at_their_current_version(reg: Registry) -> None:
    Child, Parent = _family(reg)
    prim = to_primitive(Parent(child=Child(n=1, extra=2)))
    assert nested(prim, "child")[VERSION] == "1.1"
    assert nested(prim, "child")[DATA] == {"n": 1, "extra": 2}


def test_old_parent_payload_with_old_children_upgrades_the_whole_tree(reg: Registry) -> None:
    Child, Parent = _family(reg)
    original = Parent(child=Child(n=1, extra=2), kids=[Child(n=5, extra=6)])
    decoded = from_primitive(to_primitive(original, "1.0"), Parent)
    assert decoded == Parent(child=Child(n=1, extra=0), kids=[Child(n=5, extra=0)])


def test_manifest_sets_the_child_version_while_the_parent_stays_current(
        reg: Registry) -> None:
    Child, Parent = _family(reg)
    prim = to_primitive(Parent(child=Child(n=1, extra=2), kids=[Child()]),
                        manifest={"Child": "1.0"})
    assert prim[VERSION] == "1.1"
    assert nested(prim, "child")[VERSION] == "1.0"
    assert nested(prim, "child")[DATA] == {"n": 1}
    assert nested(prim, "kids", 0)[VERSION] == "1.0"


def test_manifest_entry_overrides_the_version_the_downgraded_parent_embeds(
        reg: Registry) -> None:
    Child, Parent = _family(reg)
    prim = to_primitive(Parent(child=Child(extra=2)), "1.0", manifest={"Child": "1.1"})
    assert prim[VERSION] == "1.0"
    assert nested(prim, "child")[VERSION] == "1.1"


def test_manifest_entry_for_the_parent_downgrades_the_parent_and_its_children(
        reg: Registry) -> None:
    Child, Parent = _family(reg)
    prim = to_primitive(Parent(child=Child(extra=2)), manifest={"Parent": "1.0"})
    assert prim[VERSION] == "1.0"
    assert nested(prim, "child")[VERSION] == "1.0"


def test_manifest_entry_newer_than_known_is_clamped_to_current(reg: Registry) -> None:
    Child, Parent = _family(reg)
    prim = to_primitive(Parent(child=Child(extra=2)),
                        manifest={"Parent": "1.9", "Child": "3.0"})
    assert prim[VERSION] == "1.1"
    assert nested(prim, "child")[VERSION] == "1.1"
    assert nested(prim, "child")[DATA] == {"n": 0, "extra": 2}


def test_manifest_of_the_receiver_produces_a_tree_it_can_read(reg: Registry) -> None:
    Child, Parent = _family(reg)
    receiver = {"Parent": "1.0", "Child": "1.0"}
    prim = to_primitive(Parent(child=Child(n=4, extra=9)), manifest=receiver)
    assert (prim[VERSION], nested(prim, "child")[VERSION]) == ("1.0", "1.0")


def test_version_manifest_lists_the_class_and_every_class_it_can_contain(
        reg: Registry) -> None:
    Child, Parent = _family(reg)
    expected = {"Child": "1.1", "Parent": "1.1"}
    assert version_manifest(Parent) == expected
    assert version_manifest(Parent(child=Child())) == expected
    assert version_manifest(Child) == {"Child": "1.1"}


def test_child_bumped_without_nested_version_in_the_parent_is_a_definition_error(
        reg: Registry) -> None:
    class Child(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Added("extra", default=0)))
        extra: int = 0

    class Parent(VersionedObject, registry=reg):
        child: Child

    with pytest.raises(DefinitionError) as info:
        Parent(child=Child())
    message = str(info.value)
    assert "Parent 1.0 embeds Child 1.0" in message
    assert "NestedVersion" in message


def test_child_bump_is_also_caught_when_the_parent_is_first_used_for_decoding(
        reg: Registry) -> None:
    class Child(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Added("extra", default=0)))
        extra: int = 0

    class Parent(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Added("n", default=0)))
        n: int = 0
        child: Child | None = None

    with pytest.raises(DefinitionError, match="NestedVersion"):
        from_primitive(envelope(reg, "Parent", "1.1", {"n": 1}), Parent)


def test_nested_version_naming_a_field_without_objects_is_a_definition_error(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", NestedVersion("n", "1.0")))
        n: int = 0

    with pytest.raises(DefinitionError, match="names no field holding objects"):
        App()


def test_nested_version_naming_a_version_the_child_lacks_is_a_definition_error(
        reg: Registry) -> None:
    class Child(VersionedObject, registry=reg):
        n: int = 0

    class Parent(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", NestedVersion("child", "1.4")))
        child: Child

    with pytest.raises(DefinitionError, match=r"Child 1\.4"):
        Parent(child=Child())


# -- patch versions -----------------------------------------------------------------------

def _two_versions(reg: Registry) -> type[VersionedObject]:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1", "", Added("restarts", default=0)))
        name: str
        restarts: int = 0

    return App


def test_payload_with_a_patch_level_is_read_as_its_major_minor(reg: Registry) -> None:
    App = _two_versions(reg)
    current = envelope(reg, "App", "1.1.5", {"name": "a", "restarts": 2})
    assert from_primitive(current, App) == App(name="a", restarts=2)
    old = envelope(reg, "App", "1.0.9", {"name": "a"})
    assert from_primitive(old, App) == App(name="a", restarts=0)


def test_downgrade_to_a_patch_version_sends_the_declared_version(reg: Registry) -> None:
    App = _two_versions(reg)
    prim = to_primitive(App(name="a", restarts=2), "1.0.3")
    assert prim[VERSION] == "1.0"
    assert prim[DATA] == {"name": "a"}
    assert to_primitive(App(name="a"), "1.1.7")[VERSION] == "1.1"


def test_class_whose_current_version_has_a_patch_level_reads_plain_major_minor(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.1.2", "a fix"))
        name: str

    assert from_primitive(envelope(reg, "App", "1.1", {"name": "a"}), App) == App(name="a")
    assert to_primitive(App(name="a"))[VERSION] == "1.1.2"


def test_versions_compare_numerically_not_as_text(reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.9"), Version("1.10", "", Added("n", default=0)))
        n: int = 0

    assert to_primitive(App(n=1), "1.9")[DATA] == {}


# -- version errors ----------------------------------------------------------------------

def test_downgrade_to_a_version_newer_than_current_is_version_too_new(reg: Registry) -> None:
    App = _two_versions(reg)
    with pytest.raises(VersionTooNewError) as info:
        to_primitive(App(name="a"), "1.2")
    message = str(info.value)
    assert "App" in message and "1.2" in message and "1.1" in message


def test_downgrade_to_a_version_not_in_the_history_is_unknown_version(
        reg: Registry) -> None:
    class App(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0"), Version("1.2", "", Added("n", default=0)))
        n: int = 0

    with pytest.raises(UnknownVersionError) as info:
        to_primitive(App(), "1.1")
    message = str(info.value)
    assert "App" in message and "1.1" in message and "1.0, 1.2" in message
    with pytest.raises(UnknownVersionError):
        to_primitive(App(), "0.9")


def test_downgrade_to_a_malformed_version_is_unknown_version(reg: Registry) -> None:
    App = _two_versions(reg)
    with pytest.raises(UnknownVersionError, match="App"):
        to_primitive(App(name="a"), "latest")


def test_payload_newer_than_known_is_a_payload_version_error_with_details(
        reg: Registry) -> None:
    App = _two_versions(reg)
    with pytest.raises(PayloadVersionError) as info:
        from_primitive(envelope(reg, "App", "1.3", {"name": "a"}), App)
    err = info.value
    assert (err.name, err.version, err.known) == ("App", "1.3", "1.1")
    assert "App 1.3 is newer" in str(err)
    assert "1.1" in str(err)
    assert isinstance(err, DecodeError)
    assert isinstance(err, IncompatibleVersionError)


@pytest.mark.parametrize("version", ["0.9", "1.0.x", "v1.0", "2"])
def test_payload_with_an_unknown_or_malformed_version_is_a_payload_version_error(
        reg: Registry, version: str) -> None:
    App = _two_versions(reg)
    with pytest.raises(PayloadVersionError) as info:
        from_primitive(envelope(reg, "App", version, {"name": "a"}), App)
    assert info.value.name == "App"
    assert info.value.version == version


def test_payload_version_that_is_not_a_string_is_a_decode_error(reg: Registry) -> None:
    App = _two_versions(reg)
    with pytest.raises(DecodeError, match="version must be a string"):
        from_primitive(envelope(reg, "App", 1.0, {"name": "a"}), App)  # type: ignore[arg-type]


def test_schema_of_an_unknown_version_is_unknown_version(reg: Registry) -> None:
    App = _two_versions(reg)
    with pytest.raises(UnknownVersionError):
        schema_of(App, "0.5")
    with pytest.raises(VersionTooNewError):
        schema_of(App, "1.5")


# -- malformed histories -----------------------------------------------------------------

@pytest.mark.parametrize(("build", "message"), [
    (lambda: History(Version("1.1"), Version("1.0")), "versions must increase"),
    (lambda: History(Version("1.0"), Version("1.0")), "versions must increase"),
    (lambda: History(Version("1.0"), Version("1.0.1")), "versions must increase"),
    (lambda: History(Version("1.0", "Initial", Added("x", default=0))),
     r"first version \(1.0\)"),
    (lambda: History(), "at least one Version"),
    (lambda: History("1.0"), "History takes Version"),
    (lambda: Version("1"), "not a version"),
    (lambda: Version("v1.0"), "not a version"),
    (lambda: Version("01.0"), "not a version"),
    (lambda: Version("1.1", Added("x")), "second argument is the description"),
    (lambda: Version("1.1", "desc", "Added('x')"), "not a change"),
    (lambda: EnumValuesAdded("s", []), "lists no values"),
    (lambda: EnumValuesAdded("s", ["a"], fallback={"b": "c"}), "did not add"),
], ids=["decreasing", "repeated", "same-major-minor", "first-with-changes", "empty",
        "not-a-version", "one-number", "prefixed", "leading-zero", "no-description",
        "not-a-change", "no-enum-values", "fallback-for-unadded"])
def test_malformed_history_is_a_definition_error_when_declared(build: Any,
                                                               message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        build()


def test_nested_version_with_a_malformed_version_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError):
        NestedVersion("child", "one")


def test_versions_that_are_not_a_history_are_a_definition_error(reg: Registry) -> None:
    with pytest.raises(DefinitionError, match="must be a History"):
        type("App", (VersionedObject,), {"VERSIONS": [Version("1.0")],
                                         "__annotations__": {"n": int}}, registry=reg)


def _declare(reg: Registry, *changes: Any, **fields: Any) -> type[VersionedObject]:
    """A class at 1.1 whose 1.1 made ``changes``; ``fields`` are annotation
    or (annotation, default) pairs."""
    annotations, namespace = {}, {}
    for name, spec in fields.items():
        if isinstance(spec, tuple):
            annotations[name], namespace[name] = spec
        else:
            annotations[name] = spec
    namespace["__annotations__"] = annotations
    namespace["VERSIONS"] = History(Version("1.0"), Version("1.1", "", *changes))
    return type("App", (VersionedObject,), namespace, registry=reg)


@pytest.mark.parametrize(("changes", "fields", "message"), [
    ((Added("x"),), {"x": int}, r"Added\('x'\) has no default"),
    ((Added("y", default=0),), {"x": int}, r"Added\('y'\) but no such field"),
    ((Added("x", default="zero"),), {"x": (int, 0)},
     r"App 1.1: Added\('x'\): the default is invalid"),
    ((Removed("x", int, default=0),), {"x": int}, "field still exists"),
    ((Removed("y", int),), {"x": int}, "needs a default"),
    ((Removed("y", bytes, default=b""),), {"x": int}, "unsupported field type"),
    ((Renamed("a", "b"),), {"x": int}, r"needs field 'b'"),
    ((Renamed("x", "y"),), {"x": int, "y": int}, r"no field 'x'"),
    ((Retyped("y", str, upgrade=int, downgrade=str),), {"x": int},
     r"Retyped\('y'\) but no such field"),
    ((EnumValuesAdded("y", ["b"]),), {"x": Literal["a", "b"]}, "no such field"),
    ((EnumValuesAdded("x", ["b"]),), {"x": int}, "no enum values"),
    ((EnumValuesAdded("x", ["z"]),), {"x": Literal["a", "b"]}, r"has no values \['z'\]"),
    ((EnumValuesAdded("x", ["b"], fallback={"b": "zz"}),), {"x": Literal["a", "b"]},
     "every fallback must be a value the older version has"),
    ((Added("x", default=0), Added("x", default=0)), {"x": int}, "no such field"),
], ids=["added-no-default", "added-missing-field", "added-bad-default",
        "removed-existing", "removed-no-default", "removed-bad-type", "renamed-missing",
        "renamed-old-still-present", "retyped-missing", "enum-missing-field",
        "enum-not-an-enum", "enum-value-not-in-enum", "enum-fallback-not-older",
        "added-twice"])
def test_history_that_contradicts_the_fields_is_a_definition_error_at_first_use(
        reg: Registry, changes: tuple[Any, ...], fields: dict[str, Any],
        message: str) -> None:
    App = _declare(reg, *changes, **fields)  # declaring it is fine ...
    with pytest.raises(DefinitionError, match=message):
        fields_of(App)  # ... using it is not
    with pytest.raises(DefinitionError, match=message):
        from_primitive(envelope(reg, "App", "1.1", {}), App)  # still refused, every time


def test_definition_error_at_first_use_is_raised_by_construction(reg: Registry) -> None:
    App = _declare(reg, Removed("x", int, default=0), x=int)
    with pytest.raises(DefinitionError, match=r"App 1.1: Removed\('x'\)"):
        App(x=1)


def test_a_parent_created_after_its_child_bumped_starts_with_nested_version() -> None:
    reg = Registry("late-parent")

    class Part(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0", "Initial"), Version("1.1", "Weight", Added("weight")))
        name: str
        weight: int = 0

    class Box(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0", "Initial", NestedVersion("part", "1.1")))
        part: Part

    box = Box(part=Part(name="gear", weight=3))
    sent = to_primitive(box)
    assert sent["versioned_object.data"]["part"]["versioned_object.version"] == "1.1"
    assert from_primitive(sent, Box) == box
