"""What every backend must do, the same way: one suite, run on SQLite (a
file), PostgreSQL and Redis through the ``store`` fixture (conftest.py).

Everything here goes through the public Store API; the only look below it
is :func:`stored_record`, which reads the raw record through the backend
port (``Backend.transaction().get``) to see the version a record is stored
at, which no object shows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from rollsafe import DecodeError, ValidationError, to_primitive, what_changed
from rollsafe.errors import ConflictError, DefinitionError, NotFoundError, StorageError
from rollsafe.storage import Record, Store, Transaction, UnitOfWork
from rollsafe.storage.base import encode_cursor
from rollsafe.storage.store import revision_of

from .domain import (
    APP_CURRENT,
    APP_MIDDLE,
    APP_OLDEST,
    BASE_TIME,
    IST,
    NST,
    UTC,
    App,
    Build,
    Event,
    Source,
    new_app,
)

OpenStore = Callable[..., Store]

ZONES = [UTC, IST, NST, dt.timezone(dt.timedelta(hours=14)), dt.timezone(-dt.timedelta(hours=12))]


# -- helpers ----------------------------------------------------------------

def stored_record(store: Store, cls: type[Any], key: Any) -> Record | None:
    """The raw record of ``key`` (its stored version and data), through the
    backend port."""
    with store.backend.transaction() as tx:
        return tx.get(store.collection(cls), str(key) if isinstance(key, uuid.UUID) else key,
                      None)


def ids(apps: list[App]) -> list[uuid.UUID]:
    return [a.id for a in apps]


def in_order(apps: list[App], order_by: str | None, descending: bool = False) -> list[uuid.UUID]:
    """The ids of ``apps`` in keyset order: by the field, then by the key (as
    its canonical string); descending reverses both."""
    def sort_key(app: App) -> tuple[Any, str]:
        return (getattr(app, order_by) if order_by else 0, str(app.id))

    return ids(sorted(apps, key=sort_key, reverse=descending))


def every_page(store: Store, *, limit: int, **options: Any) -> list[list[App]]:
    """Every page of a listing, following ``next_cursor`` to the end."""
    pages: list[list[App]] = []
    cursor: str | None = None
    for _ in range(200):
        page = store.query(App, limit=limit, cursor=cursor, **options)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return pages
    pytest.fail("pagination did not end after 200 pages")


def create_all(store: Store, apps: list[App]) -> list[App]:
    with store.unit_of_work() as uow:
        for app in apps:
            uow.create(app)
    return apps


# -- create and get ---------------------------------------------------------

def test_create_then_get_returns_an_equal_object_with_every_field_type(store: Store) -> None:
    app = new_app()
    store.create(app)
    assert revision_of(app) == 1

    back = store.get(App, app.id)
    assert back == app
    assert to_primitive(back) == to_primitive(app)  # exact: datetimes as ISO text with offsets
    assert revision_of(back) == 1
    assert what_changed(back) == set()
    # datetimes keep their offset and microseconds, at the top and nested
    assert back.created_at.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert back.created_at.microsecond == 654321
    assert back.source.pushed_at is not None
    assert back.source.pushed_at.utcoffset() == -dt.timedelta(hours=3, minutes=30)
    assert back.source.pushed_at.microsecond == 1
    assert [e.at.utcoffset() for e in back.events] == [dt.timedelta(0),
                                                       dt.timedelta(hours=5, minutes=30)]
    assert back.events[1].at.microsecond == 999999
    # the exact types come back, not look-alikes
    assert type(back.score) is float and back.score == 0.1 + 0.2
    assert type(back.counter) is int and type(back.enabled) is bool
    assert back.ports == [80, 443, -1, 2**63 - 1]
    assert back.tags == {"blue", "édition", "🚀"}
    assert store.get(App, app.id, project="p1") == app


def test_create_then_get_round_trips_nulls_defaults_extremes_and_empty_collections(
        store: Store) -> None:
    app = App(id=uuid.uuid4(), project="p1", name="", created_at=BASE_TIME,
              counter=-(2**63), score=-1.5e308, note=None, priority=None,
              source=Source(url="u"))
    store.create(app)
    back = store.get(App, app.id)
    assert back == app
    assert to_primitive(back) == to_primitive(app)
    assert back.note is None and back.priority is None and back.source.revision is None
    assert back.ports == [] and back.tags == set() and back.labels == {} and back.events == []


def test_create_then_get_round_trips_an_object_with_an_int_key_and_no_project(
        store: Store) -> None:
    build = Build(number=2**62, app_id=uuid.uuid4(), log="ok\nline 2\ttab",
                  finished_at=dt.datetime(2030, 1, 1, 0, 0, 0, 5, tzinfo=NST))
    store.create(build)
    back = store.get(Build, 2**62)
    assert back == build
    assert to_primitive(back) == to_primitive(build)


@pytest.mark.parametrize("when", [
    dt.datetime(2024, 1, 1, tzinfo=UTC),
    dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=IST),
    dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=NST),
    dt.datetime(2024, 7, 1, 12, 0, 0, 500000, tzinfo=dt.timezone(dt.timedelta(hours=14))),
    dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.timezone(-dt.timedelta(hours=23, minutes=59))),
    dt.datetime(1970, 1, 1, tzinfo=dt.timezone(dt.timedelta(minutes=1))),
    dt.datetime(1901, 12, 13, 20, 45, 52, 123, tzinfo=UTC),
    dt.datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC),
], ids=lambda d: d.isoformat())
def test_datetimes_round_trip_with_their_offset_and_microseconds(store: Store,
                                                                 when: dt.datetime) -> None:
    app = store.create(new_app(created_at=when, events=[Event(at=when, what="x")]))
    back = store.get(App, app.id)
    assert back.created_at == when
    assert back.created_at.utcoffset() == when.utcoffset()
    assert back.created_at.isoformat() == when.isoformat()
    assert back.events[0].at.isoformat() == when.isoformat()


@pytest.mark.parametrize("when", [
    dt.datetime(1, 1, 1, tzinfo=IST),              # before year 1 in UTC
    dt.datetime(9999, 12, 31, 23, 0, tzinfo=NST),  # after year 9999 in UTC
], ids=lambda d: d.isoformat())
def test_datetimes_whose_utc_instant_is_off_the_calendar_are_refused_before_storing(
        store: Store, when: dt.datetime) -> None:
    """Stores keep datetimes as UTC instants, so a datetime whose instant
    falls outside years 1-9999 is refused when it is given to the object,
    the same way on every backend, and nothing reaches the store."""
    with pytest.raises(ValidationError, match="outside years 1-9999"):
        new_app(created_at=when)
    at_the_edge = when.replace(tzinfo=dt.UTC)  # the same wall time in UTC fits
    app = store.create(new_app(created_at=at_the_edge))
    assert store.get(App, app.id).created_at == at_the_edge


def test_strings_round_trip_with_any_unicode_including_nul(store: Store) -> None:
    """A str field accepts any Unicode text, so the store must keep it all:
    NUL, line and paragraph separators, combining marks, astral characters."""
    text = "a\x00b\u2028c\u2029d\u0301e\U0001f680\ufeff"
    if store.backend.name == "sql" and store.backend.dialect == "postgresql":
        # PostgreSQL text and jsonb cannot hold NUL: a clear StorageError,
        # and nothing is written.
        with pytest.raises(StorageError, match="cannot store a value"):
            store.create(new_app(note=text))
        assert store.query(App).items == []
        text = text.replace("\x00", "")
    app = store.create(new_app(note=text, tags={text}, labels={text: text},
                               source=Source(url=text)))
    back = store.get(App, app.id)
    assert back.note == text
    assert back.tags == {text} and back.labels == {text: text} and back.source.url == text


def test_get_of_a_missing_key_raises_not_found(store: Store) -> None:
    store.create(new_app())
    with pytest.raises(NotFoundError):
        store.get(App, uuid.uuid4())
    with pytest.raises(NotFoundError):
        store.get(Build, 12345)


def test_get_of_another_projects_key_raises_not_found(store: Store) -> None:
    app = store.create(new_app(project="p1"))
    with pytest.raises(NotFoundError):
        store.get(App, app.id, project="p2")
    assert store.get(App, app.id, project="p1") == app
    assert store.get(App, app.id) == app  # unscoped


def test_create_of_an_existing_key_raises_conflict_and_keeps_the_stored_one(
        store: Store) -> None:
    app = store.create(new_app(name="first"))
    for project in ("p1", "p2"):  # a key is unique across projects
        with pytest.raises(ConflictError):
            store.create(new_app(id=app.id, project=project, name="second"))
    back = store.get(App, app.id)
    assert back == app and back.name == "first" and revision_of(back) == 1
    with pytest.raises(NotFoundError):
        store.get(App, app.id, project="p2")


# -- update -----------------------------------------------------------------

def test_update_writes_only_changed_fields_and_refuses_a_stale_copy(store: Store) -> None:
    original = store.create(new_app(name="web", note="original note"))
    copy_a = store.get(App, original.id)
    copy_b = store.get(App, original.id)

    copy_a.name = "renamed by A"
    store.update(copy_a)
    assert revision_of(copy_a) == 2

    copy_b.note = "written by stale B"
    with pytest.raises(ConflictError):
        store.update(copy_b)
    stored = store.get(App, original.id)
    assert stored.name == "renamed by A"
    assert stored.note == "original note"
    assert revision_of(stored) == 2

    stored.note = "written by B after reloading"
    store.update(stored)
    assert revision_of(stored) == 3
    final = store.get(App, original.id)
    assert (final.name, final.note) == ("renamed by A", "written by B after reloading")
    assert revision_of(final) == 3


def test_update_without_changes_writes_nothing(store: Store) -> None:
    app = store.create(new_app())
    copy = store.get(App, app.id)
    store.update(copy)
    assert revision_of(copy) == 1
    assert revision_of(store.get(App, app.id)) == 1


def test_update_writes_in_place_changes_of_lists_sets_dicts_and_nested_objects(
        store: Store) -> None:
    app = store.create(new_app())
    copy = store.get(App, app.id)
    copy.ports.append(8080)
    copy.tags.add("new")
    copy.labels["added"] = "yes"
    copy.source.revision = "def456"
    copy.events[0].what = "born"
    copy.status = "stopped"
    copy.created_at = dt.datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=NST)
    copy.priority = None
    store.update(copy)
    back = store.get(App, app.id)
    assert back == copy
    assert to_primitive(back) == to_primitive(copy)
    assert revision_of(back) == 2


def test_update_of_a_deleted_object_raises_not_found(store: Store) -> None:
    app = store.create(new_app())
    copy = store.get(App, app.id)
    store.delete(app)
    copy.name = "too late"
    with pytest.raises(NotFoundError):
        store.update(copy)


# -- versions: old writers, old records ---------------------------------------

def test_an_old_writer_keeps_fields_it_does_not_know_on_a_record_at_its_version(
        store: Store, open_store: OpenStore) -> None:
    """A store pinned to App 1.0 (as an older release writes) updates a
    record stored at 1.0: ``tier`` (added in 1.1) and ``team`` (called
    ``owner`` in 1.0) keep what is stored, as does every other field."""
    old = open_store(storage_versions={"App": APP_OLDEST})
    app = old.create(new_app(team="payments", tier="gold"))
    record = stored_record(store, App, app.id)
    assert record is not None and record.version == APP_OLDEST
    before = store.get(App, app.id)
    assert (before.tier, before.team) == ("legacy", "payments")  # tier never stored at 1.0

    writer = old.get(App, app.id)
    writer.name = "renamed by the old writer"
    old.update(writer)

    after = store.get(App, app.id)
    assert after.name == "renamed by the old writer"
    assert (after.tier, after.team) == ("legacy", "payments")
    before.name = after.name
    assert after == before  # and nothing else moved
    assert revision_of(after) == 2
    record = stored_record(store, App, app.id)
    assert record is not None and record.version == APP_OLDEST


def test_a_middle_writer_keeps_the_added_field_it_knows_and_the_renamed_one_it_does_not(
        store: Store, open_store: OpenStore) -> None:
    middle = open_store(storage_versions={"App": APP_MIDDLE})
    app = middle.create(new_app(team="payments", tier="gold"))
    writer = middle.get(App, app.id)
    writer.counter += 1
    middle.update(writer)
    after = store.get(App, app.id)
    assert (after.tier, after.team, after.counter) == ("gold", "payments", 8)
    record = stored_record(store, App, app.id)
    assert record is not None and record.version == APP_MIDDLE
    assert "owner" in record.data and "team" not in record.data


def test_an_old_writer_refuses_to_downgrade_a_newer_record(
        store: Store, open_store: OpenStore) -> None:
    """When the record is stored at the current version and a store pinned
    to 1.0 would update it, writing it at 1.0 would lose ``tier`` (1.0 lacks
    it): the store refuses instead, and the stored record is untouched. (With
    one pin shared by the fleet this cannot happen: nothing is stored above
    the pin until every reader knows the newer version.)"""
    old = open_store(storage_versions={"App": APP_OLDEST})
    app = store.create(new_app(team="payments", tier="gold"))
    writer = old.get(App, app.id)
    writer.name = "renamed by the old writer"
    with pytest.raises(StorageError, match="newer than the storage version"):
        old.update(writer)

    after = store.get(App, app.id)
    assert after == app
    assert revision_of(after) == 1


def test_records_written_at_an_older_version_are_read_as_the_current_version(
        store: Store, open_store: OpenStore) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})
    written = new_app(team="payments", tier="gold")
    old.create(written)

    record = stored_record(store, App, written.id)
    assert record is not None and record.version == APP_OLDEST
    assert record.data["owner"] == "payments"
    assert "team" not in record.data and "tier" not in record.data

    back = store.get(App, written.id)
    assert back.team == "payments"    # Renamed: carried from owner
    assert back.tier == "legacy"      # Added: its default, not the field default
    written.tier = "legacy"
    assert back == written
    assert old.get(App, written.id) == back  # the old store reads it the same way
    listed = store.query(App, where={"name": written.name})
    assert listed.items == [back]


def test_after_the_pin_rises_the_next_update_rewrites_the_record_at_the_current_version(
        store: Store, open_store: OpenStore) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})
    app = old.create(new_app(team="payments"))
    pinned = old.get(App, app.id)
    pinned.counter = 100
    old.update(pinned)
    record = stored_record(store, App, app.id)
    assert record is not None and record.version == APP_OLDEST

    risen = open_store(storage_versions={"App": APP_CURRENT})
    read = risen.get(App, app.id)
    record = stored_record(store, App, app.id)
    assert record is not None and record.version == APP_OLDEST  # reading rewrites nothing

    read.counter = 101
    risen.update(read)
    record = stored_record(store, App, app.id)
    assert record is not None and record.version == APP_CURRENT
    assert record.revision == 3
    assert record.data["team"] == "payments" and record.data["tier"] == "legacy"
    assert "owner" not in record.data
    back = store.get(App, app.id)
    assert (back.counter, back.team, back.tier) == (101, "payments", "legacy")
    assert back == read


# -- unit of work -----------------------------------------------------------

def test_a_unit_of_work_commits_several_creates_and_updates_together(store: Store) -> None:
    existing = store.create(new_app(name="existing"))
    with store.unit_of_work() as uow:
        first = uow.create(new_app(name="first"))
        second = uow.create(new_app(name="second", project="p2"))
        build = uow.create(Build(number=1, app_id=first.id))
        loaded = uow.get(App, existing.id)
        loaded.counter += 1
        uow.update(loaded)
    assert store.get(App, first.id) == first
    assert store.get(App, second.id, project="p2") == second
    assert store.get(Build, 1) == build
    stored = store.get(App, existing.id)
    assert stored.counter == existing.counter + 1 and revision_of(stored) == 2


def test_a_unit_of_work_reads_its_own_writes(store: Store) -> None:
    with store.unit_of_work() as uow:
        app = uow.create(new_app(name="fresh"))
        inside = uow.get(App, app.id)
        assert inside == app
        inside.counter += 1
        uow.update(inside)
        assert uow.get(App, app.id).counter == app.counter + 1
        listed = ids(uow.query(App, where={"name": "fresh"}).items)
        # Redis buffers a unit's writes until EXEC: its listings inside the
        # unit show the stored state (documented in rollsafe.storage.redis).
        assert listed == ([] if store.backend.name == "redis" else [app.id])
    assert revision_of(store.get(App, app.id)) == 2


def test_an_exception_inside_a_unit_of_work_leaves_nothing_written(store: Store) -> None:
    existing = store.create(new_app(name="existing"))
    doomed = store.create(new_app(name="to delete"))

    class Boom(Exception):
        pass

    created = new_app(name="never")
    with pytest.raises(Boom), store.unit_of_work() as uow:
        uow.create(created)
        uow.create(Build(number=7, app_id=created.id))
        loaded = uow.get(App, existing.id)
        loaded.name = "never renamed"
        uow.update(loaded)
        uow.delete(uow.get(App, doomed.id))
        raise Boom
    with pytest.raises(NotFoundError):
        store.get(App, created.id)
    with pytest.raises(NotFoundError):
        store.get(Build, 7)
    stored = store.get(App, existing.id)
    assert stored == existing and revision_of(stored) == 1
    assert store.get(App, doomed.id) == doomed


def test_a_conflict_in_one_update_leaves_the_whole_unit_unwritten(store: Store) -> None:
    fresh = store.create(new_app(name="fresh"))
    contested = store.create(new_app(name="contested"))
    stale = store.get(App, contested.id)
    winner = store.get(App, contested.id)
    winner.note = "the other writer won"
    store.update(winner)

    created = new_app(name="never")
    with pytest.raises(ConflictError), store.unit_of_work() as uow:
        uow.create(created)
        loaded = uow.get(App, fresh.id)
        loaded.counter = 999
        uow.update(loaded)
        stale.note = "stale write"
        uow.update(stale)
    with pytest.raises(NotFoundError):
        store.get(App, created.id)
    stored_fresh = store.get(App, fresh.id)
    assert stored_fresh.counter == fresh.counter and revision_of(stored_fresh) == 1
    stored_contested = store.get(App, contested.id)
    assert stored_contested.note == "the other writer won"
    assert revision_of(stored_contested) == 2


def test_an_object_updated_in_a_rolled_back_unit_can_be_written_again(store: Store) -> None:
    """A unit of work that raises writes nothing, so the objects it updated
    still differ from what is stored: updating one again afterwards (the
    natural retry) must write its change, not skip it as unchanged."""
    app = store.create(new_app(counter=1))
    copy = store.get(App, app.id)
    copy.counter = 2
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        uow.update(copy)
        raise RuntimeError("the unit fails after the update")
    assert store.get(App, app.id).counter == 1  # the unit wrote nothing
    store.update(copy)
    assert store.get(App, app.id).counter == 2


# -- delete -----------------------------------------------------------------

def test_delete_removes_the_object(store: Store) -> None:
    app = store.create(new_app(name="gone"))
    kept = store.create(new_app(name="kept"))
    store.delete(store.get(App, app.id))
    with pytest.raises(NotFoundError):
        store.get(App, app.id)
    assert ids(store.query(App).items) == [kept.id]
    again = store.create(new_app(id=app.id, name="back"))  # the key is free again
    assert store.get(App, app.id) == again and revision_of(again) == 1


def test_delete_of_a_stale_copy_raises_conflict_and_keeps_the_object(store: Store) -> None:
    app = store.create(new_app())
    stale = store.get(App, app.id)
    fresh = store.get(App, app.id)
    fresh.name = "changed"
    store.update(fresh)
    with pytest.raises(ConflictError):
        store.delete(stale)
    assert store.get(App, app.id) == fresh


def test_delete_of_an_already_deleted_object_raises_not_found(store: Store) -> None:
    app = store.create(new_app())
    first = store.get(App, app.id)
    second = store.get(App, app.id)
    store.delete(first)
    with pytest.raises(NotFoundError):
        store.delete(second)


def test_delete_removes_an_object_with_an_int_key(store: Store) -> None:
    build = store.create(Build(number=3, app_id=uuid.uuid4()))
    store.delete(build)
    with pytest.raises(NotFoundError):
        store.get(Build, 3)


# -- query ------------------------------------------------------------------

@pytest.fixture
def listing(store: Store) -> dict[str, list[App]]:
    """120 apps in project p1 and 15 in p2. Names repeat (four apps each),
    statuses cycle, and ``created_at`` instants repeat in pairs under
    different offsets, so the ISO text order is not the time order."""
    apps: dict[str, list[App]] = {"p1": [], "p2": []}
    statuses = ("queued", "running", "stopped")
    for i in range(135):
        project = "p1" if i < 120 else "p2"
        instant = BASE_TIME + dt.timedelta(minutes=37 * (i // 2) % 500)
        apps[project].append(new_app(
            project=project, name=f"app-{i % 30:02d}", status=statuses[i % 3],
            created_at=instant.astimezone(ZONES[i % len(ZONES)]), priority=i % 7,
            counter=i))
    create_all(store, apps["p1"] + apps["p2"])
    return apps


def test_query_filters_by_equality(store: Store, listing: dict[str, list[App]]) -> None:
    everything = listing["p1"] + listing["p2"]
    stopped = store.query(App, where={"status": "stopped"}, limit=1000).items
    assert sorted(ids(stopped), key=str) == in_order(
        [a for a in everything if a.status == "stopped"], None)
    both = store.query(App, where={"status": "running", "name": "app-04"}, limit=1000).items
    assert ids(both) == in_order(
        [a for a in everything if a.status == "running" and a.name == "app-04"], None)
    assert both
    when = listing["p1"][10].created_at.astimezone(UTC)  # same instant, other offset
    at_time = store.query(App, where={"created_at": when}, limit=1000).items
    assert ids(at_time) == in_order([a for a in everything if a.created_at == when], None)
    assert len(at_time) == 2
    assert store.query(App, where={"name": "nobody"}).items == []


def test_query_filters_a_nullable_field_by_none(store: Store) -> None:
    with_none = create_all(store, [new_app(priority=None) for _ in range(3)])
    create_all(store, [new_app(priority=5) for _ in range(2)])
    found = store.query(App, where={"priority": None}).items
    assert ids(found) == in_order(with_none, None)


@pytest.mark.parametrize("order_by", [None, "name", "status", "created_at", "priority"])
@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
def test_query_orders_by_a_field_then_the_key(store: Store, listing: dict[str, list[App]],
                                              order_by: str | None, descending: bool) -> None:
    page = store.query(App, project="p1", order_by=order_by, descending=descending, limit=1000)
    assert ids(page.items) == in_order(listing["p1"], order_by, descending)
    assert page.next_cursor is None


@pytest.mark.parametrize("order_by", [None, "name", "created_at"])
@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
def test_query_pages_through_every_record_with_a_cursor(
        store: Store, listing: dict[str, list[App]], order_by: str | None,
        descending: bool) -> None:
    pages = every_page(store, limit=25, project="p1", order_by=order_by, descending=descending)
    assert [len(p) for p in pages] == [25, 25, 25, 25, 20]
    seen = [a.id for p in pages for a in p]
    assert len(seen) == len(set(seen)), "a record came back twice"
    assert seen == in_order(listing["p1"], order_by, descending)


def test_query_pagination_ends_with_an_empty_page_when_the_last_page_is_full(
        store: Store, listing: dict[str, list[App]]) -> None:
    pages = every_page(store, limit=24, project="p1", order_by="name")
    assert [len(p) for p in pages] == [24, 24, 24, 24, 24, 0]
    assert [a.id for p in pages for a in p] == in_order(listing["p1"], "name")


def test_query_pages_with_filters_and_a_project(store: Store,
                                                listing: dict[str, list[App]]) -> None:
    pages = every_page(store, limit=7, project="p1", where={"status": "queued"},
                       order_by="created_at", descending=True)
    expected = in_order([a for a in listing["p1"] if a.status == "queued"], "created_at",
                        descending=True)
    assert [a.id for p in pages for a in p] == expected


def test_query_is_scoped_to_the_project(store: Store, listing: dict[str, list[App]]) -> None:
    p2 = store.query(App, project="p2", limit=1000).items
    assert ids(p2) == in_order(listing["p2"], None)
    assert {a.project for a in p2} == {"p2"}
    assert store.query(App, project="p3").items == []
    every = store.query(App, limit=1000).items  # no project: all of them
    assert ids(every) == in_order(listing["p1"] + listing["p2"], None)
    stopped_p2 = store.query(App, project="p2", where={"status": "stopped"}, limit=1000).items
    assert ids(stopped_p2) == in_order([a for a in listing["p2"] if a.status == "stopped"],
                                       None)


def test_query_ordered_by_a_nullable_field_pages_through_the_nulls(store: Store) -> None:
    """Where the nulls go is the backend's choice; but every record must be
    listed once, the others in order, the nulls together."""
    apps = create_all(store, [new_app(name=f"n{i}", priority=None if i % 3 == 0 else i % 5)
                              for i in range(20)])
    for descending in (False, True):
        pages = every_page(store, limit=4, order_by="priority", descending=descending)
        listed = [a for p in pages for a in p]
        assert sorted(ids(listed), key=str) == sorted(ids(apps), key=str), \
            f"descending={descending}: records missing or repeated"
        values = [a.priority for a in listed]
        nulls = [i for i, v in enumerate(values) if v is None]
        assert nulls in (list(range(len(nulls))),
                         list(range(len(values) - len(nulls), len(values))))
        given = [a for a in listed if a.priority is not None]
        assert ids(given) == in_order(given, "priority", descending)
    streamed = list(store.stream(App, order_by="priority", batch=4))
    assert sorted(ids(streamed), key=str) == sorted(ids(apps), key=str)


@pytest.mark.parametrize("cursor", ["!!!", "", "bm90IGpzb24", encode_cursor((1, 2))[:-2] + "@",
                                    "WzEsMiwzXQ", "eyJhIjoxfQ"],
                         ids=["not-base64", "empty", "not-json", "cut", "three-items", "object"])
def test_query_with_a_malformed_cursor_raises_decode_error(store: Store, cursor: str) -> None:
    store.create(new_app())
    for order_by in (None, "name", "created_at"):
        with pytest.raises(DecodeError):
            store.query(App, order_by=order_by, cursor=cursor)


@pytest.mark.parametrize("position", [(1, 2), ({"a": 1}, [5]), ("x", "not-a-uuid")],
                         ids=["numbers", "containers", "wrong-strings"])
def test_query_with_a_tampered_cursor_raises_decode_error(store: Store,
                                                          position: tuple[Any, Any]) -> None:
    """A cursor travels through clients: one that decodes but holds values
    the listing cannot have (a number for a UUID key, text for a datetime)
    is malformed too, and must be refused the same way, whatever the order."""
    store.create(new_app())
    cursor = encode_cursor(position)
    wrong: list[str] = []
    for order_by in (None, "name", "created_at"):
        try:
            store.query(App, order_by=order_by, cursor=cursor)
        except DecodeError:
            continue
        except Exception as exc:
            wrong.append(f"order_by={order_by}: {type(exc).__module__}.{type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:100]}")
        else:
            wrong.append(f"order_by={order_by}: accepted")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("options", [{"order_by": "ports"}, {"order_by": "source"},
                                     {"order_by": "labels"}, {"where": {"tags": {"x"}}},
                                     {"order_by": "nonexistent"}],
                         ids=["list", "object", "dict", "set-filter", "unknown"])
def test_query_by_a_non_scalar_field_raises_definition_error(store: Store,
                                                             options: dict[str, Any]) -> None:
    store.create(new_app())
    with pytest.raises(DefinitionError):
        store.query(App, **options)


@pytest.mark.parametrize("field_name", ["counter", "note", "score"])
def test_query_ordered_by_a_non_indexed_field_raises_definition_error(
        store: Store, field_name: str) -> None:
    """``Collection(indexes=...)`` names the fields users filter or order
    by; ordering by another field must be refused the same way on every
    backend (a backend that keeps no index for it cannot order by it)."""
    store.create(new_app())
    with pytest.raises(DefinitionError):
        store.query(App, order_by=field_name)


@pytest.mark.parametrize("where", [{"priority": "high"}, {"created_at": "2024-01-01"}],
                         ids=["str-for-int", "str-for-datetime"])
def test_query_with_a_filter_value_of_the_wrong_type_raises_validation_error(
        store: Store, where: dict[str, Any]) -> None:
    store.create(new_app())
    with pytest.raises(ValidationError):
        store.query(App, where=where)


# -- stream -----------------------------------------------------------------

class _CountingTransaction:
    """A transaction that records the size of every query result."""

    def __init__(self, tx: Transaction, sizes: list[int]) -> None:
        self._tx = tx
        self._sizes = sizes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def query(self, collection: Any, query: Any) -> list[Record]:
        records = self._tx.query(collection, query)
        self._sizes.append(len(records))
        return records


def count_fetches(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make ``store`` record the size of each batch it fetches."""
    sizes: list[int] = []
    original: Callable[..., AbstractContextManager[Transaction]] = store.backend.transaction

    @contextmanager
    def counting(**options: Any) -> Iterator[Any]:
        with original(**options) as tx:
            yield _CountingTransaction(tx, sizes)

    monkeypatch.setattr(store.backend, "transaction", counting)
    return sizes


