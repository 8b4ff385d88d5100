"""Change lists across a Custom change: its functions may move a value from
one field to another, so a change to any field counts as a change to every
field across it, on the way down (a pinned writer) and on the way up (an
older payload's change list). Otherwise a write driven by what changed
would leave the moved value behind."""

from __future__ import annotations

from typing import Any

from rollsafe import (
    Custom,
    History,
    Registry,
    Removed,
    Version,
    VersionedObject,
    from_primitive,
    reset_changes,
    to_primitive,
    what_changed,
)

reg = Registry("custom-changes")


def _flag_in(values: dict[str, Any]) -> None:
    values["tags"] = [*values["tags"], "private"] if values.pop("private") else values["tags"]


def _flag_out(values: dict[str, Any]) -> None:
    values["private"] = "private" in values["tags"]
    values["tags"] = [tag for tag in values["tags"] if tag != "private"]


class Repo(VersionedObject, registry=reg):
    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "The private flag is a tag",
                Custom("move the flag into the tags", upgrade=_flag_in, downgrade=_flag_out),
                Removed("private", bool, default=False)),
    )
    name: str
    tags: list[str]


def test_a_change_sent_across_a_custom_change_marks_every_older_field() -> None:
    repo = Repo(name="shop", tags=[])
    reset_changes(repo)
    repo.tags.append("private")
    old = to_primitive(repo, "1.0")
    assert old["versioned_object.data"] == {"name": "shop", "tags": [], "private": True}
    assert old["versioned_object.changes"] == ["name", "private", "tags"]


def test_nothing_changed_stays_nothing_changed() -> None:
    repo = Repo(name="shop", tags=[])
    reset_changes(repo)
    assert "versioned_object.changes" not in to_primitive(repo, "1.0")


def test_an_older_change_list_across_a_custom_change_marks_every_field() -> None:
    payload = {"versioned_object.name": "Repo", "versioned_object.namespace": reg.namespace,
               "versioned_object.version": "1.0",
               "versioned_object.data": {"name": "shop", "tags": [], "private": True},
               "versioned_object.changes": ["private"]}
    repo = from_primitive(payload, Repo)
    assert repo.tags == ["private"]
    assert what_changed(repo) == {"name", "tags"}
