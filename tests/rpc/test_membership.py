"""A service's membership loop: join, heartbeat, pins handed to serializers
and stores, live pin changes, errors survived, SIGHUP, coalesced refreshes
and a bounded stop. The lifecycle runs on SQLite, PostgreSQL and Redis; the
rest on SQLite."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rollsafe import Added, History, Registry, RetryableStorageError, Version, VersionedObject
from rollsafe.errors import NotFoundError
from rollsafe.rpc import FleetMembership, ObjectSerializer
from rollsafe.rpc.fleet import SERVICES, Fleet, ServiceRecord, ServiceTooOldError
from rollsafe.storage import Collection, Store, open_backend
from support import WAIT, FakeClock, wait_for

reg = Registry("membershiptest")


class Gadget(VersionedObject, registry=reg):
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Gadgets have a size", Added("size")))
    id: str
    name: str
    size: int = 0


GADGETS = Collection(Gadget, key="id")
OLD = {"Gadget": "1.0"}  # what release N reads
NEW = reg.manifest()     # release N+1


# --- fixtures ------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/fleet.db"


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fleet.db"
    fixture = "postgres_url" if request.param == "postgresql" else "redis_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def open_store() -> Iterator[Callable[[str], Store]]:
    """Opens stores (one per "process") on one empty database, closes them after."""
    opened: list[Store] = []
    prefix = f"rollsafe-membership-{uuid.uuid4().hex[:12]}"

    def make(url: str) -> Store:
        options: dict[str, Any] = {"key_prefix": prefix} if url.startswith("redis") else {}
        store = Store(open_backend(url, **options), [SERVICES, GADGETS])
        if not opened:
            if not url.startswith("redis"):
                store.backend.drop_all(store.collections)
            store.ensure_schema()
        opened.append(store)
        return store

    yield make
    if opened and prefix in str(getattr(opened[0].backend, "key_prefix", "")):
        opened[0].backend.drop_all(opened[0].collections)  # Redis keys outlive the test
    for store in opened:
        store.close()


@pytest.fixture
def memberships() -> Iterator[list[FleetMembership]]:
    """Memberships stopped after the test, whatever happened."""
    made: list[FleetMembership] = []
    yield made
    for membership in made:
        membership.stop(timeout=2)


def no_beats(member: FleetMembership) -> FleetMembership:
    """No heartbeat during the test (the first is drawn anywhere in the
    period, which may be soon): only what the test asks for happens."""
    member.next_interval = lambda first=False: 3600.0  # type: ignore[method-assign]
    return member


def stored_ids(store: Store) -> list[str]:
    return sorted(record.id for record in store.stream(ServiceRecord))


class Breaker:
    """Makes a store's backend fail (as if the server were down) while on,
    and counts its read-only transactions (the pin queries)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.broken = False
        self.delay = 0.0
        self.reads = 0
        self.lock = threading.Lock()
        self._transaction = store.backend.transaction
        monkeypatch.setattr(store.backend, "transaction", self.transaction)

    def transaction(self, *, readonly: bool = False) -> Any:
        if self.broken:
            raise RetryableStorageError("the store is down (test)")
        if readonly:
            with self.lock:
                self.reads += 1
        if self.delay:
            time.sleep(self.delay)
        return self._transaction(readonly=readonly)


# --- lifecycle on every backend ----------------------------------------------------


def test_a_member_joins_heartbeats_follows_the_pins_and_leaves(
        any_url: str, open_store: Callable[[str], Store]) -> None:
    fleet = Fleet(open_store(any_url), stale_after=1.5)
    data = open_store(any_url)  # the service's own store for its objects
    serializer = ObjectSerializer(reg)
    member = FleetMembership(fleet, "api", "h1", "N+1", reg, serializers=[serializer],
                             stores=[data])
    assert member.period == pytest.approx(0.5)
    with member:
        assert member.running
        assert stored_ids(fleet.store) == ["api@h1"]
        assert member.pins == NEW
        assert data.storage_versions == NEW
        first = fleet.store.get(ServiceRecord, "api@h1").heartbeat
        wait_for(lambda: member.beats >= 3, "three heartbeats")
        assert fleet.store.get(ServiceRecord, "api@h1").heartbeat > first
        # an old service joins from another process: the next beat lowers the pins
        other = Fleet(open_store(any_url), stale_after=1.5)
        old = other.join("worker", "h2", "N", OLD)
        wait_for(lambda: member.pins == OLD, "pins lowered by the old worker")
        assert data.storage_versions == OLD
        sent = serializer.serialize(Gadget(id="g", name="x", size=3))
        assert sent[reg.key_version] == "1.0"
        # it leaves: the pins rise at the next beat, nothing restarted
        other.leave(old)
        wait_for(lambda: member.pins == NEW, "pins raised after the worker left")
        assert data.storage_versions == NEW
        assert serializer.serialize(Gadget(id="g", name="x"))[reg.key_version] == "1.1"
        thread = member._thread
    assert not member.running and thread is not None and not thread.is_alive()
    assert stored_ids(fleet.store) == []  # left: the record is deleted
    assert member.record is None


