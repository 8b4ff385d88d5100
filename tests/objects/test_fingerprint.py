"""Fingerprints: a hash of each class version's canonical schema.

They must be stable (the same declaration always hashes the same, in any
registry, on any run) and sensitive (every change a peer on the wire would
notice changes the hash). ``check_fingerprints`` turns differences with a
recorded file into sentences saying what to do."""

import hashlib
import json
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest

from rollsafe import (
    Added,
    FingerprintMismatchError,
    History,
    NestedVersion,
    Registry,
    Renamed,
    Version,
    VersionedObject,
    canonical_schema,
    field,
    fingerprint,
    remotable,
    remotable_classmethod,
)
from rollsafe.objects.fingerprint import (
    assert_fingerprints,
    check_fingerprints,
    fingerprints,
    read_fingerprints,
    write_fingerprints,
)

Builder = Callable[[], type[VersionedObject]]


def declare(annotations: dict[str, Any], values: dict[str, Any] | None = None, *,
            versions: History | None = None, name: str = "Thing",
            reg: Registry | None = None) -> type[VersionedObject]:
    """Declare ``class <name>(VersionedObject)`` with these annotations and
    class-body values, in a fresh registry unless one is given."""
    body: dict[str, Any] = {"__annotations__": dict(annotations), **(values or {})}
    if versions is not None:
        body["VERSIONS"] = versions
    return types.new_class(name, (VersionedObject,), {"registry": reg or Registry("fp")},
                           lambda ns: ns.update(body))


def hash_part(fp: str) -> str:
    """The hash after ``<version>-``."""
    version, _, digest = fp.partition("-")
    assert version and len(digest) == 32, fp
    return digest


# -- stability ------------------------------------------------------------------


def pinned_item(reg: Registry) -> type[VersionedObject]:
    class Item(VersionedObject, registry=reg):
        VERSIONS = History(
            Version("1.0", "Initial version"),
            Version("1.1", "Add a colour", Added("colour")),
        )
        name: str = field(max_length=40)
        count: int = 0
        colour: Literal["red", "blue"] | None = None
        tags: list[str] = field(default_factory=list)
        created_by: str = field(read_only=True, default="system")

        @remotable
        def refresh(self, deep: bool = False) -> None:
            """Reload from the store."""

    return Item


# PINNED VALUES. These were computed once from ``pinned_item`` and written
# here by hand. They change only when the canonical form (or the hash over
# it) changes, and such a change makes every fingerprint file of every user
# report every class as "changed without a version bump". Change them only on
# purpose, together with a release note telling users to re-record their
# fingerprint files; never just to make this test pass.
PINNED_SCHEMA_1_1 = {
    "name": "Item",
    "version": "1.1",
    "fields": [
        {"name": "colour", "type": {"type": "enum", "values": ["blue", "red"], "nullable": True},
         "default": {"value": None}, "read_only": False},
        {"name": "count", "type": {"type": "int"}, "default": {"value": 0}, "read_only": False},
        {"name": "created_by", "type": {"type": "str", "max_length": None},
         "default": {"value": "system"}, "read_only": True},
        {"name": "name", "type": {"type": "str", "max_length": 40},
         "default": {"required": True}, "read_only": False},
        {"name": "tags", "type": {"type": "list", "item": {"type": "str", "max_length": None}},
         "default": {"value": []}, "read_only": False},
    ],
    "remote_methods": [
        {"name": "refresh", "kind": "instance", "returns": "None",
         "params": [{"name": "deep", "kind": "POSITIONAL_OR_KEYWORD", "default": False,
                     "annotation": "bool"}]},
    ],
}
PINNED_FINGERPRINTS = {
    "1.0": "1.0-16d5f6b44ab74a27e791b5ea9dbe8c06",
    "1.1": "1.1-a23fa25408da1c349a1456a3f9a32d1d",
}


