"""kill -9 in the middle of a migration batch loses and duplicates nothing.

A subprocess runs a slow per-record migration (tests/upgrade/
migration_domain.py: ``slow_migrations``) in batches of 10 on a SQLite file
and on a real PostgreSQL; each record it changes is appended to a marker
file before the batch commits. Once the marker shows the second batch half
done, the process gets SIGKILL. Then the committed batches are whole, the
batch in flight left nothing behind, and a second run finishes the job with
every record migrated exactly once (``Host.applied == 1``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

DOMAIN_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(DOMAIN_DIR))

from migration_domain import Host, make_store, seed, slow_migrations  # noqa: E402

RECORDS, BATCH = 40, 10

RUNNER = """
import sys
sys.path.insert(0, sys.argv[2])
from migration_domain import make_store, slow_migrations
store = make_store(sys.argv[1])
slow_migrations(0.05).run(store, batch_size=10)
raise SystemExit("the run finished before it was killed")
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/kill.db"
    return str(request.getfixturevalue("postgres_url"))


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen[str],
                   timeout: float = 60.0) -> None:
    """Until ``path`` has ``count`` lines (bounded; fails if the runner died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"the runner exited early: {proc.communicate()}")
        time.sleep(0.01)
    pytest.fail(f"the runner did not reach {count} records in {timeout}s")


def test_kill_9_mid_batch_then_rerun_migrates_each_record_exactly_once(
        url: str, tmp_path: Path) -> None:
    store = make_store(url)
    store.backend.drop_all(store.collections)
    store.ensure_schema()
    seed(store, RECORDS)
    marker = tmp_path / "applied.txt"

    proc = subprocess.Popen([sys.executable, "-c", RUNNER, url, str(DOMAIN_DIR)],
                            env={**os.environ, "MIGTEST_MARKER": str(marker)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lines(marker, BATCH + BATCH // 2, proc)  # the second batch half done
    finally:
        proc.kill()  # SIGKILL
        proc.communicate(timeout=30)
    assert proc.returncode == -9

    hosts = {h.id: h for h in store.stream(Host)}
    assert sorted(hosts) == list(range(1, RECORDS + 1))  # nothing lost
    migrated = sorted(k for k, h in hosts.items() if h.applied)
    assert {h.applied for h in hosts.values()} <= {0, 1}
    assert len(migrated) % BATCH == 0 and BATCH <= len(migrated) < RECORDS  # whole batches
    assert migrated == list(range(1, len(migrated) + 1))  # in key order, the first ones
    assert all(hosts[k].zone == "zone-a" for k in migrated)
    applied_before = len(marker.read_text().splitlines())
    assert applied_before > len(migrated)  # the batch in flight was under way, and is gone

    report = slow_migrations(0.0).run(store, batch_size=BATCH)

    assert (report.results[0].done, report.results[0].remaining) == \
        (RECORDS - len(migrated), 0)
    hosts = {h.id: h for h in store.stream(Host)}
    assert sorted(hosts) == list(range(1, RECORDS + 1))
    assert {(h.zone, h.applied) for h in hosts.values()} == {("zone-a", 1)}  # exactly once
    assert {h.name for h in hosts.values()} == {f"host-{k}" for k in range(1, RECORDS + 1)}
    store.close()
