"""``rollsafe migrate``, run for real in a subprocess, on a SQLite file and a
real PostgreSQL, with a service module written into tmp_path (its objects
are tests/upgrade/migration_domain.py's).

Exit codes: 0 nothing left, 1 more to do, 2 a migration failed or bad usage."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DOMAIN_DIR = Path(__file__).resolve().parent.parent / "upgrade"
sys.path.insert(0, str(DOMAIN_DIR))

from migration_domain import HOST_CURRENT, HOST_MIDDLE, HOST_OLDEST, Host, collections, seed  # noqa: E402

from rollsafe.rpc.fleet import SERVICES, Fleet  # noqa: E402
from rollsafe.storage import Store, open_backend  # noqa: E402

ROLLSAFE = Path(sys.executable).with_name("rollsafe")

SERVICE_MODULE = """\
import os

from migration_domain import Host, collections, reg
from rollsafe.upgrade import OnlineMigrations, ServiceDefinition

migrations = OnlineMigrations("hosts")
migrations.rewrite(Host)


@migrations.each(Host, name="zone-default", needs=lambda h: h.zone is None)
def zone_default(host):
    host.zone = "zone-a"
    host.applied += 1


if os.environ.get("MIGCLI_FAIL"):
    @migrations.each(Host, name="broken", needs=lambda h: True)
    def broken(host):
        raise RuntimeError("this migration is broken")

SERVICE = ServiceDefinition(name="hosts", registry=reg, collections=collections(),
                            migrations=migrations)
EMPTY = ServiceDefinition(name="empty", registry=reg, collections=collections())
NOT_A_SERVICE = 42
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/svc.db"
    return str(request.getfixturevalue("postgres_url"))


def open_store(url: str, storage_versions: dict[str, str] | None = None) -> Store:
    return Store(open_backend(url), [*collections(), SERVICES],
                 storage_versions=storage_versions)


@pytest.fixture
def store(url: str, tmp_path: Path) -> Any:
    """The service's store, its Host records dropped, with 12 hosts the
    old release (Host 1.0) wrote; and the service module in tmp_path."""
    (tmp_path / "migcli_service.py").write_text(SERVICE_MODULE, encoding="utf-8")
    store = open_store(url)
    store.backend.drop_all(store.collections[:1])
    store.ensure_schema()
    old = open_store(url, {"Host": HOST_OLDEST})
    seed(old, 12)
    old.close()
    yield store
    store.close()


def migrate(tmp_path: Path, url: str, *args: str, env: dict[str, str] | None = None,
            service: str = "migcli_service:SERVICE") -> subprocess.CompletedProcess[str]:
    """``rollsafe migrate --service SERVICE --url URL ARGS`` in tmp_path."""
    return subprocess.run(
        [str(ROLLSAFE), "migrate", "--service", service, "--url", url, *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "200",
             "PYTHONPATH": str(DOMAIN_DIR), **(env or {})})


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows: migration -> [found, done, remaining, errors]."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)[1:-1]]
        if len(cells) == 5 and cells[0] not in ("migration", ""):
            rows[cells[0]] = cells[1:]
    return rows


def state(store: Store) -> dict[int, tuple[str, int, str | None, int]]:
    """key -> (stored version, revision, zone, applied) of every host."""
    return {h.id: (h._rs_meta[1], h._rs_meta[0], h.zone, h.applied) for h in store.stream(Host)}


def test_a_run_migrates_everything_and_exits_0(store: Store, url: str, tmp_path: Path) -> None:
    done = migrate(tmp_path, url, "--batch-size", "5")

    assert done.returncode == 0, done.stderr
    assert table_rows(done.stdout) == {"rewrite-Host": ["12", "12", "0", ""],
                                       "zone-default": ["12", "12", "0", ""]}
    assert "nothing left to migrate" in done.stdout
    assert set(state(store).values()) == {(HOST_CURRENT, 3, "zone-a", 1)}

    again = migrate(tmp_path, url)
    assert again.returncode == 0, again.stderr
    assert table_rows(again.stdout) == {"rewrite-Host": ["0", "0", "0", ""],
                                        "zone-default": ["0", "0", "0", ""]}


def test_max_count_exits_1_and_a_second_run_finishes(store: Store, url: str,
                                                     tmp_path: Path) -> None:
    first = migrate(tmp_path, url, "--max-count", "5", "--batch-size", "2", "--json")

    assert first.returncode == 1, first.stderr
    report = json.loads(first.stdout)
    assert (report["exit_code"], report["limited"], report["done"]) == (1, True, 5)
    assert [(m["name"], m["found"], m["done"], m["remaining"], m["error"])
            for m in report["migrations"]] == [("rewrite-Host", 5, 5, 7, None),
                                               ("zone-default", 0, 0, 12, None)]

    second = migrate(tmp_path, url, "--json")
    assert second.returncode == 0, second.stderr
    assert [(m["done"], m["remaining"]) for m in json.loads(second.stdout)["migrations"]] == \
        [(7, 0), (12, 0)]
    assert {v[3] for v in state(store).values()} == {1}