def test_pinned_canonical_schema_and_fingerprints_never_change_by_accident() -> None:
    reg = Registry("pinned")
    item = pinned_item(reg)
    assert canonical_schema(item) == PINNED_SCHEMA_1_1
    assert {v: fingerprint(item, v) for v in ("1.0", "1.1")} == PINNED_FINGERPRINTS
    # What a fingerprint file records for an older version is that same value.
    assert fingerprints(reg)["Item"]["1.0"] == PINNED_FINGERPRINTS["1.0"]
    # The hash is sha256 over sorted, compact, ASCII JSON, cut to 32 hex digits.
    text = json.dumps(PINNED_SCHEMA_1_1, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True)
    assert hash_part(fingerprint(item)) == hashlib.sha256(text.encode()).hexdigest()[:32]


def test_same_class_in_two_registries_has_the_same_fingerprints() -> None:
    first, second = Registry("one"), Registry("one")
    a, b = pinned_item(first), pinned_item(second)
    assert a is not b
    for version in ("1.0", "1.1"):
        assert fingerprint(a, version) == fingerprint(b, version)
    assert fingerprints(first) == fingerprints(second)


def test_field_declaration_order_does_not_matter() -> None:
    a = declare({"name": str, "size": int}, {"size": 1})
    b = declare({"size": int, "name": str}, {"size": 1})
    assert fingerprint(a) == fingerprint(b)


def test_default_factory_and_equal_default_value_agree() -> None:
    # What a peer sees is the default value, not how it is produced.
    a = declare({"tags": list[str]}, {"tags": field(default_factory=list)})
    b = declare({"tags": list[str]}, {"tags": field(default_factory=lambda: [])})
    assert fingerprint(a) == fingerprint(b)


def test_fingerprint_names_the_version() -> None:
    reg = Registry("pinned")
    item = pinned_item(reg)
    assert fingerprint(item).startswith("1.1-")
    assert fingerprint(item, "1.0").startswith("1.0-")
    assert fingerprint(item, "1.1") == fingerprint(item)


# -- sensitivity ----------------------------------------------------------------


def with_remote(variant: str) -> type[VersionedObject]:
    """Thing (one field) with a remote method in one of several variants."""
    reg = Registry("fp")
    if variant == "none":
        class Thing(VersionedObject, registry=reg):
            name: str
    elif variant == "save":
        class Thing(VersionedObject, registry=reg):  # type: ignore[no-redef]
            name: str

            @remotable
            def save(self, force: bool = False) -> None:
                """Persist."""
    elif variant == "save-param-renamed":
        class Thing(VersionedObject, registry=reg):  # type: ignore[no-redef]
            name: str

            @remotable
            def save(self, forced: bool = False) -> None:
                """Persist."""
    elif variant == "save-default-changed":
        class Thing(VersionedObject, registry=reg):  # type: ignore[no-redef]
            name: str

            @remotable
            def save(self, force: bool = True) -> None:
                """Persist."""
    elif variant == "save-classmethod":
        class Thing(VersionedObject, registry=reg):  # type: ignore[no-redef]
            name: str

            @remotable_classmethod
            def save(cls, force: bool = False) -> None:
                """Persist."""
    elif variant == "save-keyword-only":
        class Thing(VersionedObject, registry=reg):  # type: ignore[no-redef]
            name: str

            @remotable
            def save(self, *, force: bool = False) -> None:
                """Persist."""
    else:
        raise AssertionError(variant)
    return Thing


def nested(child_version: str) -> type[VersionedObject]:
    """Parent 1.0 embedding Child at ``child_version``; both classes declare
    exactly the same fields whatever the version."""
    reg = Registry("fp")
    child_history = [Version("1.0", "Initial version")]
    if child_version != "1.0":
        child_history.append(Version(child_version, "Add a note", Added("note")))
    declare({"note": str}, {"note": ""}, versions=History(*child_history), name="Child",
            reg=reg)
    first = Version("1.0", "Initial version", *(
        [NestedVersion("child", child_version)] if child_version != "1.0" else []))
    return declare({"child": reg.get("Child")}, versions=History(first), name="Parent",
                   reg=reg)


