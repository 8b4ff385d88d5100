"""The contract gate (rollsafe.upgrade.gate) and the fleet status it reads
(rollsafe.upgrade.status), through a real rolling upgrade of
``upgrade_domain`` on SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import upgrade_domain as dom
from rich.console import Console
from upgrade_support import ALL_KINDS, Database, Rollout, database

from rollsafe.errors import ContractBlockedError, StorageError
from rollsafe.upgrade import check_contract, contract_blockers, fleet_status, status_tables


@pytest.fixture(params=ALL_KINDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, request, tmp_path) as found:
        yield found


def test_contract_waits_for_old_services_then_migrations_then_passes(db: Database) -> None:
    rollout = Rollout(db)
    rollout.start_release_n()
    rollout.start_release_n1()
    store = db.store()
    contract_colls = dom.CONTRACT_COLLECTIONS

    # N is live and reads App 1.1, which a contract to oldest 1.2 removes.
    blockers = contract_blockers(dom.SERVICE, store, collections=contract_colls)
    assert [(b.kind, b.name) for b in blockers] == [("service", "api@host-1")]
    assert str(blockers[0]) == (
        "live service api@host-1 (release 2024.1) still reads App 1.1 (contract keeps 1.2 "
        "and newer): upgrade or stop it, then wait until its record is gone or stale "
        "(3600s without a heartbeat)")
    with pytest.raises(ContractBlockedError) as refused:
        check_contract(dom.SERVICE, store, collections=contract_colls)
    assert refused.value.blockers == [blockers[0].message]
    assert str(refused.value).startswith("contract is not safe yet: live service api@host-1")
    # What the service's own collections keep (1.1 and newer) N still reads: no blocker.
    assert contract_blockers(dom.SERVICE, store) == []

    # N gone: the records it wrote are what blocks now.
    rollout.stop_release_n()
    blockers = contract_blockers(dom.SERVICE, store, collections=contract_colls)
    assert [(b.kind, b.name, b.message) for b in blockers] == [(
        "migration", "rewrite-App", "online migration rewrite-App has 3 record(s) left: run "
        "rollsafe migrate until it exits 0")]

    assert dom.SERVICE.migrations is not None
    pinned = db.store()
    pinned.storage_versions = dom.SERVICE.fleet(pinned).target()
    assert dom.SERVICE.migrations.run(pinned).exit_code == 0
    assert contract_blockers(dom.SERVICE, store, collections=contract_colls) == []
    check_contract(dom.CONTRACT, db.store(dom.CONTRACT))  # passes: returns


def test_a_migration_that_cannot_count_blocks_contract(db: Database) -> None:
    Rollout(db).start_release_n1()
    blockers = contract_blockers(dom.BROKEN, db.store(dom.BROKEN))
    assert [(b.kind, b.name) for b in blockers] == [("migration", "legacy-import")]
    assert blockers[0].message == (
        "online migration legacy-import could not count what it has left (RuntimeError: the "
        "legacy table is missing); contract cannot assume nothing is left: do what the error "
        "says, then run again")


def test_the_contract_definition_cannot_count_records_it_no_longer_reads(
        db: Database) -> None:
    rollout = Rollout(db)
    rollout.start_release_n()
    rollout.start_release_n1()
    rollout.stop_release_n()
    blockers = contract_blockers(dom.CONTRACT, db.store(dom.CONTRACT))
    assert [(b.kind, b.name) for b in blockers] == [("migration", "rewrite-App")]
    if db.kind == "redis":  # a hash at any version can be read, and counted
        assert blockers[0].message.startswith("online migration rewrite-App has 3 record(s)")
    else:  # the columns of 1.1 are not mapped: the count cannot read those rows
        assert "could not count what it has left (StorageError: " in blockers[0].message


def test_stale_old_services_do_not_block(db: Database) -> None:
    rollout = Rollout(db)
    rollout.start_release_n1()
    rollout.join("api", "host-0", dom.N, dom.n_registry.manifest(), hours_ago=2)
    assert contract_blockers(dom.CONTRACT, db.store(dom.CONTRACT)) == []


def test_status_shows_services_pins_and_migrations(db: Database) -> None:
    rollout = Rollout(db)
    rollout.start_release_n()
    rollout.start_release_n1()
    rollout.stop_release_n()
    status = fleet_status(dom.SERVICE, db.store())

    assert [(s.id, s.release, s.manifest, s.live) for s in status.services] == [
        ("api@host-0", dom.N, {"App": "1.1"}, False),
        ("api@host-2", dom.N1, {"App": "1.2"}, True)]
    stale, live = status.services
    assert stale.age > 7000 and 0 <= live.age < dom.STALE_AFTER
    assert [s.id for s in status.live] == ["api@host-2"]
    assert [p.to_dict() for p in status.pins] == [
        {"object": "App", "pinned": "1.2", "expected": "1.2", "behind": False,
         "held_back_by": []}]
    assert status.migrations is not None
    assert [m.to_dict() for m in status.migrations] == [
        {"name": "rewrite-App", "remaining": 3, "error": None}]
    assert (status.service, status.release, status.stale_after) == \
        ("inventory", dom.N1, dom.STALE_AFTER)

    data = json.loads(json.dumps(status.to_dict()))
    assert [s["id"] for s in data["services"]] == ["api@host-0", "api@host-2"]
    assert data["services"][0]["live"] is False
    assert data["migrations"] == [{"name": "rewrite-App", "remaining": 3, "error": None}]

    console = Console(width=160, record=True, color_system=None)
    for table in status_tables(status):
        console.print(table)
    text = console.export_text()
    for needle in ("services of inventory (stale after 3600s)", "host-0", "stale",
                   "live", "pins (release 2024.2)", "online migrations", "rewrite-App",
                   "2h ago"):
        assert needle in text, needle


def test_status_names_the_services_holding_pins_and_failed_counts(db: Database) -> None:
    rollout = Rollout(db)
    rollout.start_release_n()
    rollout.start_release_n1()
    status = fleet_status(dom.BROKEN, db.store(dom.BROKEN))
    assert [p.to_dict() for p in status.pins] == [
        {"object": "App", "pinned": "1.1", "expected": "1.2", "behind": True,
         "held_back_by": ["api@host-1"]}]
    assert status.migrations is not None
    assert [m.to_dict() for m in status.migrations] == [
        {"name": "rewrite-App", "remaining": 0, "error": None},
        {"name": "legacy-import", "remaining": None,
         "error": "RuntimeError: the legacy table is missing"}]


def test_status_of_a_service_without_migrations_or_releases(db: Database) -> None:
    status = fleet_status(dom.BARE, db.store(dom.BARE)) if db.kind == "redis" else None
    if status is None:  # SQL: the fleet's table must exist to be read
        with pytest.raises(StorageError):
            fleet_status(dom.BARE, db.store(dom.BARE))
        Rollout(db).start_release_n1()
        status = fleet_status(dom.BARE, db.store(dom.BARE))
        assert [s.id for s in status.services] == ["api@host-2"]
    assert status.migrations is None and status.release is None
    assert all(p.expected is None and not p.behind for p in status.pins)
    assert status.to_dict()["migrations"] is None
