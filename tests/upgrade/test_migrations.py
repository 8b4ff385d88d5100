"""Online data migrations (rollsafe.upgrade.migrations) on every backend:
SQLite (a file in tmp_path), a real PostgreSQL and a real Redis.

Records are ``Host`` objects of tests/upgrade/migration_domain.py; the
migrations count every application in ``Host.applied``, so a record
migrated twice shows as ``applied == 2``."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from migration_domain import (
    HOST_CURRENT,
    HOST_MIDDLE,
    HOST_OLDEST,
    Host,
    make_store,
    seed,
)

from rollsafe.errors import DefinitionError
from rollsafe.objects.api import to_primitive
from rollsafe.storage import Store
from rollsafe.storage.rewrite import mark_for_rewrite
from rollsafe.upgrade import Batch, OnlineMigrations, Progress
from rollsafe.upgrade import migrations as migrations_module

OpenStore = Callable[..., Store]


# -- fixtures -------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The backend of this test: a fresh SQLite file or a real server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/m.db"
    fixture = {"postgresql": "postgres_url", "redis": "redis_url"}[request.param]
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def open_store(url: str) -> Iterator[OpenStore]:
    """``open_store(storage_versions=None)``: a store of the domain on this
    test's data (a Redis key prefix of the test's own)."""
    options = {"key_prefix": f"rsmig-{uuid.uuid4().hex[:12]}"} if url.startswith("redis") \
        else {}
    stores: list[Store] = []

    def open_one(storage_versions: dict[str, str] | None = None) -> Store:
        store = make_store(url, storage_versions=storage_versions, **options)
        stores.append(store)
        return store

    yield open_one
    first = stores[0] if stores else None
    if first is not None and url.startswith("redis"):
        with contextlib.suppress(NotImplementedError):
            first.backend.drop_all(first.collections)
    for store in stores:
        store.close()


@pytest.fixture
def store(open_store: OpenStore, url: str) -> Store:
    """An empty store of the domain writing the current versions."""
    store = open_store()
    if not url.startswith("redis"):
        store.backend.drop_all(store.collections)
    store.ensure_schema()
    return store


def raw(store: Store) -> dict[int, tuple[str, int, dict[str, Any]]]:
    """Every stored record as key -> (version, revision, data), unconverted."""
    coll = store.collection(Host)
    query = store._query(coll, None, None, None, False, 1000)
    with store.backend.transaction(readonly=True) as tx:
        return {r.key: (r.version, r.revision, r.data) for r in tx.query(coll, query)}


def zone_migrations(**options: Any) -> OnlineMigrations:
    """A set with one per-record migration: zone-less hosts get a zone."""
    migrations = OnlineMigrations("zones")

    @migrations.each(Host, name="zone-default", needs=lambda h: h.zone is None, **options)
    def zone_default(host: Host) -> None:
        host.zone = "zone-a"
        host.applied += 1

    return migrations


# -- registering ------------------------------------------------------------------

def test_names_are_unique_checked_and_kept_in_order() -> None:
    migrations = OnlineMigrations("svc")
    migrations.rewrite(Host)

    @migrations.register("b-second", count=lambda store: 0)
    def second(store: Store, limit: int) -> Batch:
        return Batch(0, 0)

    @migrations.each(Host, name="a-third", needs=lambda h: False)
    def third(host: Host) -> None:
        """Docstring first line is the description."""

    assert migrations.names == ["rewrite-Host", "b-second", "a-third"]
    assert migrations["a-third"].description == "Docstring first line is the description."
    assert second(None, 1) == Batch(0, 0)  # type: ignore[arg-type]  # returned unchanged
    with pytest.raises(DefinitionError, match="'b-second' is already registered"):
        migrations.register("b-second", count=lambda store: 0)(second)
    with pytest.raises(DefinitionError, match="already registered"):
        migrations.rewrite(Host)
    for bad in ("", " spaced", "-dash-first", "x" * 101, "a b"):
        with pytest.raises(DefinitionError, match="must be 1 to 100"):
            migrations.register(bad, count=lambda store: 0)(second)
    with pytest.raises(DefinitionError, match="needs count="):
        migrations.register("no-count", count=None)  # type: ignore[arg-type]
    assert migrations.names == ["rewrite-Host", "b-second", "a-third"]
    assert len(migrations) == 3 and "a-third" in migrations and "zzz" not in migrations


def test_unknown_names_and_bad_run_options_are_refused(store: Store) -> None:
    migrations = zone_migrations()
    with pytest.raises(KeyError, match="no migration 'nope'; it has zone-default"):
        migrations.select(["nope"])
    with pytest.raises(KeyError, match="no migration 'nope'"):
        migrations.pending(store, only=["nope"])
    for options in ({"batch_size": 0}, {"batch_size": 10_001}, {"max_count": 0},
                    {"pause": -1.0}, {"pause": float("nan")}, {"target_seconds": 0},
                    {"batch_size": True}):
        with pytest.raises(ValueError):
            migrations.run(store, **options)


# -- the built-in rewrite -------------------------------------------------------------

def test_rewrite_moves_old_records_to_the_storage_version_exactly_once(
        store: Store, open_store: OpenStore) -> None:
    old = open_store(storage_versions={"Host": HOST_OLDEST})  # the old release wrote these
    seed(old, 23)
    seed(store, 4, start=100)  # and these are current already
    migrations = OnlineMigrations("svc")
    migrations.rewrite(Host)
    assert migrations.pending(store) == {"rewrite-Host": 23}

    report = migrations.run(store, batch_size=5)

    result = report.results[0]
    assert (result.found, result.done, result.remaining, result.error) == (23, 23, 0, None)
    assert result.batches == 6  # 27 records, 5 a page: the sixth page is short
    assert report.exit_code == 0 and report.finished
    records = raw(store)
    assert {k: v[:2] for k, v in records.items() if k < 100} == \
        {k: (HOST_CURRENT, 2) for k in range(1, 24)}  # one write each
    assert {k: v[:2] for k, v in records.items() if k >= 100} == \
        {k: (HOST_CURRENT, 1) for k in range(100, 104)}
    assert migrations.pending(store) == {"rewrite-Host": 0}

    again = migrations.run(store, batch_size=5).results[0]
    assert (again.found, again.done, again.remaining) == (0, 0, 0)
    assert raw(store) == records


def test_migrated_on_read_and_by_the_runner_end_up_identical(
        store: Store, open_store: OpenStore) -> None:
    old = open_store(storage_versions={"Host": HOST_OLDEST})
    seed(old, 6, start=1)
    seed(old, 6, start=11)  # the same data as 1..6, ids 11..16
    before = {k: to_primitive(store.get(Host, k)) for k in range(1, 7)}  # the upgrade path
    for key in range(1, 7):  # the service reads and writes them: migrated on read
        host = store.get(Host, key)
        mark_for_rewrite(store, host)
        store.update(host)
    migrations = OnlineMigrations("svc")
    migrations.rewrite(Host)

    assert migrations.run(store, batch_size=4).results[0].done == 6  # only 11..16 were left

    records = raw(store)
    for key in range(1, 7):
        by_read, by_runner = records[key], records[key + 10]
        assert by_runner[:2] == by_read[:2] == (HOST_CURRENT, 2)
        assert {**by_runner[2], "id": key, "name": f"host-{key}"} == by_read[2]
        assert to_primitive(store.get(Host, key)) == before[key]


def test_a_store_pinned_lower_rewrites_up_to_the_pin_and_never_downgrades(
        store: Store, open_store: OpenStore) -> None:
    old = open_store(storage_versions={"Host": HOST_OLDEST})
    seed(old, 5)
    seed(store, 3, start=50)  # written at the current version by a newer release
    pinned = open_store(storage_versions={"Host": HOST_MIDDLE})
    migrations = OnlineMigrations("svc")
    migrations.rewrite(Host)
    assert migrations.pending(pinned) == {"rewrite-Host": 5}

    result = migrations.run(pinned, batch_size=2).results[0]

    assert (result.found, result.done, result.remaining) == (5, 5, 0)
    versions = {k: v[:2] for k, v in raw(store).items()}
    assert versions == {**{k: (HOST_MIDDLE, 2) for k in range(1, 6)},
                        **{k: (HOST_CURRENT, 1) for k in range(50, 53)}}


# -- per-record migrations -------------------------------------------------------------

def test_found_counts_what_matched_and_each_record_is_migrated_once(store: Store) -> None:
    seed(store, 19, zone="zone-b")
    seed(store, 11, start=100)  # no zone: these need the migration
    migrations = zone_migrations()
    assert migrations.pending(store) == {"zone-default": 11}

    report = migrations.run(store, batch_size=4)

    result = report.results[0]
    assert (result.found, result.done, result.remaining, result.error) == (11, 11, 0, None)
    assert result.batches == 8  # 30 records, 4 a page
    hosts = {k: store.get(Host, k) for k in raw(store)}
    assert {k: (h.zone, h.applied) for k, h in hosts.items() if k >= 100} == \
        {k: ("zone-a", 1) for k in range(100, 111)}
    assert {(h.zone, h.applied) for k, h in hosts.items() if k < 100} == {("zone-b", 0)}
    assert report.to_dict()["migrations"][0]["found"] == 11

    again = migrations.run(store, batch_size=4).results[0]
    assert (again.found, again.done, again.remaining) == (0, 0, 0)


def test_where_narrows_the_records_read(store: Store) -> None:
    seed(store, 5, zone="old")
    seed(store, 3, start=10, zone="other")
    migrations = OnlineMigrations("svc")

    @migrations.each(Host, name="old-zone", needs=lambda h: True, where={"zone": "old"})
    def move(host: Host) -> None:
        host.zone = "new"
        host.applied += 1

    assert migrations.pending(store) == {"old-zone": 5}
    result = migrations.run(store, batch_size=2).results[0]
    assert (result.found, result.done, result.remaining) == (5, 5, 0)
    zones = {k: store.get(Host, k).zone for k in raw(store)}
    assert zones == {**{k: "new" for k in range(1, 6)}, **{k: "other" for k in range(10, 13)}}


def test_max_count_stops_the_run_and_a_rerun_resumes(store: Store) -> None:
    seed(store, 11)
    migrations = zone_migrations()
    migrations.rewrite(Host)  # second: the budget is spent before it runs

    first = migrations.run(store, batch_size=3, max_count=4)

    zone, rewrite = first.results
    assert (zone.found, zone.done, zone.remaining) == (4, 4, 7)
    assert (rewrite.found, rewrite.done, rewrite.remaining, rewrite.batches) == (0, 0, 0, 0)
    assert first.limited and first.exit_code == 1 and not first.finished
    second = migrations.run(store, batch_size=3)
    assert (second.results[0].done, second.results[0].remaining) == (7, 0)
    assert second.exit_code == 0
    assert {store.get(Host, k).applied for k in range(1, 12)} == {1}


def test_dry_run_counts_and_writes_nothing(store: Store, open_store: OpenStore) -> None:
    seed(open_store(storage_versions={"Host": HOST_OLDEST}), 7)
    migrations = zone_migrations()
    migrations.rewrite(Host)
    before = raw(store)

    report = migrations.run(store, dry_run=True)

    assert [(r.name, r.found, r.done, r.remaining) for r in report.results] == \
        [("zone-default", 7, 0, 7), ("rewrite-Host", 7, 0, 7)]
    assert report.dry_run and report.exit_code == 1
    assert raw(store) == before


def test_a_function_migration_runs_until_it_finds_nothing(store: Store) -> None:
    seed(store, 9, zone="old")
    seed(store, 2, start=20, zone="kept")
    migrations = OnlineMigrations("svc")
    limits: list[int] = []

    def count_old(store: Store) -> int:
        return sum(1 for _ in store.stream(Host, where={"zone": "old"}))

    @migrations.register("zone-rename", count=count_old)
    def rename(store: Store, limit: int) -> Batch:
        limits.append(limit)
        with store.unit_of_work() as uow:
            page = uow.query(Host, where={"zone": "old"}, limit=limit)
            for host in page.items:
                host.zone = "new"
                host.applied += 1
            uow.update_many(page.items)
        return Batch(found=len(page.items), migrated=len(page.items))

    result = migrations.run(store, batch_size=4, max_count=100).results[0]

    assert (result.found, result.done, result.remaining, result.batches) == (9, 9, 0, 4)
    assert limits == [4, 4, 4, 4]  # the last call finds nothing: done
    assert {store.get(Host, k).applied for k in range(1, 10)} == {1}
    assert store.get(Host, 20).zone == "kept"


# -- failures ------------------------------------------------------------------------

def test_a_failing_migration_is_reported_with_its_error_and_the_others_run(
        store: Store) -> None:
    seed(store, 6)
    migrations = OnlineMigrations("svc")
    seen: list[int] = []

    @migrations.each(Host, name="first", needs=lambda h: h.zone is None)
    def first(host: Host) -> None:
        host.zone = "z"

    @migrations.each(Host, name="boom", needs=lambda h: "boom" not in h.labels)
    def boom(host: Host) -> None:
        seen.append(host.id)
        if len(seen) == 3:
            raise RuntimeError("host 3 is broken")
        host.labels["boom"] = "yes"

    @migrations.each(Host, name="last", needs=lambda h: h.applied == 0)
    def last(host: Host) -> None:
        host.applied = 1

    report = migrations.run(store, batch_size=4)

    first_r, boom_r, last_r = report.results
    assert (first_r.done, first_r.remaining, first_r.error) == (6, 0, None)
    assert (last_r.done, last_r.remaining, last_r.error) == (6, 0, None)
    assert boom_r.error == "RuntimeError: host 3 is broken"
    assert boom_r.traceback is not None and "host 3 is broken" in boom_r.traceback
    assert (boom_r.found, boom_r.done, boom_r.remaining) == (0, 0, 6)  # the batch rolled back
    assert not any("boom" in store.get(Host, k).labels for k in range(1, 7))
    assert report.exit_code == 2 and [r.name for r in report.errors] == ["boom"]
    assert report.to_dict()["errors"] == 1


@pytest.mark.parametrize(("answer", "message"), [
    (Batch(found=1, migrated=2), "0 <= migrated <= found"),
    (Batch(found=9, migrated=9), "migrated 9 records when asked for at most 3"),
    ((-1, 0), "0 <= migrated <= found"),
    ("done", "must return Batch"),
])
def test_impossible_counters_are_errors_not_progress(store: Store, answer: Any,
                                                     message: str) -> None:
    migrations = OnlineMigrations("svc")
    migrations.register("liar", count=lambda store: 5)(lambda store, limit: answer)

    result = migrations.run(store, batch_size=3).results[0]

    assert result.error is not None and result.error.startswith("MigrationError: ")
    assert message in result.error
    assert (result.done, result.remaining) == (0, 5)


def test_a_count_that_fails_is_an_error_even_on_a_dry_run(store: Store) -> None:
    migrations = OnlineMigrations("svc")

    def broken(store: Store) -> int:
        raise LookupError("no such table")

    migrations.register("m", count=broken)(lambda store, limit: Batch(0, 0))
    with pytest.raises(LookupError):
        migrations.pending(store)  # a gate must not take this for "nothing left"
    for dry_run in (True, False):
        report = migrations.run(store, dry_run=dry_run)
        result = report.results[0]
        assert result.error == "LookupError: no such table"
        assert result.remaining is None and report.exit_code == 2


# -- concurrency, progress, throttling ---------------------------------------------------

def test_a_concurrent_write_is_retried_on_fresh_data_and_kept(
        store: Store, open_store: OpenStore) -> None:
    seed(store, 10)
    other = open_store()  # another service instance, writing meanwhile
    victim, touched = 4, []

    def needs(host: Host) -> bool:
        if host.id == victim and not touched:  # after the page was read, before the write
            touched.append(1)
            concurrent = other.get(Host, victim)
            concurrent.labels = {"written": "concurrently"}
            other.update(concurrent)
        return host.zone is None

    migrations = OnlineMigrations("svc")

    @migrations.each(Host, name="zone", needs=needs)
    def zone(host: Host) -> None:
        host.zone = "zone-a"
        host.applied += 1

    result = migrations.run(store, batch_size=5).results[0]

    assert touched == [1]
    assert (result.found, result.done, result.remaining) == (10, 10, 0)
    hosts = {k: store.get(Host, k) for k in range(1, 11)}
    assert {(h.zone, h.applied) for h in hosts.values()} == {("zone-a", 1)}
    assert hosts[victim].labels == {"written": "concurrently"}  # not overwritten
    assert raw(store)[victim][1] == 3  # the concurrent write, then the migration


def test_progress_is_reported_and_slow_batches_shrink(store: Store) -> None:
    seed(store, 15)
    events: list[Progress] = []
    migrations = zone_migrations()

    # Every batch takes longer than a nanosecond: each halves the next one.
    report = migrations.run(store, batch_size=8, target_seconds=1e-9,
                            progress=events.append)

    assert report.results[0].done == 15
    assert events[0] == Progress("zone-default", 0, 0, 15, 8, 0.0)
    assert [e.batch_size for e in events[1:]] == [8, 4, 2, 1, 1]  # the last page is empty
    assert [e.done for e in events[1:]] == [8, 12, 14, 15, 15]
    assert all(e.total == 15 and e.batch_seconds > 0 for e in events[1:])


def test_a_rewrite_racing_a_writer_is_retried_and_the_write_kept(
        store: Store, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    old = open_store(storage_versions={"Host": HOST_OLDEST})
    seed(old, 8)
    real_read = migrations_module._read_page
    touched: list[int] = []

    def read_then_write(store_: Store, coll: Any, query: Any) -> list[Any]:
        page = real_read(store_, coll, query)
        if not touched and any(r.key == 2 for r in page):
            host = old.get(Host, 2)  # the old release writes record 2 meanwhile
            host.zone = "zone-old-release"
            old.update(host)
            touched.append(1)
        return page

    monkeypatch.setattr(migrations_module, "_read_page", read_then_write)
    migrations = OnlineMigrations("svc")
    migrations.rewrite(Host)
    result = migrations.run(store, batch_size=8).results[0]

    assert (result.found, result.done, result.remaining) == (8, 8, 0)
    versions = {k: v[:2] for k, v in raw(store).items()}
    assert versions == {**{k: (HOST_CURRENT, 2) for k in range(1, 9)}, 2: (HOST_CURRENT, 3)}
    assert store.get(Host, 2).zone == "zone-old-release"