@pytest.mark.parametrize("order_by", [None, "name", "created_at"])
def test_stream_yields_every_matching_record_in_order_in_batches(
        store: Store, monkeypatch: pytest.MonkeyPatch, order_by: str | None) -> None:
    apps = create_all(store, [
        new_app(name=f"s{i % 9}", status="running" if i % 5 else "stopped",
                created_at=(BASE_TIME - dt.timedelta(hours=i % 11)).astimezone(
                    ZONES[i % len(ZONES)]))
        for i in range(56)])
    create_all(store, [new_app(project="other", name="s1") for _ in range(5)])
    running = [a for a in apps if a.status == "running"]
    assert len(running) == 44

    sizes = count_fetches(store, monkeypatch)
    streamed = list(store.stream(App, project="p1", where={"status": "running"},
                                 order_by=order_by, batch=7))
    assert ids(streamed) == in_order(running, order_by)
    assert sizes == [7, 7, 7, 7, 7, 7, 2]  # fetched a batch at a time, never more

    sizes.clear()
    everything = list(store.stream(App, project="p1", order_by=order_by, batch=7))
    assert ids(everything) == in_order(apps, order_by)
    assert sizes == [7] * 8 + [0]


def test_a_readonly_unit_of_work_refuses_writes_and_changes_nothing(store: Store) -> None:
    app = store.create(new_app(name="kept"))
    with pytest.raises(StorageError, match="readonly"), store.unit_of_work(readonly=True) as uow:
        loaded = uow.get(App, app.id)
        loaded.name = "changed"
        uow.update(loaded)
    assert store.get(App, app.id).name == "kept"


