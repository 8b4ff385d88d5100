"""``rollsafe upgrade check``, ``rollsafe upgrade status`` and the gate of
``rollsafe db contract --service``, run for real in subprocesses against
SQLite, PostgreSQL and Redis, while the test drives a rolling upgrade of
tests/upgrade/upgrade_domain.py (copied next to the subprocess) through a
real Fleet.

Exit codes: check 0 success / 1 warning / 2 failure; contract 0 done /
1 refused; 2 bad usage everywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

UPGRADE_TESTS = Path(__file__).resolve().parent.parent / "upgrade"
sys.path.insert(0, str(UPGRADE_TESTS))

from upgrade_support import SQL_KINDS, Database, Rollout, database  # noqa: E402

ROLLSAFE = Path(sys.executable).with_name("rollsafe")
SERVICE, CONTRACT, BROKEN = ("upgrade_domain:SERVICE", "upgrade_domain:CONTRACT",
                             "upgrade_domain:BROKEN")


class Cli:
    """Runs ``rollsafe`` in a folder holding the service module, pointed
    at one test database."""

    def __init__(self, folder: Path, db: Database) -> None:
        shutil.copy(UPGRADE_TESTS / "upgrade_domain.py", folder / "upgrade_domain.py")
        self.folder = folder
        self.env = {**os.environ, "COLUMNS": "300", "NO_COLOR": "1", "TERM": "dumb",
                    "PYTHONDONTWRITEBYTECODE": "1", **db.env}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(ROLLSAFE), *args], cwd=self.folder, env=self.env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        return result

    def json(self, *args: str) -> tuple[int, Any]:
        result = self(*args, "--json")
        return result.returncode, json.loads(result.stdout)


def flat(text: str) -> str:
    """Output with Rich's box drawing and line breaks folded away."""
    for ch in "│┃╭╮╰╯─━┏┓┗┛┡┩┣┫╇╋┳┻└┘┌┐├┤┼┴┬":
        text = text.replace(ch, " ")
    return " ".join(text.split())


@pytest.fixture(params=SQL_KINDS)
def sql_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, request, tmp_path) as found:
        yield found


@pytest.fixture
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database("sqlite", request, tmp_path) as found:
        yield found


def columns(db: Database) -> set[str]:
    import sqlalchemy as sa

    from rollsafe.storage.sql import SqlBackend

    backend = SqlBackend(db.url)
    try:
        return {c["name"] for c in sa.inspect(backend.engine).get_columns("upg_app")}
    finally:
        backend.close()


def test_a_rolling_upgrade_through_the_cli(sql_db: Database, tmp_path: Path) -> None:
    cli = Cli(tmp_path, sql_db)
    rollout = Rollout(sql_db)
    rollout.start_release_n()

    plan = cli("db", "plan", "--service", SERVICE)
    assert plan.returncode == 1
    assert "expand: add_column upg_app.owner" in plan.stdout
    assert cli("db", "expand", "--service", SERVICE).returncode == 0
    assert cli("db", "plan", "--service", SERVICE).returncode == 0
    rollout.start_release_n1()

    # Status: who runs, the pin N holds back, nothing to migrate yet.
    code, status = cli.json("upgrade", "status", "--service", SERVICE)
    assert code == 0
    assert [(s["id"], s["release"], s["live"]) for s in status["services"]] == [
        ("api@host-0", "2024.1", False), ("api@host-1", "2024.1", True),
        ("api@host-2", "2024.2", True)]
    assert status["pins"] == [{"object": "App", "pinned": "1.1", "expected": "1.2",
                               "behind": True, "held_back_by": ["api@host-1"]}]
    assert status["migrations"] == [{"name": "rewrite-App", "remaining": 0, "error": None}]
    tables = flat(cli("upgrade", "status", "--service", SERVICE).stdout)
    for needle in ("services of inventory", "host-1 2024.1 App 1.1", "live", "stale",
                   "pins (release 2024.2)", "App 1.1 1.2 api@host-1", "rewrite-App 0"):
        assert needle in tables, needle

    # Check: a warning (exit 1) about the pins, naming the service.
    check = cli("upgrade", "check", "--service", SERVICE)
    assert check.returncode == 1, check.stdout
    assert "pins-at-release warning pins below release 2024.2: App at 1.1" in flat(check.stdout)
    assert "4 passed, 1 warning(s), 0 failure(s)" in check.stdout

    # Contract is refused while N is live; nothing is dropped.
    refused = cli("db", "contract", "--service", CONTRACT)
    assert refused.returncode == 1
    stderr = flat(refused.stderr)
    assert "refused: contract would break the running fleet (2 blocker(s))" in stderr
    assert "live service api@host-1 (release 2024.1) still reads App 1.1" in stderr
    # The contract release cannot even read the rows N wrote at 1.1.
    assert "online migration rewrite-App could not count what it has left" in stderr
    assert "note" in columns(sql_db)

    # N stops: the records N wrote must be migrated first (check exit 2, and
    # contract names the migration).
    rollout.stop_release_n()
    code, report = cli.json("upgrade", "check", "--service", SERVICE)
    assert code == 2 and report["status"] == "failure"
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["migrations-finished"]["status"] == "failure"
    assert by_name["migrations-finished"]["details"]["migrations"][0]["remaining"] == 3
    assert by_name["pins-at-release"]["status"] == "success"
    refused = cli("db", "contract", "--service", SERVICE, "--collections",
                  "upgrade_domain:CONTRACT_COLLECTIONS")
    assert refused.returncode == 1
    assert "online migration rewrite-App has 3 record(s) left: run rollsafe migrate until it " \
        "exits 0" in flat(refused.stderr)
    assert "note" in columns(sql_db)
    assert set(rollout.versions().values()) == {"1.1"}

    # Migrated: every check passes, and contract drops the old column.
    assert cli("migrate", "--service", SERVICE).returncode == 0
    check = cli("upgrade", "check", "--service", SERVICE)
    assert check.returncode == 0, check.stdout
    assert "5 passed, 0 warning(s), 0 failure(s)" in check.stdout
    done = cli("db", "contract", "--service", CONTRACT)
    assert done.returncode == 0, done.stderr
    assert "contract: remove_column upg_app.note" in done.stdout
    assert "contract done" in done.stdout
    assert "note" not in columns(sql_db)


