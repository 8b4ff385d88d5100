"""The Redis backend under SIGKILL: a writer killed inside a unit of work,
and the background rewriter killed while it moves records to the current
version. Redis only (the SQL side is test_sql_faults.py).

A unit of work buffers its writes until one ``MULTI``/``EXEC``, so a
process killed before it leaves nothing; one killed while the rewriter runs
leaves every record either as it was or wholly rewritten, with index
entries to match, and a second run finishes the job.

Everything is bounded: subprocesses have timeouts, the parent polls with a
deadline, and a watchdog ends the run with every thread's traceback if a
test here hangs anyway.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from rollsafe.storage import Store
from rollsafe.storage.redis import RedisBackend
from rollsafe.storage.rewrite import count_outdated, rewrite

from .conftest import url_of
from .domain import APP_CURRENT, APP_OLDEST, App, new_app
from .test_sql_faults import assert_killed_unit_left_nothing, python, read_line, reap

OpenStore = Callable[..., Store]

#: No test here may take longer; past it the watchdog dumps every thread's
#: stack and ends the run (a hang must never stall CI silently).
TEST_BUDGET_SECONDS = 180


@pytest.fixture
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Overrides conftest.py's: Redis only."""
    return url_of("redis", request, tmp_path)


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(TEST_BUDGET_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def raw(backend_url: str) -> Iterator[redis.Redis]:
    """A plain client of the same server, to look at the keys."""
    client = redis.Redis.from_url(backend_url, decode_responses=True, socket_timeout=10)
    yield client
    client.close()


def prefix_of(store: Store) -> str:
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    return backend.key_prefix


def dump(raw: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key of the prefix with its contents (hashes as dicts, sorted
    sets as lists of members)."""
    found: dict[str, Any] = {}
    for key in raw.scan_iter(match=prefix + ":*", count=500):
        kind = raw.type(key)
        if kind == "hash":
            found[key] = raw.hgetall(key)
        else:
            assert kind == "zset", (key, kind)
            found[key] = raw.zrange(key, 0, -1)
    return found


def kill(proc: Any) -> None:
    """SIGKILL the subprocess's whole group and wait for it."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


# -- SIGKILL inside a unit of work -------------------------------------------

KILLED_WRITER = r"""
import sys, time, uuid
sys.path.insert(0, sys.argv[1])
from domain import App, Build, make_store, new_app
store = make_store(sys.argv[2], key_prefix=sys.argv[3])
with store.unit_of_work() as uow:
    created = [uow.create(new_app(name=f"doomed-{i}")) for i in range(5)]
    uow.create(Build(number=99, app_id=created[0].id))
    existing = uow.get(App, uuid.UUID(sys.argv[4]))
    existing.counter = 1_000_000
    uow.update(existing)
    doomed = uow.get(App, created[1].id)  # a flow reads what it wrote
    doomed.counter = 5
    uow.update(doomed)
    print(" ".join(str(app.id) for app in created), flush=True)
    time.sleep(120)  # killed here, the unit still open
"""


def test_a_writer_killed_inside_a_unit_of_work_leaves_nothing_written(
        store: Store, backend_url: str, raw: redis.Redis) -> None:
    prefix = prefix_of(store)
    existing = store.create(new_app(name="existing", counter=1))
    before = dump(raw, prefix)
    proc = python(KILLED_WRITER, backend_url, prefix, str(existing.id))
    try:
        doomed = [uuid.UUID(text) for text in read_line(proc, timeout=60).split()]
        assert len(doomed) == 5
        kill(proc)
    finally:
        reap(proc)

    assert dump(raw, prefix) == before  # not a key more, not a field changed
    assert_killed_unit_left_nothing(store, doomed, existing.id)
    # and the store still works: the killed unit's WATCH went with its connection
    with store.unit_of_work() as uow:
        again = uow.get(App, existing.id)
        again.counter = 2
        uow.update(again)
        fresh = uow.create(new_app(name="after the kill"))
    assert store.get(App, fresh.id) == fresh
    assert store.get(App, existing.id).counter == 2
    assert sorted(a.name for a in store.query(App, order_by="name").items) == [
        "after the kill", "existing"]


# -- SIGKILL while the rewriter runs ------------------------------------------

RECORDS = 120

REWRITER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from domain import App, make_store
from rollsafe.storage.rewrite import rewrite
store = make_store(sys.argv[2], key_prefix=sys.argv[3])
print("start", flush=True)
result = rewrite(store, App, batch=int(sys.argv[4]), pause=float(sys.argv[5]))
print(json.dumps([result.found, result.rewritten]), flush=True)
"""


def versions_now(raw: redis.Redis, prefix: str, keys: list[str]) -> list[str | None]:
    """The ``_v`` of each record hash, in one round trip."""
    with raw.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(f"{prefix}:app:{key}", "_v")
        versions: list[str | None] = pipe.execute()
        return versions


def expected_sets(store: Store, hashes: dict[str, dict[str, str]]) -> dict[str, set[str]]:
    """The sorted sets the record hashes call for: key sets and index
    entries, as the backend computes them."""
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    layout = backend.layout(store.collection(App))
    sets: dict[str, set[str]] = {}
    for state in hashes.values():
        for zkey, member in layout.members(state).items():
            sets.setdefault(zkey, set()).add(member)
    return sets


def check_consistent(store: Store, raw: redis.Redis, prefix: str,
                     original: dict[str, dict[str, str]], current_fields: set[str]) -> int:
    """Every record is either exactly as the old release wrote it or wholly
    rewritten at the current version, none is lost, and the index entries
    are exactly those the hashes call for. Returns how many were rewritten."""
    everything = dump(raw, prefix)
    hashes = {k: v for k, v in everything.items() if isinstance(v, dict)}
    assert set(hashes) == set(original), "a record was lost or appeared"
    rewritten = 0
    for key, state in hashes.items():
        if state == original[key]:
            continue
        assert state["_v"] == APP_CURRENT and state["_r"] == "2", (key, state)
        assert set(state) == current_fields, (key, sorted(state))
        rewritten += 1
    sets = {k: set(v) for k, v in everything.items() if not isinstance(v, dict)}
    assert sets == expected_sets(store, hashes)
    return rewritten


def test_the_rewriter_killed_midway_leaves_every_record_old_or_new_and_a_rerun_finishes(
        store: Store, open_store: OpenStore, backend_url: str, raw: redis.Redis) -> None:
    prefix = prefix_of(store)
    old = open_store(storage_versions={"App": APP_OLDEST})
    with old.unit_of_work() as uow:
        for i in range(RECORDS):
            uow.create(new_app(project=f"p{i % 3}", name=f"app-{i:03d}", counter=i,
                               team=f"team-{i % 5}", priority=i % 4 or None))
    before = {app.id: app for app in store.stream(App, batch=50)}
    keys = [str(key) for key in before]
    original = {k: v for k, v in dump(raw, prefix).items() if isinstance(v, dict)}
    assert {state["_v"] for state in original.values()} == {APP_OLDEST}
    # what a hash written at the current version holds
    probe = store.create(new_app(name="probe"))
    current_fields = {str(name) for name in raw.hgetall(f"{prefix}:app:{probe.id}")}
    store.delete(probe)
    assert {"team", "tier"} <= current_fields and "owner" not in current_fields

    proc = python(REWRITER, backend_url, prefix, "4", "0.05")
    moved = 0
    try:
        assert read_line(proc, timeout=60) == "start"
        deadline = time.monotonic() + 60
        while True:  # kill it once a few batches are in, well before the end
            moved = sum(v == APP_CURRENT for v in versions_now(raw, prefix, keys))
            if moved >= 12:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the rewriter ended or stalled before the kill (moved {moved})")
            time.sleep(0.005)
        # somewhere in the next batch: in its pause, its reads or its EXEC
        time.sleep(random.uniform(0, 0.08))
        kill(proc)
    finally:
        reap(proc)

    rewritten = check_consistent(store, raw, prefix, original, current_fields)
    assert moved <= rewritten < RECORDS, "the kill did not land mid-way"
    assert count_outdated(store, App) == (RECORDS - rewritten, 0)
    assert {app.id: app for app in store.stream(App, batch=50)} == before

    result = rewrite(store, App, batch=16)
    assert (result.found, result.rewritten, result.conflicts, result.remaining) == (
        RECORDS - rewritten, RECORDS - rewritten, 0, 0)
    assert check_consistent(store, raw, prefix, original, current_fields) == RECORDS
    assert {app.id: app for app in store.stream(App, batch=50)} == before
    assert rewrite(store, App).found == 0
    # and listings by index agree with the records
    by_priority = [a.id for a in store.query(App, where={"priority": 2}, limit=1000).items]
    assert sorted(by_priority, key=str) == sorted(
        (k for k, a in before.items() if a.priority == 2), key=str)


def test_the_rewriter_run_to_the_end_in_a_subprocess_reports_what_it_did(
        store: Store, open_store: OpenStore, backend_url: str) -> None:
    """The same child, left alone: the kill test's baseline."""
    prefix = prefix_of(store)
    old = open_store(storage_versions={"App": APP_OLDEST})
    with old.unit_of_work() as uow:
        for i in range(10):
            uow.create(new_app(name=f"app-{i}"))
    proc = python(REWRITER, backend_url, prefix, "3", "0")
    try:
        assert read_line(proc, timeout=60) == "start"
        assert json.loads(read_line(proc, timeout=60)) == [10, 10]
        assert proc.wait(timeout=30) == 0
    finally:
        reap(proc)
    assert count_outdated(store, App) == (0, 0)
