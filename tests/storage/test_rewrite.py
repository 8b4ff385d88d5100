"""The background rewriter (rollsafe.storage.rewrite) on every backend:
records written by an older release move to the version the store writes,
in bounded batches, idempotently, never downgrading a newer record and
never losing a concurrent write.

Concurrent writes are injected at the rewriter's seams: ``_read_page`` and
``_read_again`` (the short read transactions; a write right after one is a
write between the rewriter's read and its update), and, on Redis,
``UnitOfWork.update`` (a write after the update was checked and buffered,
before ``EXEC``: the WATCH path).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from rollsafe.errors import DefinitionError
from rollsafe.storage import Record, Store, UnitOfWork
from rollsafe.storage import rewrite as rewrite_module
from rollsafe.storage.rewrite import (
    RewriteResult,
    count_outdated,
    mark_for_rewrite,
    rewrite,
    target_version,
)
from rollsafe.storage.store import revision_of

from .domain import APP_CURRENT, APP_MIDDLE, APP_OLDEST, App, Build, Source, new_app

OpenStore = Callable[..., Store]


# -- helpers ----------------------------------------------------------------

def stored(store: Store) -> dict[uuid.UUID, tuple[str, int]]:
    """Every App's (stored version, revision), read through the store."""
    return {app.id: (app._rs_meta[1], revision_of(app)) for app in store.stream(App, batch=13)}


def every_app(store: Store) -> dict[uuid.UUID, App]:
    return {app.id: app for app in store.stream(App, batch=13)}


def fill(store: Store, count: int, *, project: str = "p1") -> list[uuid.UUID]:
    """``count`` apps written by ``store`` (one unit of work)."""
    with store.unit_of_work() as uow:
        return [uow.create(new_app(project=project, name=f"app-{i:03d}", counter=i,
                                   team=f"team-{i % 3}")).id for i in range(count)]


def bump(store: Store, key: uuid.UUID) -> None:
    """A concurrent writer's read-modify-write of one app."""
    app = store.get(App, key)
    app.counter += 1000
    app.note = f"touched {app.counter}"
    store.update(app)


# -- moving records ---------------------------------------------------------

def test_records_of_the_oldest_version_move_to_the_current_one(
        store: Store, open_store: OpenStore) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})
    keys = fill(old, 10)
    before = every_app(store)
    assert set(stored(store).values()) == {(APP_OLDEST, 1)}

    result = rewrite(store, App)

    assert result == RewriteResult(found=10, rewritten=10, conflicts=0, remaining=0,
                                   skipped_newer=0, scanned=10, target=APP_CURRENT)
    assert result.done
    assert stored(store) == {key: (APP_CURRENT, 2) for key in keys}
    after = every_app(store)
    assert after == before  # the same objects, now stored at 1.2
    assert {app.tier for app in after.values()} == {"legacy"}  # 1.0 had no tier
    assert count_outdated(store, App) == (0, 0)


def test_a_second_run_finds_nothing_to_rewrite(store: Store, open_store: OpenStore) -> None:
    fill(open_store(storage_versions={"App": APP_OLDEST}), 5)
    first = rewrite(store, App)
    revisions = stored(store)

    second = rewrite(store, App)

    assert (first.found, first.rewritten) == (5, 5)
    assert second == RewriteResult(found=0, rewritten=0, conflicts=0, remaining=0,
                                   skipped_newer=0, scanned=5, target=APP_CURRENT)
    assert stored(store) == revisions  # nothing was written again


def test_only_records_older_than_the_target_are_rewritten(
        store: Store, open_store: OpenStore) -> None:
    oldest = fill(open_store(storage_versions={"App": APP_OLDEST}), 3)
    middle = fill(open_store(storage_versions={"App": APP_MIDDLE}), 4)
    current = fill(store, 5)
    before = every_app(store)

    result = rewrite(store, App, batch=4)

    assert (result.found, result.rewritten, result.scanned, result.remaining) == (7, 7, 12, 0)
    versions = stored(store)
    assert {versions[k] for k in oldest + middle} == {(APP_CURRENT, 2)}
    assert {versions[k] for k in current} == {(APP_CURRENT, 1)}  # untouched
    assert every_app(store) == before