def test_check_and_status_on_redis(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with database("redis", request, tmp_path) as redis_db:
        cli = Cli(tmp_path, redis_db)
        rollout = Rollout(redis_db)
        rollout.start_release_n()
        rollout.start_release_n1()
        code, report = cli.json("upgrade", "check", "--service", SERVICE)
        assert code == 1
        by_name = {c["name"]: c for c in report["checks"]}
        assert by_name["schema-expanded"] == {
            "name": "schema-expanded", "status": "success", "details": {},
            "message": "not applicable: a redis store has no schema to expand"}
        assert by_name["pins-at-release"]["status"] == "warning"
        rollout.stop_release_n()
        code, status = cli.json("upgrade", "status", "--service", SERVICE)
        assert code == 0
        assert [s["id"] for s in status["services"] if s["live"]] == ["api@host-2"]
        assert status["migrations"] == [{"name": "rewrite-App", "remaining": 3, "error": None}]
        assert cli("migrate", "--service", SERVICE).returncode == 0
        assert cli("upgrade", "check", "--service", SERVICE).returncode == 0
        contract = cli("db", "contract", "--service", CONTRACT)
        assert contract.returncode == 2
        assert "db commands need a SQL --url" in contract.stderr


def test_a_failing_check_exits_2_and_says_why(sqlite_db: Database, tmp_path: Path) -> None:
    cli = Cli(tmp_path, sqlite_db)
    Rollout(sqlite_db).start_release_n1()
    check = cli("upgrade", "check", "--service", BROKEN)
    assert check.returncode == 2
    text = flat(check.stdout)
    assert "quota-service-reachable failure the check raised ConnectionError: quota service " \
        "at 10.0.0.9:8774 refused the connection" in text
    assert "legacy-import: could not count (RuntimeError: the legacy table is missing)" in text
    assert "4 passed, 0 warning(s), 2 failure(s)" in text


def test_contract_force_goes_ahead_loudly(sqlite_db: Database, tmp_path: Path) -> None:
    cli = Cli(tmp_path, sqlite_db)
    rollout = Rollout(sqlite_db)
    rollout.start_release_n()
    rollout.start_release_n1()
    forced = cli("db", "contract", "--service", CONTRACT, "--force")
    assert forced.returncode == 0, forced.stderr
    stderr = flat(forced.stderr)
    assert "--force: contracting although the fleet still needs it:" in stderr
    assert "live service api@host-1 (release 2024.1) still reads App 1.1" in stderr
    assert "--force: dropping columns that stored rows may still use" in stderr
    assert "note" not in columns(sqlite_db)


def test_contract_without_service_warns_that_the_fleet_is_not_checked(
        sqlite_db: Database, tmp_path: Path) -> None:
    cli = Cli(tmp_path, sqlite_db)
    rollout = Rollout(sqlite_db)
    rollout.start_release_n()
    rollout.start_release_n1()
    # Rows are still at 1.1: the row check of contract refuses on its own.
    result = cli("db", "contract", "--collections", "upgrade_domain:CONTRACT_COLLECTIONS")
    assert result.returncode == 1
    assert "without --service, contract checks only the stored rows, not the live services " \
        "nor the online migrations" in flat(result.stderr)
    assert "rows are still stored at versions contract would strand" in flat(result.stderr)


@pytest.mark.parametrize(("args", "needle"), [
    (["db", "contract"], "give --service MODULE:NAME (a ServiceDefinition) or --collections"),
    (["db", "contract", "--service", "upgrade_domain"], "expected MODULE:NAME"),
    (["upgrade", "check", "--service", "upgrade_domain:registry"],
     "is a Registry, not a rollsafe ServiceDefinition"),
    (["upgrade", "status", "--service", "no_such_module:SERVICE"],
     "importing 'no_such_module' failed"),
])
def test_bad_usage_exits_2(sqlite_db: Database, tmp_path: Path, args: list[str],
                           needle: str) -> None:
    result = Cli(tmp_path, sqlite_db)(*args)
    assert result.returncode == 2
    assert needle in flat(result.stderr)


def test_status_of_a_database_without_the_fleet_table_exits_2(
        sqlite_db: Database, tmp_path: Path) -> None:
    result = Cli(tmp_path, sqlite_db)("upgrade", "status", "--service", SERVICE)
    assert result.returncode == 2
    assert "cannot read the fleet from the store: StorageError" in flat(result.stderr)
    assert "rollsafe db expand" in flat(result.stderr)
