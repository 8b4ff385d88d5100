"""What only the Redis backend does: the hashes and index entries it writes,
WATCH conflicts, keyset pagination over its lexicographic indexes, project
scoping by key sets, and surviving a redis-server restart. Behaviour every
backend shares is the conformance suite's (test_conformance.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from rollsafe import (
    Added,
    DefinitionError,
    History,
    Registry,
    Renamed,
    Version,
    VersionedObject,
)
from rollsafe.errors import ConflictError, NotFoundError, RetryableStorageError
from rollsafe.storage import Collection, Store, open_backend
from rollsafe.storage.base import Query, Record
from rollsafe.storage.redis import RedisBackend
from rollsafe.storage.store import revision_of

UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))
BASE = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

reg = Registry("redistest")


class Task(VersionedObject, registry=reg):
    """A record with renamed fields (indexed ``name``, not indexed
    ``assignee``) and an added one."""

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "Clearer names", Renamed("title", "name"), Renamed("owner", "assignee")),
        Version("1.2", "Priorities", Added("priority", default=0)),
    )
    id: str
    project: str
    name: str
    created: dt.datetime
    assignee: str = ""
    priority: int = 0
    done: bool = False
    note: str | None = None


class Counter(VersionedObject, registry=reg):
    """An int key and no project."""

    n: int
    label: str = ""
    ratio: float = 0.0


class Ticket(VersionedObject, registry=reg):
    """A UUID key."""

    id: uuid.UUID
    subject: str = ""


TASKS = Collection(Task, key="id", project="project",
                   indexes=["name", "created", "priority", "done"])
COUNTERS = Collection(Counter, key="n", indexes=["ratio"])
TICKETS = Collection(Ticket, key="id")
COLLECTIONS = [TASKS, COUNTERS, TICKETS]


# --- fixtures ----------------------------------------------------------------

@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own: tests never see each other's keys."""
    return f"rstest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def backend(redis_url: str, prefix: str) -> Iterator[RedisBackend]:
    """The backend under test, emptied and closed at the end."""
    opened = open_backend(redis_url, key_prefix=prefix)
    assert isinstance(opened, RedisBackend)
    yield opened
    opened.drop_all(COLLECTIONS)
    opened.close()


@pytest.fixture
def redis_store(backend: RedisBackend) -> Store:
    """A store of the test classes at their current versions."""
    store = Store(backend, COLLECTIONS)
    store.ensure_schema()
    return store


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client of the same server: to look at keys, and to write
    behind the backend's back as a concurrent writer would."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def task(key: str, *, project: str = "p1", name: str = "alpha", created: dt.datetime = BASE,
         **values: Any) -> Task:
    return Task(id=key, project=project, name=name, created=created, **values)


def micros(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)


def index_members(raw: redis.Redis, key: str) -> list[str]:
    """Members of a sorted set, checking every score is 0 (lex ordering)."""
    pairs: list[tuple[str, float]] = raw.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
    assert all(score == 0 for _, score in pairs)
    return [member for member, _ in pairs]


def all_keys(raw: redis.Redis, prefix: str) -> set[str]:
    return set(raw.scan_iter(match=prefix + "*"))