# Pairs of declarations differing in exactly one respect a peer would notice.
SENSITIVE: dict[str, tuple[Builder, Builder]] = {
    "list[str] vs list[int]": (
        lambda: declare({"tags": list[str]}),
        lambda: declare({"tags": list[int]})),
    "dict value type": (
        lambda: declare({"meta": dict[str, str]}),
        lambda: declare({"meta": dict[str, int]})),
    "set item type": (
        lambda: declare({"ids": set[str]}),
        lambda: declare({"ids": set[int]})),
    "nullable vs not (same default)": (
        lambda: declare({"owner": str | None}, {"owner": "root"}),
        lambda: declare({"owner": str}, {"owner": "root"})),
    "nullable list item": (
        lambda: declare({"tags": list[str | None]}),
        lambda: declare({"tags": list[str]})),
    "default value": (
        lambda: declare({"size": int}, {"size": 0}),
        lambda: declare({"size": int}, {"size": 1})),
    "default present vs required": (
        lambda: declare({"size": int}, {"size": 0}),
        lambda: declare({"size": int})),
    "nullable: default None vs another default": (
        lambda: declare({"owner": str | None}),
        lambda: declare({"owner": str | None}, {"owner": field(default="x")})),
    "enum values": (
        lambda: declare({"status": Literal["on", "off"]}),
        lambda: declare({"status": Literal["on", "off", "broken"]})),
    "enum value renamed": (
        lambda: declare({"status": Literal["on", "off"]}),
        lambda: declare({"status": Literal["on", "of"]})),
    "max_length": (
        lambda: declare({"name": str}, {"name": field(max_length=10)}),
        lambda: declare({"name": str}, {"name": field(max_length=11)})),
    "max_length vs none": (
        lambda: declare({"name": str}, {"name": field(max_length=10)}),
        lambda: declare({"name": str})),
    "read_only": (
        lambda: declare({"name": str}, {"name": field(read_only=True)}),
        lambda: declare({"name": str})),
    "field renamed": (
        lambda: declare({"name": str}),
        lambda: declare({"title": str})),
    "field added": (
        lambda: declare({"name": str}),
        lambda: declare({"name": str, "size": int}, {"size": 0})),
    "int vs float": (
        lambda: declare({"size": int}),
        lambda: declare({"size": float})),
    "class renamed": (
        lambda: declare({"name": str}, name="Thing"),
        lambda: declare({"name": str}, name="Other")),
    "nested object's embedded version (NestedVersion)": (
        lambda: nested("1.0"),
        lambda: nested("1.1")),
    "remote method added": (
        lambda: with_remote("none"),
        lambda: with_remote("save")),
    "remote method parameter renamed": (
        lambda: with_remote("save"),
        lambda: with_remote("save-param-renamed")),
    "remote method parameter default changed": (
        lambda: with_remote("save"),
        lambda: with_remote("save-default-changed")),
    "remote method kind: instance vs class method": (
        lambda: with_remote("save"),
        lambda: with_remote("save-classmethod")),
    "remote method parameter kind: positional vs keyword-only": (
        lambda: with_remote("save"),
        lambda: with_remote("save-keyword-only")),
}


@pytest.mark.parametrize("before, after", list(SENSITIVE.values()), ids=list(SENSITIVE))
def test_fingerprint_is_sensitive_to(before: Builder, after: Builder) -> None:
    # Each side alone is stable (so a difference is not noise) ...
    assert fingerprint(before()) == fingerprint(before())
    assert fingerprint(after()) == fingerprint(after())
    # ... and the two differ, in the hash and not only in a prefix.
    a, b = before(), after()
    assert canonical_schema(a) != canonical_schema(b)
    assert hash_part(fingerprint(a)) != hash_part(fingerprint(b))


def test_nested_version_shows_in_the_schema() -> None:
    schema = canonical_schema(nested("1.1"))
    assert schema["fields"][0]["type"] == {"type": "object", "name": "Child", "version": "1.1"}


def test_version_number_is_part_of_the_fingerprint() -> None:
    a = declare({"name": str}, versions=History(Version("1.0", "Initial version")))
    b = declare({"name": str}, versions=History(Version("2.0", "Initial version")))
    assert canonical_schema(a)["fields"] == canonical_schema(b)["fields"]
    assert fingerprint(a).startswith("1.0-")
    assert fingerprint(b).startswith("2.0-")
    assert hash_part(fingerprint(a)) != hash_part(fingerprint(b))