def test_run_retries_a_flow_that_lost_a_race_and_applies_it_once(store: Store) -> None:
    app = store.create(new_app(counter=0))
    stale = store.get(App, app.id)
    rival = store.get(App, app.id)
    rival.counter += 10
    store.update(rival)  # the record moved on since ``stale`` was read
    attempts = []

    def bump(uow: UnitOfWork) -> int:
        # The first attempt writes the stale copy (a lost race); a retry
        # loads the record inside its own unit, as a flow should.
        loaded = stale if not attempts else uow.get(App, app.id)
        attempts.append(1)
        loaded.counter += 1
        uow.update(loaded)
        return loaded.counter

    assert store.run(bump) == 11
    assert len(attempts) == 2
    assert store.get(App, app.id).counter == 11


def test_run_gives_up_after_its_attempts_and_raises_the_conflict(store: Store) -> None:
    app = store.create(new_app(counter=0))
    stale = store.get(App, app.id)
    rival = store.get(App, app.id)
    rival.counter = 5
    store.update(rival)
    tries = []

    def always_stale(uow: UnitOfWork) -> None:
        tries.append(1)
        stale.counter = -1
        uow.update(stale)

    with pytest.raises(ConflictError):
        store.run(always_stale, attempts=2)
    assert len(tries) == 2
    assert store.get(App, app.id).counter == 5