def dump(raw: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key of the prefix with its contents."""
    return {key: raw.hgetall(key) if raw.type(key) == "hash" else index_members(raw, key)
            for key in all_keys(raw, prefix)}


# --- layout ------------------------------------------------------------------

def test_create_writes_one_hash_with_meta_fields_and_json_values(
        redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    redis_store.create(task("t1", name="alpha", created=BASE.astimezone(PLUS2), priority=3))

    assert raw.hgetall(f"{prefix}:task:t1") == {
        "_v": "1.2", "_r": "1", "_p": "p1",
        "id": '"t1"', "project": '"p1"', "name": '"alpha"',
        "created": '"2024-05-01T14:00:00+02:00"', "assignee": '""', "priority": "3",
        "done": "false", "note": "null",
    }


def test_create_adds_the_key_to_the_key_sets_and_an_entry_to_every_index(
        redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    redis_store.create(task("t1", name="alpha", priority=3))
    base = f"{prefix}:task"

    assert index_members(raw, f"{base}#all") == ["t1"]
    assert index_members(raw, f"{base}#project:p1") == ["t1"]
    for scope in ("", ":p1"):
        assert index_members(raw, f"{base}#ix:name{scope}") == ["1alpha\x00t1"]
        assert index_members(raw, f"{base}#ix:done{scope}") == ["10\x00t1"]
        assert index_members(raw, f"{base}#ix:priority{scope}") == [
            f"1{3 + 2**63:016x}\x00t1"]
        assert index_members(raw, f"{base}#ix:created{scope}") == [
            f"1{micros(BASE) + 2**63:016x}\x00t1"]
    assert all_keys(raw, prefix) == {f"{base}:t1", f"{base}#all", f"{base}#project:p1"} | {
        f"{base}#ix:{name}{scope}" for name in ("name", "created", "priority", "done")
        for scope in ("", ":p1")}


def test_keys_of_every_kind_name_their_hash_as_stored(
        redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    ident = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
    redis_store.create(Counter(n=-7))
    redis_store.create(Ticket(id=ident, subject="s"))

    assert raw.hget(f"{prefix}:counter:-7", "n") == "-7"
    assert raw.hget(f"{prefix}:ticket:{ident}", "id") == f'"{ident}"'
    assert "_p" not in raw.hgetall(f"{prefix}:counter:-7")
    assert redis_store.get(Ticket, ident).subject == "s"


def test_update_of_an_indexed_field_moves_its_entries_and_leaves_the_others(
        redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    obj = redis_store.create(task("t1", name="alpha", priority=3))
    obj.name = "omega"
    redis_store.update(obj)
    base = f"{prefix}:task"

    assert raw.hget(f"{base}:t1", "_r") == "2"
    assert raw.hget(f"{base}:t1", "name") == '"omega"'
    for scope in ("", ":p1"):
        assert index_members(raw, f"{base}#ix:name{scope}") == ["1omega\x00t1"]
        assert index_members(raw, f"{base}#ix:priority{scope}") == [
            f"1{3 + 2**63:016x}\x00t1"]
    assert [t.id for t in redis_store.query(Task, where={"name": "alpha"}).items] == []
    assert [t.id for t in redis_store.query(Task, where={"name": "omega"}).items] == ["t1"]


def test_partial_update_writes_only_the_changed_fields(
        redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    redis_store.create(task("t1", note="mine"))
    obj = redis_store.get(Task, "t1")
    # Written behind the store's back before the update reads the record:
    # an update of ``name`` alone must not write ``note`` back.
    raw.hset(f"{prefix}:task:t1", "note", '"theirs"')
    obj.name = "beta"
    redis_store.update(obj)

    stored = raw.hgetall(f"{prefix}:task:t1")
    assert (stored["name"], stored["note"], stored["_r"]) == ('"beta"', '"theirs"', "2")


def test_update_at_a_newer_version_replaces_every_data_field(
        backend: RedisBackend, raw: redis.Redis, prefix: str) -> None:
    old = Store(backend, COLLECTIONS, storage_versions={"Task": "1.0"})
    old.create(task("t1", name="alpha", assignee="bob"))
    assert raw.hgetall(f"{prefix}:task:t1") == {
        "_v": "1.0", "_r": "1", "_p": "p1", "id": '"t1"', "project": '"p1"',
        "title": '"alpha"', "owner": '"bob"', "created": '"2024-05-01T12:00:00+00:00"',
        "done": "false", "note": "null"}

    current = Store(backend, COLLECTIONS)
    obj = current.get(Task, "t1")
    obj.done = True
    current.update(obj)

    stored = raw.hgetall(f"{prefix}:task:t1")
    assert stored["_v"] == "1.2" and stored["_r"] == "2"
    assert "title" not in stored and "owner" not in stored
    assert (stored["name"], stored["assignee"], stored["priority"], stored["done"]) == (
        '"alpha"', '"bob"', "0", "true")
    assert index_members(raw, f"{prefix}:task#ix:name") == ["1alpha\x00t1"]
    assert index_members(raw, f"{prefix}:task#ix:done") == ["11\x00t1"]


def test_delete_removes_the_hash_and_every_index_entry(
        redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    keep = redis_store.create(task("keep", name="k"))
    gone = redis_store.create(task("gone", name="g", project="p2"))
    before = all_keys(raw, prefix)
    redis_store.delete(gone)

    base = f"{prefix}:task"
    assert not raw.exists(f"{base}:gone")
    assert all_keys(raw, prefix) == {key for key in before
                                     if key != f"{base}:gone" and not key.endswith(":p2")}
    assert index_members(raw, f"{base}#ix:name") == ["1k\x00keep"]
    assert index_members(raw, f"{base}#all") == ["keep"]
    assert redis_store.get(Task, "keep").id == keep.id


def test_drop_all_deletes_the_prefix_and_nothing_else(
        redis_url: str, redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    redis_store.create(task("t1"))
    redis_store.create(Counter(n=1))
    neighbour = f"{prefix}-neighbour:task:t1"  # a prefix that merely starts alike
    raw.hset(neighbour, "x", "1")
    try:
        redis_store.backend.drop_all(COLLECTIONS)
        assert all_keys(raw, prefix) == {neighbour}
    finally:
        raw.delete(neighbour)


def test_drop_all_takes_a_prefix_with_glob_characters_literally(
        redis_url: str, raw: redis.Redis) -> None:
    prefix = f"rs*{uuid.uuid4().hex[:8]}?["
    backend = RedisBackend(redis_url, key_prefix=prefix)
    store = Store(backend, COLLECTIONS)
    lookalike = prefix.replace("*", "X").replace("?", "Y") + ":task:t1"  # what * and ? match
    raw.hset(lookalike, "x", "1")
    try:
        store.create(task("t1"))
        backend.drop_all(COLLECTIONS)
        assert not raw.exists(f"{prefix}:task:t1", f"{prefix}:task#all")
        assert raw.exists(lookalike)
    finally:
        raw.delete(lookalike)
        backend.close()


# --- renamed fields ----------------------------------------------------------

def test_filters_and_indexes_follow_renamed_fields_to_older_records(
        backend: RedisBackend, raw: redis.Redis, prefix: str) -> None:
    old = Store(backend, COLLECTIONS, storage_versions={"Task": "1.0"})
    current = Store(backend, COLLECTIONS)
    old.create(task("old", name="shared", assignee="bob"))
    current.create(task("new", name="shared", assignee="bob"))
    current.create(task("other", name="else", assignee="carol"))

    # name is indexed: the 1.0 record is indexed under its ``title``.
    assert index_members(raw, f"{prefix}:task#ix:name") == [
        "1else\x00other", "1shared\x00new", "1shared\x00old"]
    by_name = current.query(Task, where={"name": "shared"})
    assert [t.id for t in by_name.items] == ["new", "old"]
    # assignee is not indexed: the scan reads the 1.0 record's ``owner``.
    by_assignee = current.query(Task, where={"assignee": "bob"})
    assert [(t.id, t.assignee) for t in by_assignee.items] == [("new", "bob"), ("old", "bob")]
    # priority did not exist at 1.0: that record is indexed as None.
    assert [t.id for t in current.query(Task, order_by="priority").items] == [
        "old", "new", "other"]


def test_ordering_by_a_field_without_an_index_is_refused(redis_store: Store) -> None:
    with pytest.raises(DefinitionError, match=r"indexes=\[\.\.\.\]"):
        redis_store.query(Task, order_by="assignee")


# --- units of work -----------------------------------------------------------

def test_a_write_by_another_client_before_commit_conflicts_and_nothing_is_applied(
        redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    redis_store.create(task("a", name="first"))
    before = dump(raw, prefix)

    with pytest.raises(ConflictError, match="nothing was written"), \
            redis_store.unit_of_work() as uow:
        obj = uow.get(Task, "a")
        obj.name = "mine"
        uow.update(obj)
        uow.create(task("b"))
        # Between the read and the commit; the revision stays 1, so only
        # WATCH can notice.
        raw.hset(f"{prefix}:task:a", "note", '"theirs"')

    before[f"{prefix}:task:a"]["note"] = '"theirs"'
    assert dump(raw, prefix) == before


def test_an_update_by_another_store_before_commit_conflicts(
        backend: RedisBackend, redis_store: Store, redis_url: str, prefix: str) -> None:
    redis_store.create(task("a", name="first"))
    other = Store(RedisBackend(redis_url, key_prefix=prefix), COLLECTIONS)
    try:
        with pytest.raises(ConflictError), redis_store.unit_of_work() as uow:
            mine = uow.get(Task, "a")
            mine.name = "mine"
            uow.update(mine)
            theirs = other.get(Task, "a")
            theirs.name = "theirs"
            other.update(theirs)
    finally:
        other.backend.close()

    stored = redis_store.get(Task, "a")
    assert (stored.name, revision_of(stored)) == ("theirs", 2)


def test_one_stale_write_discards_every_write_of_the_unit_of_work(
        redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    stale = redis_store.create(task("a", name="first"))
    doomed = redis_store.create(task("c", name="c"))
    fresh = redis_store.get(Task, "a")
    fresh.name = "second"
    redis_store.update(fresh)
    before = dump(raw, prefix)

    stale.name = "lost"
    with pytest.raises(ConflictError, match="revision 1, now 2"), \
            redis_store.unit_of_work() as uow:
        uow.create(task("b", name="b"))
        uow.delete(doomed)
        uow.update(stale)

    assert dump(raw, prefix) == before


def test_concurrent_increments_never_lose_an_update(
        redis_store: Store, redis_url: str, prefix: str) -> None:
    redis_store.create(task("a", priority=0))

    def bump(times: int) -> None:
        backend = RedisBackend(redis_url, key_prefix=prefix)
        store = Store(backend, COLLECTIONS)
        try:
            for _ in range(times):
                while True:
                    try:
                        with store.unit_of_work() as uow:
                            obj = uow.get(Task, "a")
                            obj.priority += 1
                            uow.update(obj)
                        break
                    except ConflictError:
                        continue  # lost the race: read it again
        finally:
            backend.close()

    workers = [threading.Thread(target=bump, args=(25,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    final = redis_store.get(Task, "a")
    assert (final.priority, revision_of(final)) == (100, 101)


def test_a_unit_of_work_that_only_reads_never_conflicts(
        redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    redis_store.create(task("a"))
    with redis_store.unit_of_work() as uow:
        assert uow.get(Task, "a").name == "alpha"
        raw.hset(f"{prefix}:task:a", "name", '"changed"')
    assert redis_store.get(Task, "a").name == "changed"


def test_writes_chain_inside_a_unit_of_work_and_get_sees_them_but_listings_do_not(
        redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    with redis_store.unit_of_work() as uow:
        obj = uow.create(task("a", name="one"))
        obj.name = "two"
        uow.update(obj)
        assert uow.get(Task, "a").name == "two"  # a flow reads what it wrote
        assert uow.query(Task).items == []  # listings show the stored state

    assert raw.hget(f"{prefix}:task:a", "_r") == "2"
    assert index_members(raw, f"{prefix}:task#ix:name") == ["1two\x00a"]


def test_insert_of_a_key_that_exists_in_another_project_conflicts(redis_store: Store) -> None:
    redis_store.create(task("a", project="p1"))
    with pytest.raises(ConflictError, match="already exists"):
        redis_store.create(task("a", project="p2"))


# --- project scoping ---------------------------------------------------------

def test_another_projects_record_is_neither_found_nor_listed_nor_written(
        backend: RedisBackend, redis_store: Store, raw: redis.Redis, prefix: str) -> None:
    redis_store.create(task("mine", project="p1", name="n"))
    redis_store.create(task("theirs", project="p2", name="n"))

    with pytest.raises(NotFoundError, match="in project p1"):
        redis_store.get(Task, "theirs", project="p1")
    for where in ({}, {"name": "n"}, {"assignee": ""}, {"id": "theirs"}):
        listed = redis_store.query(Task, project="p1", where=where)
        assert [t.id for t in listed.items] == ([] if where.get("id") else ["mine"])
    assert [t.id for t in redis_store.query(Task, project="p1", order_by="name").items] == [
        "mine"]
    assert [t.id for t in redis_store.query(Task).items] == ["mine", "theirs"]
    assert index_members(raw, f"{prefix}:task#project:p1") == ["mine"]
    assert index_members(raw, f"{prefix}:task#ix:name:p2") == ["1n\x00theirs"]

    with pytest.raises(NotFoundError), backend.transaction() as tx:
        tx.update(TASKS, "theirs", "p1", 1, "1.2", {"name": "x"}, False)
    with pytest.raises(NotFoundError), backend.transaction() as tx:
        tx.delete(TASKS, "theirs", "p1", None)
    assert raw.hget(f"{prefix}:task:theirs", "name") == '"n"'


# --- listings ------------------------------------------------------------------

def _fill(store: Store, count: int) -> list[Task]:
    """``count`` tasks with many equal names and creation times, some
    written with another UTC offset (ordered by instant, not by text)."""
    tasks = []
    for i in range(count):
        created = BASE + dt.timedelta(minutes=(i * 7919) % 97)
        if i % 3 == 0:
            created = created.astimezone(PLUS2)
        tasks.append(task(f"t{i:03d}", name=f"n{(i * 31) % 41:02d}", created=created,
                          done=i % 4 == 0, priority=(i % 5) - 2))
    with store.unit_of_work() as uow:
        for obj in tasks:
            uow.create(obj)
    return tasks


def _pages(store: Store, limit: int, **options: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = store.query(Task, limit=limit, cursor=cursor, **options)
        pages.append([t.id for t in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


@pytest.mark.parametrize("order_by", ["name", "created"])
@pytest.mark.parametrize("descending", [False, True])
def test_keyset_pages_of_250_records_have_no_gap_and_no_duplicate(
        redis_store: Store, order_by: str, descending: bool) -> None:
    tasks = _fill(redis_store, 250)
    expected = [t.id for t in sorted(tasks, key=lambda t: (getattr(t, order_by), t.id),
                                     reverse=descending)]

    pages = _pages(redis_store, 50, order_by=order_by, descending=descending)

    assert [len(p) for p in pages] == [50, 50, 50, 50, 50, 0]
    assert [key for page in pages for key in page] == expected


@pytest.mark.parametrize("descending", [False, True])
def test_pages_without_order_follow_the_key(redis_store: Store, descending: bool) -> None:
    tasks = _fill(redis_store, 120)
    pages = _pages(redis_store, 50, project="p1", descending=descending)
    assert [key for page in pages for key in page] == sorted(
        (t.id for t in tasks), reverse=descending)


def test_pages_filtered_on_fields_they_do_not_range_over(redis_store: Store) -> None:
    tasks = _fill(redis_store, 250)
    # Ordered by name, filtered on another index (done) and on a field with
    # no index (assignee): both are checked record by record.
    expected = [t.id for t in sorted(tasks, key=lambda t: (t.name, t.id)) if t.done]
    pages = _pages(redis_store, 7, order_by="name", where={"done": True, "assignee": ""})
    assert [key for page in pages for key in page] == expected
    assert max(len(p) for p in pages) == 7


def test_equality_on_an_index_pages_through_its_range_in_key_order(redis_store: Store) -> None:
    tasks = _fill(redis_store, 250)
    expected = [t.id for t in tasks if t.priority == -1]
    pages = _pages(redis_store, 10, where={"priority": -1})
    assert [key for page in pages for key in page] == expected
    ordered = _pages(redis_store, 10, where={"priority": -1, "done": False},
                     order_by="created", descending=True)
    assert [key for page in ordered for key in page] == [
        t.id for t in sorted(tasks, key=lambda t: (t.created, t.id), reverse=True)
        if t.priority == -1 and not t.done]


def test_nulls_match_equality_on_none_and_sort_first(redis_store: Store) -> None:
    redis_store.create(task("a", note="x"))
    redis_store.create(task("b"))
    assert [t.id for t in redis_store.query(Task, where={"note": None}).items] == ["b"]
    assert [t.id for t in redis_store.query(Task, where={"note": "x"}).items] == ["a"]


def test_strings_with_control_characters_sort_and_match_exactly(redis_store: Store) -> None:
    names = ["a", "a\x00", "a\x00b", "a\x01", "a\x01\x02", "ab", "", "é", "\U0001f600", "Z"]
    for i, name in enumerate(names):
        redis_store.create(task(f"t{i}", name=name))
    pages = _pages(redis_store, 3, order_by="name")
    assert [key for page in pages for key in page] == [
        f"t{i}" for i, _ in sorted(enumerate(names), key=lambda pair: pair[1])]
    for i, name in enumerate(names):
        assert [t.id for t in redis_store.query(Task, where={"name": name}).items] == [f"t{i}"]


def test_floats_sort_numerically_and_zero_equals_negative_zero(redis_store: Store) -> None:
    ratios = [2.25, -1.5, 0.0, -0.0, 1e300, -1e-300, 3, -1e300, 5e-324]
    for n, ratio in enumerate(ratios):
        redis_store.create(Counter(n=n, ratio=ratio))
    listed = redis_store.query(Counter, order_by="ratio", limit=100).items
    assert [c.n for c in listed] == [n for n, _ in sorted(enumerate(ratios),
                                                          key=lambda p: (p[1], p[0]))]
    assert [c.n for c in redis_store.query(Counter, where={"ratio": 0.0}).items] == [2, 3]
    assert [c.n for c in redis_store.query(Counter, where={"ratio": 3}).items] == [6]


def test_int_keys_list_in_numeric_order(redis_store: Store) -> None:
    for n in (10, -5, 2, 100, 1, 2**62):
        redis_store.create(Counter(n=n))
    pages = [[c.n for c in redis_store.query(Counter, limit=2, cursor=cursor).items]
             for cursor in _cursors(redis_store, Counter, 2)]
    assert [n for page in pages for n in page] == [-5, 1, 2, 10, 100, 2**62]


def _cursors(store: Store, cls: type[Counter], limit: int) -> list[str | None]:
    cursors: list[str | None] = [None]
    while True:
        page = store.query(cls, limit=limit, cursor=cursors[-1])
        if page.next_cursor is None:
            return cursors
        cursors.append(page.next_cursor)


def test_a_listing_reads_no_more_than_a_batch_per_round_trip(
        backend: RedisBackend, redis_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(redis_store, 250)
    asked: list[int | None] = []
    original = backend.client.zrangebylex

    def spy(name: str, lo: str, hi: str, start: int | None = None,
            num: int | None = None) -> Any:
        asked.append(num)
        return original(name, lo, hi, start=start, num=num)

    monkeypatch.setattr(backend.client, "zrangebylex", spy)
    with backend.transaction() as tx:
        records: list[Record] = tx.query(TASKS, Query(order_by="name", limit=20))
    assert len(records) == 20 and asked == [20]


# --- connection failures -----------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _RedisServer:
    """A redis-server of this test's own (restarting the shared one would
    disturb other tests): AOF on, in a tmp folder."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None or shutil.which("redis-cli") is None:
            message = "redis-server / redis-cli not installed"
            if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        self.port = _free_port()
        self.args = [binary, "--bind", "127.0.0.1", "--port", str(self.port),
                     "--dir", str(folder), "--save", "", "--appendonly", "yes",
                     "--daemonize", "no", "--logfile", str(folder / "redis.log")]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                time.sleep(0.05)
        finally:
            client.close()

    def shutdown(self) -> None:
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "shutdown",
                        "nosave"], capture_output=True, timeout=20, check=False)
        assert self.process is not None
        self.process.wait(timeout=20)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture
