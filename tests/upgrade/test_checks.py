"""Upgrade checks (rollsafe.upgrade.checks) through a real rolling upgrade
of ``upgrade_domain``, on SQLite, PostgreSQL and Redis: service records
written by a real Fleet, migrations pending or done, schema expanded or
not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import upgrade_domain as dom
from upgrade_support import ALL_KINDS, SQL_KINDS, Database, Rollout, database

from rollsafe.errors import DefinitionError
from rollsafe.upgrade import (
    CheckContext,
    CheckResult,
    CheckStatus,
    UpgradeCheck,
    run_checks,
    upgrade_check,
)
from rollsafe.upgrade.checks import BUILTIN_CHECKS

BUILTIN = ["services-supported", "migrations-finished", "schema-expanded", "pins-at-release"]


@pytest.fixture(params=ALL_KINDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, request, tmp_path) as found:
        yield found


@pytest.fixture(params=SQL_KINDS)
def sql_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, request, tmp_path) as found:
        yield found


def statuses(report: object) -> dict[str, str]:
    return {r.name: r.status.label for r in report.results}  # type: ignore[attr-defined]


def test_builtin_checks_run_first_then_the_services_own() -> None:
    assert [c.name for c in BUILTIN_CHECKS] == BUILTIN
    assert all(c.description for c in BUILTIN_CHECKS)
    assert dom.apps_have_names.description == \
        "Every stored App has a name (the service's own check)."


def test_a_rolling_upgrade_is_checked_step_by_step(db: Database) -> None:
    rollout = Rollout(db)
    rollout.start_release_n()
    rollout.start_release_n1()
    store = db.store()

    # N+1 is up next to a live N: the pins wait for N, with nothing to migrate
    # yet (the fleet writes at N's versions).
    during = run_checks(dom.SERVICE, store)
    assert [r.name for r in during.results] == [*BUILTIN, "apps-have-names"]
    assert statuses(during) == {"services-supported": "success",
                                "migrations-finished": "success",
                                "schema-expanded": "success", "pins-at-release": "warning",
                                "apps-have-names": "success"}
    assert (during.status, during.exit_code) == (CheckStatus.WARNING, 1)
    pins = during["pins-at-release"]
    assert "App at 1.1 (release 2024.2 reads 1.2), held back by api@host-1" in pins.message
    assert "api@host-0" not in pins.message  # stale for hours: not holding anything
    assert "Upgrade or stop those services" in pins.message
    assert pins.details["pins"] == [{"object": "App", "pinned": "1.1", "expected": "1.2",
                                     "behind": True, "held_back_by": ["api@host-1"]}]
    assert "2 live service(s)" in during["services-supported"].message

    # N stopped: the pins rise, and the records N wrote are left to migrate.
    rollout.stop_release_n()
    after = run_checks(dom.SERVICE, store)
    assert statuses(after)["pins-at-release"] == "success"
    assert after["pins-at-release"].message == "pins at release 2024.2 (App 1.2)"
    left = after["migrations-finished"]
    assert left.status is CheckStatus.FAILURE and after.exit_code == 2
    assert left.message == ("online migrations not finished: rewrite-App: 3 record(s) left; "
                            "run rollsafe migrate until it exits 0")
    assert left.details == {"migrations": [{"name": "rewrite-App", "remaining": 3,
                                            "error": None}]}

    # Migrated: every check passes.
    assert dom.SERVICE.migrations is not None
    pinned = db.store()
    pinned.storage_versions = dom.SERVICE.fleet(pinned).target()
    assert dom.SERVICE.migrations.run(pinned).exit_code == 0
    assert set(rollout.versions().values()) == {"1.2"}
    done = run_checks(dom.SERVICE, store)
    assert set(statuses(done).values()) == {"success"}
    assert done.exit_code == 0
    assert done["migrations-finished"].message == \
        "all 1 online migration(s) report nothing left"


def test_schema_not_expanded_fails_until_db_expand(sql_db: Database) -> None:
    from rollsafe.storage.migrate import expand

    rollout = Rollout(sql_db)
    rollout.start_release_n()
    store = sql_db.store()
    before = run_checks(dom.SERVICE, store)["schema-expanded"]
    assert before.status is CheckStatus.FAILURE
    assert before.message.startswith("schema not expanded: 2 change(s) missing (")
    assert "add_column upg_app.owner" in before.message
    assert "add_index ix_upg_app_owner on upg_app" in before.message
    assert before.message.endswith("run rollsafe db expand before starting the new release")

    expand(store.backend, store.collections)  # type: ignore[arg-type]
    assert run_checks(dom.SERVICE, store)["schema-expanded"].message == "schema expanded"
    # The contract definition also passes, and says what contract would drop.
    waiting = run_checks(dom.CONTRACT, sql_db.store(dom.CONTRACT))["schema-expanded"]
    assert waiting.status is CheckStatus.SUCCESS
    assert waiting.message == ("schema expanded; contract has 1 drop(s) waiting for "
                               "rollsafe db contract")
    assert waiting.details["contract"] == ["remove_column upg_app.note (TEXT)"]


def test_redis_has_no_schema_to_expand(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with database("redis", request, tmp_path) as redis_db:
        result = run_checks(dom.SERVICE, redis_db.store())["schema-expanded"]
    assert result.status is CheckStatus.SUCCESS
    assert result.message == "not applicable: a redis store has no schema to expand"


def test_a_live_service_older_than_supported_fails(db: Database) -> None:
    rollout = Rollout(db)
    rollout.start_release_n()
    rollout.start_release_n1()
    rollout.join("worker", "host-9", dom.OLD, {"App": "1.0"}, allow_too_old=True)
    report = run_checks(dom.SERVICE, db.store())
    result = report["services-supported"]
    assert result.status is CheckStatus.FAILURE and report.exit_code == 2
    assert result.message.startswith(
        "1 live service(s) older than supported: worker@host-9 (release 2023.1) reads App "
        "1.0, older than 1.1. Upgrade them")
    assert result.details["too_old"] == [{"service": "worker@host-9", "release": "2023.1",
                                          "object": "App", "version": "1.0", "oldest": "1.1"}]
    # It holds the pins back too.
    assert "held back by api@host-1, worker@host-9" in report["pins-at-release"].message


def test_a_stale_service_older_than_supported_is_gone(db: Database) -> None:
    rollout = Rollout(db)
    rollout.start_release_n1()
    rollout.join("worker", "host-9", dom.OLD, {"App": "1.0"}, allow_too_old=True,
                 hours_ago=3)
    report = run_checks(dom.SERVICE, db.store())
    assert report["services-supported"].status is CheckStatus.SUCCESS
    assert report["services-supported"].message == (
        "1 live service(s), none older than the oldest supported versions (App 1.1)")


def test_a_check_that_raises_or_a_count_that_fails_is_a_failure(db: Database) -> None:
    Rollout(db).start_release_n1()
    report = run_checks(dom.BROKEN, db.store(dom.BROKEN))
    assert report.exit_code == 2
    raised = report["quota-service-reachable"]
    assert raised.status is CheckStatus.FAILURE
    assert raised.message.startswith("the check raised ConnectionError: quota service at "
                                     "10.0.0.9:8774 refused the connection; it could not tell")
    assert raised.details == {
        "error": "ConnectionError: quota service at 10.0.0.9:8774 refused the connection"}
    counted = report["migrations-finished"]
    assert counted.status is CheckStatus.FAILURE
    assert "legacy-import: could not count (RuntimeError: the legacy table is missing)" \
        in counted.message
    assert "fix the failing count, then run rollsafe migrate" in counted.message
    # The other checks still ran.
    assert report["apps-have-names"].status is CheckStatus.SUCCESS


def test_a_check_returning_something_else_is_a_failure(tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    sloppy = UpgradeCheck("sloppy", lambda context: "looks fine")  # type: ignore[arg-type,return-value]
    with database("sqlite", request, tmp_path) as sqlite_db:
        report = run_checks(dom.BARE, sqlite_db.store(dom.BARE), extra=[sloppy])
    assert report["sloppy"].status is CheckStatus.FAILURE
    assert report["sloppy"].message.startswith("the check returned str, not a CheckResult")


def test_without_release_history_or_migrations_the_checks_do_not_apply(
        db: Database) -> None:
    Rollout(db).start_release_n1()
    report = run_checks(dom.BARE, db.store(dom.BARE))
    assert report.exit_code == 0
    for name in ("services-supported", "migrations-finished", "pins-at-release"):
        assert report[name].message.startswith("not applicable: "), name


def test_pins_above_the_release_history_ask_for_a_release_entry(db: Database) -> None:
    rollout = Rollout(db)
    rollout.start_release_n1()
    rollout.join("api", "host-3", "2025.1", {"App": "1.3"})
    rollout.stop_release_n()
    store = db.store()
    # Only the N+1 and the unrecorded 2025.1 process are live: the pin is 1.2.
    assert run_checks(dom.SERVICE, store)["pins-at-release"].status is CheckStatus.SUCCESS
    rollout.fleet().leave(rollout.fleet().live()[0])  # api@host-2 (N+1) leaves
    ahead = run_checks(dom.SERVICE, store)["pins-at-release"]
    assert ahead.status is CheckStatus.WARNING
    assert ahead.message == ("live services read versions newer than release 2024.2 records "
                             "(App at 1.3): add their release to the release history")


def test_check_names_must_be_unique_and_checks_must_be_upgrade_checks(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    @upgrade_check("schema-expanded")
    def mine(context: CheckContext) -> CheckResult:
        return CheckResult.success("mine")

    with database("sqlite", request, tmp_path) as sqlite_db:
        store = sqlite_db.store(dom.BARE)
        with pytest.raises(DefinitionError, match="two upgrade checks are named "
                                                  "'schema-expanded'; give each its own name"):
            run_checks(dom.BARE, store, extra=[mine])
        with pytest.raises(DefinitionError, match="checks must be UpgradeCheck objects"):
            run_checks(dom.BARE, store, extra=[print])  # type: ignore[list-item]


def test_report_is_json_ready(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with database("sqlite", request, tmp_path) as sqlite_db:
        Rollout(sqlite_db).start_release_n1()
        report = run_checks(dom.SERVICE, sqlite_db.store())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["status"] == "success" and data["exit_code"] == 0
    assert [c["name"] for c in data["checks"]] == [*BUILTIN, "apps-have-names"]
    assert data["checks"][-1] == {"name": "apps-have-names", "status": "success",
                                  "message": "every app has a name", "details": {}}
    with pytest.raises(KeyError, match="no check named 'nope'"):
        report["nope"]