# --- the rest on SQLite ------------------------------------------------------------------


def test_a_too_old_service_is_refused_at_start_unless_allowed(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership]) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=3, oldest_supported={"Gadget": "1.1"})
    old = FleetMembership(fleet, "worker", "h2", "N", OLD)
    memberships.append(old)
    with pytest.raises(ServiceTooOldError, match="worker@h2 is too old") as caught:
        old.start()
    assert "allow_too_old=True" in str(caught.value)
    assert not old.running and old.record is None and old.pins is None
    assert stored_ids(fleet.store) == []
    with pytest.raises(ServiceTooOldError), FleetMembership(fleet, "worker", "h2", "N", OLD):
        pytest.fail("the block must not run")  # pragma: no cover

    forced = FleetMembership(fleet, "worker", "h2", "N", OLD, allow_too_old=True)
    memberships.append(forced)
    forced.start()
    assert forced.running and forced.pins == OLD
    assert stored_ids(fleet.store) == ["worker@h2"]


def test_settings_are_checked(sqlite_url: str, open_store: Callable[[str], Store]) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=3)
    with pytest.raises(ValueError, match="shorter than the fleet's stale_after"):
        FleetMembership(fleet, "api", "h", "N", NEW, period=3)
    with pytest.raises(ValueError, match="period must be positive"):
        FleetMembership(fleet, "api", "h", "N", NEW, period=0)
    with pytest.raises(ValueError, match="jitter"):
        FleetMembership(fleet, "api", "h", "N", NEW, jitter=1)
    member = FleetMembership(fleet, "api", "h", "N", NEW)
    with pytest.raises(TypeError, match="only ObjectSerializer and Store"):
        member.follow("not a serializer")  # type: ignore[arg-type]


def test_beats_are_jittered_within_the_period(
        sqlite_url: str, open_store: Callable[[str], Store]) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=30)
    member = FleetMembership(fleet, "api", "h", "N", NEW, jitter=0.2)
    assert member.period == 10
    intervals = [member.next_interval() for _ in range(500)]
    assert all(8 <= i <= 10 for i in intervals)
    assert max(intervals) - min(intervals) > 1  # not all the same
    firsts = [member.next_interval(first=True) for _ in range(500)]
    assert all(0 < i <= 10 for i in firsts)
    assert min(firsts) < 2 and max(firsts) > 8  # services started together spread out


def test_a_stale_service_drops_out_and_the_pins_rise_without_a_restart(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership]) -> None:
    clock = FakeClock()
    new_fleet = Fleet(open_store(sqlite_url), stale_after=30, clock=clock)
    old_fleet = Fleet(open_store(sqlite_url), stale_after=30, clock=clock)
    data = open_store(sqlite_url)
    new = FleetMembership(new_fleet, "api", "h1", "N+1", NEW, period=0.05, stores=[data])
    old = FleetMembership(old_fleet, "worker", "h2", "N", OLD, period=0.05)
    memberships += [new, old]
    new.start()
    old.start()
    wait_for(lambda: new.pins == OLD, "pins lowered by the old worker")
    old.stop(leave=False)  # it stops heartbeating (a crash): the record stays
    assert stored_ids(new_fleet.store) == ["api@h1", "worker@h2"]
    clock.advance(20)
    beats = new.beats
    wait_for(lambda: new.beats >= beats + 2, "two more heartbeats")
    assert new.pins == OLD  # 20 s silent: still live
    clock.advance(11)
    wait_for(lambda: new.pins == NEW, "pins raised once the worker went stale")
    assert data.storage_versions == NEW
    assert [r.id for r in new_fleet.live()] == ["api@h1"]


def test_heartbeat_errors_are_logged_and_retried_and_never_kill_the_thread(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=0.6)
    data = open_store(sqlite_url)
    errors: list[BaseException] = []
    member = FleetMembership(fleet, "api", "h1", "N+1", NEW, stores=[data],
                             on_error=errors.append)
    memberships.append(member)
    breaker = Breaker(fleet.store, monkeypatch)
    member.start()
    wait_for(lambda: member.beats >= 1, "a first heartbeat")
    caplog.set_level(logging.WARNING, logger="rollsafe.rpc.membership")
    breaker.broken = True  # the store goes down
    wait_for(lambda: member.failures >= 3, "three failed beats")
    assert member.running
    assert isinstance(member.last_error, RetryableStorageError)
    assert errors and all(isinstance(e, RetryableStorageError) for e in errors)
    assert "heartbeat failed" in caplog.text and "store is down" in caplog.text
    assert data.storage_versions == NEW  # followers keep the last pins meanwhile
    assert member.target() == NEW        # and sends never touch the store
    beats = member.beats
    breaker.broken = False  # it is back
    wait_for(lambda: member.beats > beats and member.last_error is None,
             "heartbeats again once the store is back")
    assert member.failures == 0 and member.running
    assert stored_ids(fleet.store) == ["api@h1"]