def test_batches_of_7_over_50_records(store: Store, open_store: OpenStore,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    keys = fill(open_store(storage_versions={"App": APP_OLDEST}), 50)
    before = every_app(store)
    pages: list[int] = []
    real_read = rewrite_module._read_page

    def spy(store_: Store, coll: Any, query: Any) -> list[Record]:
        page = real_read(store_, coll, query)
        pages.append(len(page))
        assert query.limit == 7
        return page

    monkeypatch.setattr(rewrite_module, "_read_page", spy)
    result = rewrite(store, App, batch=7)

    assert (result.found, result.rewritten, result.conflicts, result.remaining) == (50, 50, 0, 0)
    # the walk: 7 full pages and a short one; then the final count: one
    # GROUP BY on SQL, again in pages of 7 where the backend cannot count
    walk = [7] * 7 + [1]
    sql = store.backend.name == "sql"
    assert pages == walk + ([] if sql else walk)
    assert stored(store) == {key: (APP_CURRENT, 2) for key in keys}
    assert every_app(store) == before


def test_max_batches_stops_early_and_the_next_run_finishes(
        store: Store, open_store: OpenStore) -> None:
    fill(open_store(storage_versions={"App": APP_OLDEST}), 50)

    partial = rewrite(store, App, batch=7, max_batches=2)
    assert (partial.found, partial.rewritten, partial.scanned, partial.remaining) == (
        14, 14, 14, 36)
    assert not partial.done
    assert count_outdated(store, App) == (36, 0)

    rest = rewrite(store, App, batch=7, pause=0.001)
    assert (rest.found, rest.rewritten, rest.scanned, rest.remaining) == (36, 36, 50, 0)


def test_a_record_newer_than_the_target_is_skipped_not_downgraded(
        store: Store, open_store: OpenStore) -> None:
    old_keys = fill(open_store(storage_versions={"App": APP_OLDEST}), 3)
    newer = fill(store, 2)  # written by the newest release at 1.2
    pinned = open_store(storage_versions={"App": APP_MIDDLE})  # a release pinned to 1.1
    before = every_app(store)
    assert target_version(pinned, App) == APP_MIDDLE

    result = rewrite(pinned, App, batch=2)

    assert result == RewriteResult(found=3, rewritten=3, conflicts=0, remaining=0,
                                   skipped_newer=2, scanned=5, target=APP_MIDDLE)
    versions = stored(store)
    assert {versions[k] for k in old_keys} == {(APP_MIDDLE, 2)}
    assert {versions[k] for k in newer} == {(APP_CURRENT, 1)}  # not downgraded, not written
    assert every_app(store) == before
    assert count_outdated(pinned, App) == (0, 2)
    assert rewrite(pinned, App).rewritten == 0


def test_a_store_pinned_above_the_current_version_writes_the_current_one(
        store: Store, open_store: OpenStore) -> None:
    fill(open_store(storage_versions={"App": APP_OLDEST}), 2)
    ahead = open_store(storage_versions={"App": "9.0"})  # the fleet already knows a newer one
    assert target_version(ahead, App) == APP_CURRENT
    assert rewrite(ahead, App).rewritten == 2


def test_a_project_is_rewritten_alone(store: Store, open_store: OpenStore) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})
    mine = fill(old, 4, project="p1")
    theirs = fill(old, 3, project="p2")

    result = rewrite(store, App, project="p1", batch=3)

    assert (result.found, result.rewritten, result.scanned, result.remaining) == (4, 4, 4, 0)
    versions = stored(store)
    assert {versions[k] for k in mine} == {(APP_CURRENT, 2)}
    assert {versions[k] for k in theirs} == {(APP_OLDEST, 1)}
    assert count_outdated(store, App) == (3, 0)
    assert count_outdated(store, App, project="p1") == (0, 0)


def test_a_class_with_one_version_and_int_keys_has_nothing_to_rewrite(store: Store) -> None:
    app = store.create(new_app())
    for number in (3, -1, 2**40):
        store.create(Build(number=number, app_id=app.id))
    result = rewrite(store, Build, batch=2)
    assert (result.found, result.rewritten, result.scanned, result.remaining) == (0, 0, 3, 0)


def test_arguments_are_checked(store: Store) -> None:
    for bad in ({"batch": 0}, {"batch": 10_001}, {"batch": 2.0}, {"max_batches": 0},
                {"pause": -1}, {"pause": float("nan")}):
        with pytest.raises(ValueError):
            rewrite(store, App, **bad)

    with pytest.raises(DefinitionError, match="no Collection"):
        rewrite(store, Source)  # stored only inside apps


def test_mark_for_rewrite_makes_update_write_the_whole_record(
        store: Store, open_store: OpenStore) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})
    [key] = fill(old, 1)
    app = store.get(App, key)
    mark_for_rewrite(store, app)
    store.update(app)  # nothing was assigned: the mark alone writes it at 1.2
    assert stored(store)[key] == (APP_CURRENT, 2)
    same = store.get(App, key)
    mark_for_rewrite(store, same)  # at the same version: every field written again
    store.update(same)
    assert stored(store)[key] == (APP_CURRENT, 3)
    assert store.get(App, key) == app


# -- concurrent writers -----------------------------------------------------

def test_a_write_between_the_read_and_the_rewrite_is_retried_and_kept(
        store: Store, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})  # the old release, still running
    keys = fill(old, 20)
    victim = keys[3]
    real_read = rewrite_module._read_page
    touched: list[int] = []

    def read_then_write(store_: Store, coll: Any, query: Any) -> list[Record]:
        page = real_read(store_, coll, query)
        if not touched and any(r.key == str(victim) for r in page):
            bump(old, victim)  # after the page was read, before its unit of work
            touched.append(1)
        return page

    monkeypatch.setattr(rewrite_module, "_read_page", read_then_write)
    result = rewrite(store, App, batch=5)

    assert touched == [1]
    assert (result.found, result.rewritten, result.conflicts, result.remaining) == (20, 20, 0, 0)
    versions = stored(store)
    assert versions[victim] == (APP_CURRENT, 3)  # old writer's revision 2, then the rewrite
    assert all(versions[k] == (APP_CURRENT, 2) for k in keys if k != victim)
    final = store.get(App, victim)
    assert (final.counter, final.note) == (3 + 1000, "touched 1003")  # nothing lost