def own_server(redis_url: str, tmp_path: Path) -> Iterator[_RedisServer]:
    """A private redis-server (needs the real-server setup, as redis_url does)."""
    server = _RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def test_a_restart_of_redis_server_is_survived(own_server: _RedisServer) -> None:
    backend = RedisBackend(own_server.url, key_prefix="restart", socket_timeout=2)
    store = Store(backend, COLLECTIONS)
    try:
        created = store.create(task("a", name="before"))
        assert store.get(Task, "a").name == "before"  # a pooled connection is now idle

        own_server.shutdown()
        started = time.monotonic()
        with pytest.raises(RetryableStorageError):
            store.get(Task, "a")
        with pytest.raises(RetryableStorageError):
            created.name = "while down"
            store.update(created)
        assert time.monotonic() - started < 10

        own_server.start()
        # The first call may meet the dead connection: reconnected or retryable.
        with contextlib.suppress(RetryableStorageError):
            store.get(Task, "a")
        again = store.get(Task, "a")
        assert again.name == "before"  # the AOF kept it; the failed update wrote nothing
        again.name = "after"
        store.update(again)
        assert [t.name for t in store.query(Task, order_by="name").items] == ["after"]
    finally:
        backend.close()


def test_a_restart_inside_a_unit_of_work_is_retryable_and_writes_nothing(
        own_server: _RedisServer) -> None:
    backend = RedisBackend(own_server.url, key_prefix="restart", socket_timeout=2)
    store = Store(backend, COLLECTIONS)
    try:
        store.create(task("a", name="before"))
        with pytest.raises(RetryableStorageError), store.unit_of_work() as uow:
            obj = uow.get(Task, "a")  # watched on this unit's connection
            obj.name = "lost"
            uow.update(obj)
            own_server.shutdown()
            own_server.start()
        assert store.get(Task, "a").name == "before"
    finally:
        backend.close()


def test_an_unreachable_server_raises_retryable_quickly(redis_url: str) -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{_free_port()}/0", max_retries=1,
                           socket_timeout=1)
    started = time.monotonic()
    try:
        with pytest.raises(RetryableStorageError, match="redis"):
            Store(backend, COLLECTIONS).get(Task, "a")
    finally:
        backend.close()
    assert time.monotonic() - started < 5