def test_a_failing_hook_does_not_stop_the_loop(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership], monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=0.6)
    breaker = Breaker(fleet.store, monkeypatch)

    def bad_hook(*args: Any) -> None:
        raise RuntimeError("hook bug")

    member = FleetMembership(fleet, "api", "h1", "N+1", NEW, on_error=bad_hook,
                             on_change=bad_hook)
    memberships.append(member)
    member.start()  # on_change raised for the first pins: logged only
    breaker.broken = True
    wait_for(lambda: member.failures >= 2, "two failed beats")
    breaker.broken = False
    wait_for(lambda: member.last_error is None, "a good beat")
    assert member.running


def test_on_change_reports_each_pin_change(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership]) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=30)
    changes: list[tuple[Any, Any]] = []
    member = no_beats(FleetMembership(
        fleet, "api", "h1", "N+1", NEW,
        on_change=lambda before, after: changes.append((before, after))))
    memberships.append(member)
    member.start()
    other = Fleet(open_store(sqlite_url), stale_after=30)
    old = other.join("worker", "h2", "N", OLD)
    member.refresh_now()
    member.refresh_now()  # unchanged: not reported
    other.leave(old)
    member.refresh_now()
    assert changes == [(None, NEW), (NEW, OLD), (OLD, NEW)]


def test_refresh_now_and_followers_added_later(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership]) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=30)
    member = no_beats(FleetMembership(fleet, "api", "h1", "N+1", NEW))
    memberships.append(member)
    member.start()
    other = Fleet(open_store(sqlite_url), stale_after=30)
    other.join("worker", "h2", "N", OLD)
    assert member.pins == NEW  # not seen before a beat or a refresh
    assert member.refresh_now() == OLD
    late = ObjectSerializer(reg)
    data = open_store(sqlite_url)
    member.follow(late, data)  # the pins apply at once
    assert late.serialize(Gadget(id="g", name="x"))[reg.key_version] == "1.0"
    assert data.storage_versions == OLD
    member.follow(late)  # following twice is harmless
    assert member._followers.count(late) == 1


def test_sighup_refreshes_the_pins(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership]) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=30)
    data = open_store(sqlite_url)
    member = no_beats(FleetMembership(fleet, "api", "h1", "N+1", NEW, stores=[data]))
    memberships.append(member)
    calls: list[int] = []
    before = signal.signal(signal.SIGHUP, lambda number, frame: calls.append(number))
    try:
        member.start()
        member.install_signal_handler()
        Fleet(open_store(sqlite_url), stale_after=30).join("worker", "h2", "N", OLD)
        assert member.pins == NEW
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: member.pins == OLD, "pins refreshed on SIGHUP")
        assert data.storage_versions == OLD
        assert calls == [signal.SIGHUP]  # the handler installed before still runs
        assert member.beats == 0  # a refresh, not a beat
        member.stop()
        assert signal.getsignal(signal.SIGHUP) is not None
        os.kill(os.getpid(), signal.SIGHUP)  # the previous handler is back
        wait_for(lambda: len(calls) == 2, "the previous handler called")
    finally:
        signal.signal(signal.SIGHUP, before)


def test_the_signal_handler_needs_the_main_thread(
        sqlite_url: str, open_store: Callable[[str], Store]) -> None:
    member = FleetMembership(Fleet(open_store(sqlite_url), stale_after=30), "api", "h",
                             "N", NEW)
    caught: list[BaseException] = []

    def install() -> None:
        try:
            member.install_signal_handler()
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=install, name="not-main")
    thread.start()
    thread.join(WAIT)
    assert len(caught) == 1 and isinstance(caught[0], RuntimeError)
    assert "main thread" in str(caught[0]) and "'not-main'" in str(caught[0])