def test_a_record_that_keeps_changing_is_counted_as_a_conflict_and_left_for_later(
        store: Store, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})
    keys = fill(old, 12)
    victim = keys[7]
    real_read, real_again = rewrite_module._read_page, rewrite_module._read_again
    touches = 0

    def touch_if_read(records: list[Record]) -> None:
        nonlocal touches
        if any(r.key == str(victim) for r in records):
            bump(old, victim)
            touches += 1

    def read_page(store_: Store, coll: Any, query: Any) -> list[Record]:
        page = real_read(store_, coll, query)
        touch_if_read(page)
        return page

    def read_again(store_: Store, coll: Any, records: list[Record]) -> list[Record]:
        found = real_again(store_, coll, records)
        touch_if_read(found)
        return found

    monkeypatch.setattr(rewrite_module, "_read_page", read_page)
    monkeypatch.setattr(rewrite_module, "_read_again", read_again)
    result = rewrite(store, App, batch=5)

    # read by the walk, the retry and (where the backend cannot count
    # without reading: not SQL) the final count: written after each
    assert touches == (2 if store.backend.name == "sql" else 3)
    assert (result.found, result.rewritten, result.conflicts, result.remaining) == (12, 11, 1, 1)
    assert stored(store)[victim] == (APP_OLDEST, 1 + touches)
    assert store.get(App, victim).counter == 7 + 1000 * touches

    monkeypatch.undo()
    again = rewrite(store, App)
    assert (again.found, again.rewritten, again.conflicts, again.remaining) == (1, 1, 0, 0)
    assert store.get(App, victim).counter == 7 + 1000 * touches


def test_writes_between_batches_are_kept(store: Store, open_store: OpenStore) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})
    keys = sorted(fill(old, 21), key=str)  # the walk's order
    first = rewrite(store, App, batch=7, max_batches=1)
    assert (first.rewritten, first.remaining) == (7, 14)
    versions = stored(store)
    assert [versions[k][0] for k in keys] == [APP_CURRENT] * 7 + [APP_OLDEST] * 14

    # the new release updates a record already moved, the old one a record not yet moved
    moved = store.get(App, keys[2])
    moved.name = "renamed by the new release"
    store.update(moved)
    bumped = store.get(App, keys[12]).counter + 1000
    bump(old, keys[12])
    # and the old release creates one behind the walk
    late = old.create(new_app(name="late", counter=99)).id

    rest = rewrite(store, App, batch=7)
    assert (rest.found, rest.rewritten, rest.conflicts, rest.remaining) == (15, 15, 0, 0)
    versions = stored(store)
    assert set(versions) == {*keys, late}
    assert {version for version, _ in versions.values()} == {APP_CURRENT}
    assert store.get(App, keys[2]).name == "renamed by the new release"
    assert store.get(App, keys[12]).counter == bumped
    assert store.get(App, late).counter == 99


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
def test_redis_a_write_after_the_update_before_exec_discards_the_batch_and_retries(
        store: Store, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})
    keys = fill(old, 10)
    victim = keys[0]
    real_update = UnitOfWork.update
    state = {"writing": False, "done": False}

    def update_then_write(self: UnitOfWork, obj: Any) -> Any:
        written = real_update(self, obj)
        # after the victim's update was checked and buffered (its key watched)
        if not state["done"] and not state["writing"] and obj.id == victim:
            state["writing"] = True  # the concurrent writer's own update is left alone
            bump(old, victim)
            state["writing"], state["done"] = False, True
        return written

    monkeypatch.setattr(UnitOfWork, "update", update_then_write)
    result = rewrite(store, App, batch=10)

    assert state["done"]
    # the first unit failed whole (WATCH); the next pass retried all ten
    assert (result.found, result.rewritten, result.conflicts, result.remaining) == (10, 10, 0, 0)
    versions = stored(store)
    assert versions[victim] == (APP_CURRENT, 3)
    assert all(versions[k] == (APP_CURRENT, 2) for k in keys if k != victim)
    final = store.get(App, victim)
    assert (final.counter, final.note) == (1000, "touched 1000")


def test_a_record_deleted_during_the_rewrite_is_not_an_error(
        store: Store, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})
    keys = fill(old, 6)
    real_read = rewrite_module._read_page
    gone: list[uuid.UUID] = []

    def read_then_delete(store_: Store, coll: Any, query: Any) -> list[Record]:
        page = real_read(store_, coll, query)
        if not gone and page:
            gone.append(uuid.UUID(page[0].key))
            old.delete(old.get(App, gone[0]))
        return page

    monkeypatch.setattr(rewrite_module, "_read_page", read_then_delete)
    result = rewrite(store, App, batch=4)

    assert (result.found, result.rewritten, result.conflicts, result.remaining) == (6, 5, 0, 0)
    assert set(stored(store)) == set(keys) - set(gone)
