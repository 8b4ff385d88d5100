"""The fleet: live services, their pins, and senders wired to them, on
SQLite and (with the real servers) PostgreSQL and Redis."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rollsafe import Added, History, Registry, Version, VersionedObject
from rollsafe.rpc import ObjectSerializer
from rollsafe.rpc.fleet import SERVICES, Fleet, ServiceRecord, ServiceTooOldError
from rollsafe.storage import Collection, Store, open_backend
from support import FakeClock

START = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)

# --- a test domain with a history 1.0 -> 1.1 -----------------------------------

reg = Registry("fleettest")


class Widget(VersionedObject, registry=reg):
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Widgets have a color", Added("color")))
    id: str
    name: str
    color: str = "blue"


WIDGETS = Collection(Widget, key="id")


def new_widget(**values: Any) -> Widget:
    """A Widget with the given field values."""
    return Widget(**values)


# --- fixtures ----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/f.db"
    fixture = "postgres_url" if request.param == "postgresql" else "redis_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def store(backend_url: str) -> Iterator[Store]:
    """An empty store holding service records and widgets."""
    redis = backend_url.startswith("redis")
    options: dict[str, Any] = (
        {"key_prefix": f"rollsafe-fleet-{uuid.uuid4().hex[:12]}"} if redis else {})
    store = Store(open_backend(backend_url, **options), [SERVICES, WIDGETS])
    if not redis:
        store.backend.drop_all(store.collections)
    store.ensure_schema()
    yield store
    if redis:
        store.backend.drop_all(store.collections)
    store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def make_fleet(store: Store, clock: FakeClock) -> Callable[..., Fleet]:
    def make(**options: Any) -> Fleet:
        return Fleet(store, stale_after=30.0, clock=clock, **options)

    return make


# --- tests -------------------------------------------------------------------------


def test_pins_are_the_lowest_version_across_live_services(
        make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet()
    assert fleet.pins() == {}
    fleet.join("api", "h1", "2024.2", {"App": "1.3", "Source": "1.0"})
    fleet.join("worker", "h2", "2024.1", {"App": "1.1.7"})
    fleet.join("conductor", "h3", "2024.2", {"App": "1.2", "Only": "2.4"})
    assert fleet.pins() == {"App": "1.1", "Source": "1.0", "Only": "2.4"}
    assert [r.id for r in fleet.live()] == ["api@h1", "conductor@h3", "worker@h2"]
    # a rejoin (the worker upgraded) replaces its record, not adds one
    fleet.join("worker", "h2", "2024.2", {"App": "1.3"})
    assert fleet.pins()["App"] == "1.2"
    assert len(fleet.live()) == 3
    assert fleet.store.get(ServiceRecord, "worker@h2").release == "2024.2"


def test_a_silent_service_drops_out_and_the_pin_rises(
        make_fleet: Callable[..., Fleet], clock: FakeClock) -> None:
    fleet = make_fleet()
    new = fleet.join("api", "h1", "N+1", {"App": "1.1"})
    fleet.join("api", "h2", "N", {"App": "1.0"})
    other = make_fleet()  # another process's view of the same store
    assert other.pins() == {"App": "1.0"}
    clock.advance(20)
    new = fleet.heartbeat(new)
    assert new.heartbeat == clock.now
    clock.advance(15)  # h2 silent for 35 s, h1 for 15 s
    assert [r.id for r in fleet.live()] == ["api@h1"]
    assert other.pins() == {"App": "1.1"}  # cache older than stale_after / 3: recomputed
    clock.advance(40)
    assert fleet.live() == []
    assert other.refresh() == {}


def test_leave_removes_the_record(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet()
    old = fleet.join("api", "h1", "N", {"App": "1.0"})
    fleet.join("api", "h2", "N+1", {"App": "1.1"})
    assert fleet.pins() == {"App": "1.0"}
    fleet.leave(old)
    assert fleet.pins() == {"App": "1.1"}  # own leave: no wait for the cache
    fleet.leave(old)  # twice is harmless
    assert [r.id for r in fleet.live()] == ["api@h2"]


def test_manual_pins_override(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet(manual_pins={"App": "1.0", "Held": "3.1"})
    fleet.join("api", "h1", "N+1", {"App": "1.2", "Source": "1.4"})
    assert fleet.pins() == {"App": "1.0", "Held": "3.1", "Source": "1.4"}
    assert fleet.target() == fleet.pins()


def test_a_too_old_service_is_refused_unless_allowed(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet(oldest_supported={"App": "1.1"})
    fleet.join("api", "h1", "N+1", {"App": "1.1", "Source": "1.0"})
    with pytest.raises(ServiceTooOldError) as caught:
        fleet.join("worker", "h2", "N-1", {"App": "1.0.9", "Source": "1.0"})
    message = str(caught.value)
    assert "worker@h2" in message and "App 1.0.9" in message and "App 1.1" in message
    assert (caught.value.name, caught.value.version, caught.value.oldest) == \
        ("App", "1.0.9", "1.1")
    assert [r.id for r in fleet.live()] == ["api@h1"]  # nothing recorded
    fleet.join("worker", "h2", "N-1", {"App": "1.0"}, allow_too_old=True)
    assert fleet.pins() == {"App": "1.0", "Source": "1.0"}


def test_malformed_versions_are_refused(make_fleet: Callable[..., Fleet]) -> None:
    with pytest.raises(ValueError, match="manual_pins"):
        make_fleet(manual_pins={"App": "one"})
    fleet = make_fleet()
    with pytest.raises(ValueError):
        fleet.join("api", "h1", "N", {"App": "latest"})
    with pytest.raises(ValueError):
        fleet.join("api", "h1", "N", {"App": "latest"}, allow_too_old=True)
    assert fleet.live() == []


def test_concurrent_joins_all_land(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def start(i: int) -> None:
        try:
            barrier.wait()
            fleet.join("worker", f"h{i}", "N", {"App": f"1.{i}"})
            # and every thread also joins one shared record (a race on one key)
            fleet.join("shared", "h", "N", {"App": "1.5"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    ids = [r.id for r in fleet.live()]
    assert ids == sorted([f"worker@h{i}" for i in range(8)] + ["shared@h"])
    assert fleet.pins() == {"App": "1.0"}


def test_pins_are_cached_until_refresh_or_age(
        make_fleet: Callable[..., Fleet], clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = make_fleet()
    fleet.join("api", "h1", "N", {"App": "1.0"})
    reads = 0
    transaction = fleet.store.backend.transaction

    def counting(*, readonly: bool = False) -> Any:
        nonlocal reads
        reads += readonly
        return transaction(readonly=readonly)

    monkeypatch.setattr(fleet.store.backend, "transaction", counting)
    assert fleet.pins() == {"App": "1.0"}
    assert reads == 1
    for _ in range(50):
        fleet.target()
    assert reads == 1
    # another process joins: not seen until refresh() or the cache ages
    make_fleet().join("api", "h2", "N+1", {"App": "1.1", "New": "1.0"})
    assert fleet.pins() == {"App": "1.0"}
    reads = 0
    assert fleet.refresh() == {"App": "1.0", "New": "1.0"}
    assert reads == 1
    clock.advance(9.9)
    fleet.pins()
    assert reads == 1
    clock.advance(0.1)  # stale_after / 3 = 10 s
    fleet.pins()
    assert reads == 2


def test_a_serializer_and_a_store_wired_to_the_fleet_use_the_pins(
        make_fleet: Callable[..., Fleet], store: Store) -> None:
    fleet = make_fleet()
    old = fleet.join("api", "h1", "N", {"Widget": "1.0"})
    fleet.join("api", "h2", "N+1", reg.manifest())
    serializer = ObjectSerializer(reg, target=fleet.target)
    widget = new_widget(id="w1", name="gear", color="red")

    sent = serializer.serialize({"widget": widget})["widget"]
    assert sent[reg.key_version] == "1.0"
    assert "color" not in sent[reg.key_data]

    pinned = Store(store.backend, [WIDGETS], storage_versions=fleet.target())
    pinned.create(widget)
    with store.backend.transaction(readonly=True) as tx:
        record = tx.get(WIDGETS, "w1", None)
    assert record is not None and record.version == "1.0"

    fleet.leave(old)  # the old release is gone: the pin rises, no restart
    sent = serializer.serialize(widget)
    assert sent[reg.key_version] == "1.1"
    assert sent[reg.key_data]["color"] == "red"
    pinned.storage_versions = fleet.target()
    assert pinned.storage_versions == {"Widget": "1.1"}