def test_concurrent_refreshes_share_one_query(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership], monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=30)
    member = no_beats(FleetMembership(fleet, "api", "h1", "N+1", NEW))
    memberships.append(member)
    member.start()
    breaker = Breaker(fleet.store, monkeypatch)
    breaker.delay = 0.3  # a slow store: every request arrives while one query runs
    barrier = threading.Barrier(16)
    results: list[Any] = []

    def refresh() -> None:
        barrier.wait()
        results.append(member.refresh_now())

    threads = [threading.Thread(target=refresh) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert results == [NEW] * 16
    assert breaker.reads <= 2, breaker.reads  # one query, two at worst, never sixteen

    # the fleet's own cache: senders that find it expired together share one query
    fleet.refresh_later()
    breaker.reads = 0
    barrier = threading.Barrier(16)
    pins: list[Any] = []

    def send() -> None:
        barrier.wait()
        pins.append(fleet.pins())

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert pins == [NEW] * 16
    assert breaker.reads <= 2, breaker.reads


def test_a_refresh_that_fails_is_shared_by_its_waiters(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership], monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=30)
    member = no_beats(FleetMembership(fleet, "api", "h1", "N+1", NEW))
    memberships.append(member)
    member.start()
    breaker = Breaker(fleet.store, monkeypatch)
    breaker.broken = True
    with pytest.raises(RetryableStorageError):
        member.refresh_now()
    assert member.pins == NEW  # the last pins stay
    breaker.broken = False
    assert member.refresh_now() == NEW


def test_stop_is_bounded_even_when_the_store_hangs(
        sqlite_url: str, open_store: Callable[[str], Store],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=0.3)
    member = FleetMembership(fleet, "api", "h1", "N+1", NEW)
    member.start()
    release = threading.Event()
    transaction = fleet.store.backend.transaction

    def hanging(*, readonly: bool = False) -> Any:
        release.wait(WAIT)
        return transaction(readonly=readonly)

    monkeypatch.setattr(fleet.store.backend, "transaction", hanging)
    time.sleep(0.25)  # a beat is now stuck in the store
    stuck = member._thread
    started = time.monotonic()
    member.stop(timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert not member.running
    assert stored_ids(open_store(sqlite_url)) == ["api@h1"]  # not left yet: the store hangs
    release.set()  # the store answers again: the leave goes through in the background
    wait_for(lambda: stored_ids(open_store(sqlite_url)) == [], "the record deleted")
    assert stuck is not None
    stuck.join(WAIT)
    assert not stuck.is_alive()  # the stuck thread ended once free, as its run was stopped
    member.start()  # and the membership can start again
    assert member.running and stored_ids(open_store(sqlite_url)) == ["api@h1"]
    member.stop()


def test_a_record_gone_meanwhile_is_written_again_by_the_next_beat(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership]) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=0.6)
    member = FleetMembership(fleet, "api", "h1", "N+1", NEW)
    memberships.append(member)
    member.start()
    fleet.store.delete(fleet.store.get(ServiceRecord, "api@h1"))  # an operator's cleanup
    wait_for(lambda: stored_ids(fleet.store) == ["api@h1"], "the record written again")


def test_stop_without_leaving_keeps_the_record_and_start_again_rejoins(
        sqlite_url: str, open_store: Callable[[str], Store],
        memberships: list[FleetMembership]) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=30)
    member = FleetMembership(fleet, "api", "h1", "N+1", NEW)
    memberships.append(member)
    member.start()
    member.stop(leave=False)
    assert stored_ids(fleet.store) == ["api@h1"] and not member.running
    member.start()
    assert member.running
    member.stop()
    member.stop()  # twice is harmless
    with pytest.raises(NotFoundError):
        fleet.store.get(ServiceRecord, "api@h1")


def test_a_refresh_after_this_fleets_own_join_does_not_share_an_older_query(
        sqlite_url: str, open_store: Callable[[str], Store],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(open_store(sqlite_url), stale_after=30)
    fleet.join("api", "h1", "N+1", NEW)
    read, go_on = threading.Event(), threading.Event()
    live = fleet.live

    def slow_live() -> list[ServiceRecord]:
        records = live()
        if not go_on.is_set():
            read.set()
            go_on.wait(WAIT)  # this query has read the fleet before the join below
        return records

    monkeypatch.setattr(fleet, "live", slow_live)
    results: dict[str, Any] = {}
    early = threading.Thread(target=lambda: results.update(early=fleet.refresh()))
    early.start()
    assert read.wait(WAIT)
    fleet.join("worker", "h2", "N", OLD)  # this fleet's own join: the pins may drop
    late = threading.Thread(target=lambda: results.update(late=fleet.refresh()))
    late.start()
    time.sleep(0.1)
    go_on.set()
    early.join(WAIT)
    late.join(WAIT)
    assert results == {"early": NEW, "late": OLD}  # the late one ran its own query
    monkeypatch.setattr(fleet, "live", lambda: pytest.fail("cached: no query"))
    assert fleet.pins() == OLD  # and the early, older result was not cached