def two_versions(remote: str) -> type[VersionedObject]:
    """Thing 1.0 (name) and 1.1 (adds size), with a remote method variant."""
    reg = Registry("fp")
    versions = History(Version("1.0", "Initial version"),
                       Version("1.1", "Add size", Added("size")))
    if remote == "none":
        class Thing(VersionedObject, registry=reg):
            VERSIONS = versions
            name: str
            size: int = 0
    elif remote == "save":
        class Thing(VersionedObject, registry=reg):  # type: ignore[no-redef]
            VERSIONS = versions
            name: str
            size: int = 0

            @remotable
            def save(self, force: bool = False) -> None:
                """Persist."""
    else:
        class Thing(VersionedObject, registry=reg):  # type: ignore[no-redef]
            VERSIONS = versions
            name: str
            size: int = 0

            @remotable_classmethod
            def save(cls, force: bool = True) -> None:
                """Persist."""
    return Thing


def test_remote_methods_change_only_the_current_version() -> None:
    plain, saved, changed = two_versions("none"), two_versions("save"), two_versions("cls")
    assert fingerprint(plain, "1.0") == fingerprint(saved, "1.0") == fingerprint(changed, "1.0")
    assert len({fingerprint(plain), fingerprint(saved), fingerprint(changed)}) == 3
    assert "remote_methods" not in canonical_schema(saved, "1.0")
    assert [m["name"] for m in canonical_schema(saved)["remote_methods"]] == ["save"]


def test_bumping_the_version_keeps_the_previous_versions_fingerprint() -> None:
    # Release N recorded Thing 1.0 while 1.0 was current; release N+1 adds
    # 1.1. Nothing about 1.0 changed, so its fingerprint must not either
    # (else every legitimate bump reports "the history no longer derives the
    # schema released as 1.0").
    released = Registry("fp")
    declare({"name": str}, versions=History(Version("1.0", "Initial version")), reg=released)
    bumped = Registry("fp")
    declare({"name": str, "size": int}, {"size": 0}, reg=bumped, versions=History(
        Version("1.0", "Initial version"), Version("1.1", "Add size", Added("size"))))
    assert fingerprints(bumped)["Thing"]["1.0"] == fingerprints(released)["Thing"]["1.0"]
    problems = check_fingerprints(bumped, fingerprints(released))
    assert not [p for p in problems if p.startswith("Thing 1.0")], problems


# -- check_fingerprints -----------------------------------------------------------


def registry_of(*builders: Callable[[Registry], object]) -> Registry:
    reg = Registry("fp")
    for build in builders:
        build(reg)
    return reg


def thing_v1(reg: Registry) -> None:
    declare({"name": str}, versions=History(Version("1.0", "Initial version")), reg=reg)


def thing_v1_changed(reg: Registry) -> None:
    """Thing 1.0 with a field added but no new version."""
    declare({"name": str, "size": int}, {"size": 0}, reg=reg,
            versions=History(Version("1.0", "Initial version")))


def thing_v1_1(reg: Registry) -> None:
    """Thing with the field added properly, as version 1.1."""
    declare({"name": str, "size": int}, {"size": 0}, reg=reg, versions=History(
        Version("1.0", "Initial version"), Version("1.1", "Add size", Added("size"))))


def other_v1(reg: Registry) -> None:
    declare({"label": str}, name="Other", reg=reg)


def test_check_of_an_unchanged_registry_is_empty() -> None:
    expected = fingerprints(registry_of(thing_v1, other_v1))
    assert check_fingerprints(registry_of(thing_v1, other_v1), expected) == []


def test_check_reports_a_change_without_a_version_bump() -> None:
    expected = fingerprints(registry_of(thing_v1))
    reg = registry_of(thing_v1_changed)
    problems = check_fingerprints(reg, expected)
    old, new = expected["Thing"]["1.0"], fingerprints(reg)["Thing"]["1.0"]
    assert problems == [
        f"Thing 1.0: schema changed without a version bump ({old} -> {new}); "
        "add Version(...) after 1.0 in Thing.VERSIONS describing the change"]


def test_check_reports_a_new_version() -> None:
    expected = fingerprints(registry_of(thing_v1))
    reg = registry_of(thing_v1_1)
    new = fingerprints(reg)["Thing"]["1.1"]
    # The only difference is the new version (see also
    # test_bumping_the_version_keeps_the_previous_versions_fingerprint).
    assert check_fingerprints(reg, expected) == [
        f"Thing 1.1: new version ({new}); record it with --write"]


