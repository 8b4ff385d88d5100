"""Release history, pins by release name, and services without a store."""

from __future__ import annotations

import pytest

from rollsafe import Added, History, Registry, Version, VersionedObject
from rollsafe.errors import DefinitionError
from rollsafe.rpc import Fleet
from rollsafe.rpc.releases import ReleaseHistory
from rollsafe.storage import Store, open_backend
from rollsafe.storage.nostore import StoreAccessError

code = Registry("releases")


class Plan(VersionedObject, registry=code):
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Plans have a tier", Added("tier")),
                       Version("1.2", "Plans have a quota", Added("quota")))
    name: str
    tier: str = "free"
    quota: int = 0


class Quota(VersionedObject, registry=code):
    limit: int = 0


RELEASES = ReleaseHistory([
    ("2025.1", {"Plan": "1.0", "Quota": "1.0"}),
    ("2025.2", {"Plan": "1.1", "Quota": "1.0"}),
    ("2026.1", {"Plan": "1.2", "Quota": "1.0"}),
])


def test_the_newest_release_matches_the_code() -> None:
    assert RELEASES.check(code) == []


def test_a_version_bump_without_a_release_entry_is_reported() -> None:
    stale = ReleaseHistory([("2025.1", {"Plan": "1.0", "Quota": "1.0"}),
                            ("2025.2", {"Plan": "1.1", "Quota": "1.0"})])
    problems = stale.check(code)
    assert problems == ["Plan is at 1.2 but release 2025.2 records 1.1: add a release entry "
                        "with the new versions"]


def test_an_object_missing_from_the_history_or_the_code_is_reported() -> None:
    history = ReleaseHistory([("r1", {"Plan": "1.2", "Gone": "1.0"})])
    assert history.check(code) == [
        "Gone: recorded in release r1 but no longer registered",
        "Quota is at 1.0 but release r1 records nothing: add a release entry with the new "
        "versions"]


def test_oldest_supported_covers_the_last_releases() -> None:
    assert RELEASES.oldest_supported(keep=2) == {"Plan": "1.1", "Quota": "1.0"}
    assert RELEASES.oldest_supported(keep=3) == {"Plan": "1.0", "Quota": "1.0"}


def test_malformed_histories_are_refused() -> None:
    with pytest.raises(DefinitionError, match="at least one release"):
        ReleaseHistory([])
    with pytest.raises(DefinitionError, match="unique"):
        ReleaseHistory([("a", {}), ("a", {})])
    with pytest.raises(DefinitionError, match="only move forward"):
        ReleaseHistory([("a", {"Plan": "1.1"}), ("b", {"Plan": "1.0"})])
    with pytest.raises(DefinitionError, match="not a version"):
        ReleaseHistory([("a", {"Plan": "one"})])
    with pytest.raises(KeyError, match=r"known: 2025\.1, 2025\.2, 2026\.1"):
        RELEASES.manifest("2024.9")


def test_a_release_name_pins_the_fleet_to_its_versions() -> None:
    from rollsafe.rpc import SERVICES

    store = Store(open_backend("sqlite://"), [SERVICES])
    store.ensure_schema()
    fleet = Fleet(store, manual_pins=RELEASES.manifest("2025.2"),
                  oldest_supported=RELEASES.oldest_supported())
    fleet.join("api", "h1", "2026.1", code.manifest())
    assert fleet.pins() == {"Plan": "1.1", "Quota": "1.0"}  # held at 2025.2


def test_a_service_without_store_access_gets_a_clear_error() -> None:
    store = Store(open_backend("none://", service="the worker"), [])
    with pytest.raises(StoreAccessError, match="the worker has no store access"):
        store.ensure_schema()
    with pytest.raises(StoreAccessError, match="go through the conductor"), \
            store.unit_of_work():
        pass