def test_dry_run_counts_and_changes_nothing(store: Store, url: str, tmp_path: Path) -> None:
    before = state(store)

    table = migrate(tmp_path, url, "--dry-run")
    as_json = migrate(tmp_path, url, "--dry-run", "--json", "--only", "zone-default")

    assert table.returncode == 1, table.stderr
    assert table_rows(table.stdout) == {"rewrite-Host": ["12", "0", "12", ""],
                                        "zone-default": ["12", "0", "12", ""]}
    assert "dry run" in table.stdout
    assert as_json.returncode == 1, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["dry_run"] is True
    assert [(m["name"], m["found"], m["remaining"]) for m in report["migrations"]] == \
        [("zone-default", 12, 12)]
    assert state(store) == before


def test_a_failing_migration_exits_2_and_the_others_run(store: Store, url: str,
                                                        tmp_path: Path) -> None:
    done = migrate(tmp_path, url, env={"MIGCLI_FAIL": "1"})

    assert done.returncode == 2
    rows = table_rows(done.stdout)
    assert rows["rewrite-Host"] == ["12", "12", "0", ""]
    assert rows["zone-default"] == ["12", "12", "0", ""]
    assert rows["broken"][:3] == ["0", "0", "12"]
    assert "RuntimeError: this migration is broken" in rows["broken"][3]
    assert "Traceback" in done.stderr and "1 migration(s) failed" in done.stderr

    as_json = migrate(tmp_path, url, "--json", env={"MIGCLI_FAIL": "1"})
    assert as_json.returncode == 2
    broken = json.loads(as_json.stdout)["migrations"][2]
    assert broken["error"] == "RuntimeError: this migration is broken"


def test_the_fleet_pins_bound_the_version_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/pinned.db"
    (tmp_path / "migcli_service.py").write_text(SERVICE_MODULE, encoding="utf-8")
    store = open_store(url)
    store.ensure_schema()
    seed(open_store(url, {"Host": HOST_OLDEST}), 4)
    Fleet(store).join("hosts", "old-box", "r1", {"Host": HOST_MIDDLE})  # still running

    done = migrate(tmp_path, url, "--only", "rewrite-Host")

    assert done.returncode == 0, done.stderr
    assert {v[:2] for v in state(store).values()} == {(HOST_MIDDLE, 2)}
    store.close()


@pytest.mark.parametrize(("args", "message"), [
    (["--service", "migcli_service"], "expected MODULE:NAME"),
    (["--service", "no_such_module:SERVICE"], "importing 'no_such_module' failed"),
    (["--service", "migcli_service:MISSING"], "has no attribute 'MISSING'"),
    (["--service", "migcli_service:NOT_A_SERVICE"], "is a int, not a rollsafe"),
    (["--only", "nope"], "no migration 'nope'; it has rewrite-Host, zone-default"),
    (["--batch-size", "0"], "--batch-size"),
    (["--url", "ftp://nowhere"], "cannot open the store"),
])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "migcli_service.py").write_text(SERVICE_MODULE, encoding="utf-8")
    options = {"--service": "migcli_service:SERVICE", "--url": f"sqlite:///{tmp_path}/u.db"}
    extra = []
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in options:
            options[flag] = value
        else:
            extra += [flag, value]
    done = migrate(tmp_path, options["--url"], *extra, service=options["--service"])
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split()), done.stderr


def test_a_service_without_migrations_has_nothing_to_do(tmp_path: Path) -> None:
    (tmp_path / "migcli_service.py").write_text(SERVICE_MODULE, encoding="utf-8")
    done = migrate(tmp_path, f"sqlite:///{tmp_path}/e.db", service="migcli_service:EMPTY")
    assert done.returncode == 0, done.stderr
    assert "registers no online migrations" in done.stdout


def test_a_terminal_gets_a_progress_bar_per_migration(store: Store, url: str,
                                                      tmp_path: Path) -> None:
    done = migrate(tmp_path, url, "--batch-size", "5", env={"TTY_COMPATIBLE": "1"})
    assert done.returncode == 0, done.stderr
    for name in ("rewrite-Host", "zone-default"):
        assert name in done.stderr and "12/12" in done.stderr