def test_check_reports_a_remote_method_added_without_a_version_bump() -> None:
    plain, saved = with_remote("none")._rs_registry, with_remote("save")._rs_registry
    assert plain is not None and saved is not None
    problems = check_fingerprints(saved, fingerprints(plain))
    assert len(problems) == 1, problems
    assert problems[0].startswith("Thing 1.0: ")
    assert "without a version bump" in problems[0]
    assert "add Version(...) after 1.0 in Thing.VERSIONS" in problems[0]


def test_check_reports_a_new_object() -> None:
    expected = fingerprints(registry_of(thing_v1))
    reg = registry_of(thing_v1, other_v1)
    assert check_fingerprints(reg, expected) == [
        "Other: new object (1.0); record it with --write"]


def test_check_reports_a_removed_object() -> None:
    expected = fingerprints(registry_of(thing_v1, other_v1))
    problems = check_fingerprints(registry_of(thing_v1), expected)
    assert len(problems) == 1
    assert problems[0].startswith("Other: in the fingerprint file but no longer registered")
    assert "breaks every older service" in problems[0]


def test_check_reports_a_version_gone_from_the_history() -> None:
    expected = fingerprints(registry_of(thing_v1_1))
    problems = check_fingerprints(registry_of(thing_v1_changed), expected)
    assert any(p.startswith("Thing 1.1: recorded but gone from the history") for p in problems)


def renamed_from(old: str) -> Callable[[Registry], None]:
    """Thing 1.1 has field ``name``; 1.0 called it ``old``."""
    def build(reg: Registry) -> None:
        declare({"name": str}, reg=reg, versions=History(
            Version("1.0", "Initial version"),
            Version("1.1", "Better name", Renamed(old, "name"))))
    return build


def test_check_reports_an_older_versions_schema_no_longer_derived() -> None:
    # Released: 1.0 had "title". The history is then edited to claim 1.0
    # had "label": the current version is the same, 1.0 is not.
    expected = fingerprints(registry_of(renamed_from("title")))
    reg = registry_of(renamed_from("label"))
    now = fingerprints(reg)
    assert now["Thing"]["1.1"] == expected["Thing"]["1.1"]
    assert check_fingerprints(reg, expected) == [
        f"Thing 1.0: the history no longer derives the schema released as 1.0 "
        f"({expected['Thing']['1.0']} -> {now['Thing']['1.0']}); fix the history so that "
        "1.0 is what was released"]


# -- files ------------------------------------------------------------------------


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    reg = registry_of(thing_v1_1, other_v1)
    path = tmp_path / "fingerprints.json"
    written = write_fingerprints(reg, path)
    assert written == fingerprints(reg)
    assert read_fingerprints(path) == written
    assert json.loads(path.read_text(encoding="utf-8")) == written
    assert_fingerprints(reg, path)  # no differences: no error


@pytest.mark.parametrize("text", ["[]", '{"Thing": "1.0-x"}', '{"Thing": {"1.0": 1}}',
                                  "not json"])
def test_read_refuses_a_file_that_is_not_a_fingerprint_file(tmp_path: Path,
                                                            text: str) -> None:
    path = tmp_path / "fingerprints.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError):
        read_fingerprints(path)


def test_assert_fingerprints_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "fingerprints.json"
    write_fingerprints(registry_of(thing_v1, other_v1), path)
    reg = registry_of(thing_v1_changed, lambda r: declare({"x": int}, name="New", reg=r))
    problems = check_fingerprints(reg, read_fingerprints(path))
    assert len(problems) == 3  # Other removed, New added, Thing changed in place
    with pytest.raises(FingerprintMismatchError) as info:
        assert_fingerprints(reg, path)
    message = str(info.value)
    assert info.value.diff == message
    assert message.splitlines() == [f"object fingerprints differ from {path}:"] + [
        f"  - {p}" for p in problems]
    assert "Other: in the fingerprint file but no longer registered" in message
    assert "New: new object (1.0)" in message
    assert "Thing 1.0: schema changed without a version bump" in message
    assert "add Version(...) after 1.0 in Thing.VERSIONS" in message
