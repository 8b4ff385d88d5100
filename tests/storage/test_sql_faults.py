"""The SQL backend under faults: a writer killed with SIGKILL inside a unit
of work, concurrent read-modify-write from threads and from processes, and
a PostgreSQL restart while a store is in use. SQLite (a file) and
PostgreSQL.

Everything is bounded: subprocesses and threads have timeouts, PostgreSQL
sessions a lock and statement timeout, and a watchdog ends the run with
every thread's traceback if a test here hangs anyway.
"""

from __future__ import annotations

import faulthandler
import glob
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from rollsafe.errors import NotFoundError, RetryableStorageError
from rollsafe.storage import Store
from rollsafe.storage.store import revision_of

from .conftest import SQL_BACKENDS, STORAGE_TESTS, url_of
from .domain import App, Build, increment_counter, make_store, new_app

T = TypeVar("T")

#: No test here may take longer; past it the watchdog dumps every thread's
#: stack and ends the run (a hang must never stall CI silently).
TEST_BUDGET_SECONDS = 240
#: PostgreSQL sessions give up on a lock or a statement instead of waiting forever.
PG_BOUNDS = "connect_timeout=10&options=-c%20lock_timeout%3D20000%20-c%20statement_timeout%3D60000"


def bounded(url: str) -> str:
    """``url`` with connection, lock and statement timeouts for PostgreSQL."""
    if url.startswith("postgres"):
        return url + ("&" if "?" in url else "?") + PG_BOUNDS
    return url


@pytest.fixture(params=SQL_BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Overrides conftest.py's: SQLite (a file) and PostgreSQL only."""
    return bounded(url_of(request.param, request, tmp_path))


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(TEST_BUDGET_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line ``proc`` prints, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        pytest.fail(f"the subprocess printed nothing within {timeout}s")
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        stderr = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"the subprocess ended (exit {proc.returncode}) before printing:\n{stderr}")
    return line.strip()


def python(script: str, *args: str) -> subprocess.Popen[str]:
    """``python -c script args...`` with pipes, in its own process group."""
    return subprocess.Popen([sys.executable, "-c", script, str(STORAGE_TESTS), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def reap(proc: subprocess.Popen[str]) -> None:
    """Make sure a subprocess is gone (SIGKILL if it still runs)."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


# -- SIGKILL inside a unit of work -------------------------------------------

KILLED_WRITER = r"""
import sys, time, uuid
sys.path.insert(0, sys.argv[1])
from domain import App, Build, make_store, new_app
store = make_store(sys.argv[2])
with store.unit_of_work() as uow:
    created = [uow.create(new_app(name=f"doomed-{i}")) for i in range(5)]
    uow.create(Build(number=99, app_id=created[0].id))
    existing = uow.get(App, uuid.UUID(sys.argv[3]))
    existing.counter = 1_000_000
    uow.update(existing)
    print(" ".join(str(app.id) for app in created), flush=True)
    time.sleep(120)  # killed here, the unit still open
"""


def assert_killed_unit_left_nothing(store: Store, doomed: list[uuid.UUID],
                                    existing: uuid.UUID) -> App:
    """After KILLED_WRITER died: none of its creates exist, the record it
    updated is unchanged (counter 1, revision 1) and alone; returns it."""
    for key in doomed:
        with pytest.raises(NotFoundError):
            store.get(App, key)
    with pytest.raises(NotFoundError):
        store.get(Build, 99)
    stored = store.get(App, existing)
    assert stored.counter == 1 and revision_of(stored) == 1
    assert [a.id for a in store.query(App).items] == [existing]
    return stored


def test_a_writer_killed_inside_a_unit_of_work_leaves_nothing_written(
        store: Store, backend_url: str) -> None:
    existing = store.create(new_app(name="existing", counter=1))
    proc = python(KILLED_WRITER, backend_url, str(existing.id))
    try:
        doomed = [uuid.UUID(text) for text in read_line(proc, timeout=60).split()]
        assert len(doomed) == 5
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        reap(proc)

    stored = assert_killed_unit_left_nothing(store, doomed, existing.id)
    # and the store still works: the killed writer's locks are gone
    stored.counter = 2
    store.update(stored)
    fresh = store.create(new_app(name="after the kill"))
    assert store.get(App, fresh.id) == fresh
    assert store.get(App, existing.id).counter == 2


# -- concurrent read-modify-write ---------------------------------------------

INCREMENTS = 25


def check_no_lost_update(store: Store, key: uuid.UUID, results: list[dict[str, Any]],
                         expected_successes: int) -> None:
    others = [o for r in results for o in r["others"]]
    assert others == [], "failed attempts that were not ConflictError"
    done = sum(r["done"] for r in results)
    assert done == expected_successes, results
    revisions = sorted(rev for r in results for rev in r["revisions"])
    assert revisions == list(range(2, done + 2)), "two updates wrote the same revision"
    final = store.get(App, key)
    assert final.counter == done
    assert revision_of(final) == done + 1
    # the writers did overlap (each thinks between read and write), so the
    # retry path was exercised, not only the happy one
    assert sum(r["conflicts"] for r in results) > 0, results


def test_concurrent_increments_from_threads_lose_no_update(store: Store) -> None:
    app = store.create(new_app(counter=0))
    workers = 4
    results: list[dict[str, Any]] = [{} for _ in range(workers)]
    barrier = threading.Barrier(workers, timeout=30)

    def work(slot: int) -> None:
        barrier.wait()
        results[slot] = increment_counter(store, app.id, INCREMENTS, budget_seconds=90)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread did not finish in time"
    check_no_lost_update(store, app.id, results, workers * INCREMENTS)


INCREMENTING_PROCESS = r"""
import json, sys, uuid
sys.path.insert(0, sys.argv[1])
from domain import increment_counter, make_store
store = make_store(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()  # start together
result = increment_counter(store, uuid.UUID(sys.argv[3]), int(sys.argv[4]), budget_seconds=90)
store.backend.close()
print(json.dumps(result), flush=True)
"""


def test_concurrent_increments_from_processes_lose_no_update(store: Store,
                                                             backend_url: str) -> None:
    app = store.create(new_app(counter=0))
    procs = [python(INCREMENTING_PROCESS, backend_url, str(app.id), str(INCREMENTS))
             for _ in range(2)]
    try:
        for proc in procs:
            assert read_line(proc, timeout=60) == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [json.loads(read_line(proc, timeout=120)) for proc in procs]
        for proc in procs:
            assert proc.wait(timeout=30) == 0
    finally:
        for proc in procs:
            reap(proc)
    check_no_lost_update(store, app.id, results, 2 * INCREMENTS)


# -- PostgreSQL restart -------------------------------------------------------

def _postgres_bin() -> Path | None:
    """The newest PostgreSQL's bin folder, as scripts/servers picks it."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                   key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit()
                   else 0)
    if found and (Path(found[-1]) / "pg_ctl").exists():
        return Path(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PgCluster:
    """A PostgreSQL cluster this test may stop and start (pg_ctl)."""

    def __init__(self, bin_dir: Path, data: Path, url: str, owner: str) -> None:
        self.bin = bin_dir
        self.data = data
        self.url = url
        self.log = data.parent / "postgres.log"
        # pg_ctl refuses to run as root: run it as the cluster's owner
        self.prefix = ["runuser", "-u", owner, "--"] if os.geteuid() == 0 else []

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), *args, "-D",
                               str(self.data)], capture_output=True, text=True, timeout=90)

    def running(self) -> bool:
        return self._ctl("status").returncode == 0

    def stop(self) -> None:
        done = self._ctl("stop", "-m", "fast", "-w", "-t", "60")
        assert done.returncode == 0, f"pg_ctl stop failed: {done.stdout}{done.stderr}"

    def start(self) -> None:
        done = self._ctl("start", "-l", str(self.log), "-w", "-t", "60")
        assert done.returncode == 0, f"pg_ctl start failed: {done.stdout}{done.stderr}"


def _shared_cluster(url: str, bin_dir: Path) -> PgCluster | None:
    """The cluster scripts/servers started for ``url`` (DIR/postgres/data,
    found by the port in its postmaster.pid), if this process may run
    pg_ctl on it."""
    port = urlsplit(url).port
    roots = {tempfile.gettempdir(), "/tmp"}
    for root in sorted(roots):
        for pidfile in glob.glob(os.path.join(root, "*", "postgres", "data", "postmaster.pid")):
            try:
                lines = Path(pidfile).read_text().splitlines()
            except OSError:
                continue
            if len(lines) >= 4 and lines[3].strip() == str(port):
                data = Path(pidfile).parent
                owner = data.owner()
                if os.geteuid() != 0 and owner != _me():
                    return None
                return PgCluster(bin_dir, data, url, owner)
    return None


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _own_cluster(bin_dir: Path, base: Path) -> PgCluster:
    """A throwaway cluster on 127.0.0.1 in ``base``, made the way
    scripts/servers makes its own (trust auth, no Unix socket, no fsync)."""
    owner = "postgres" if os.geteuid() == 0 else _me()
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, owner)
    data = base / "data"
    prefix = ["runuser", "-u", owner, "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                    "-E", "UTF8", "--no-locale", "--auth-local=trust", "--auth-host=trust"],
                   check=True, capture_output=True, timeout=120)
    port = _free_port()
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                   "unix_socket_directories = ''\nfsync = off\n")
    cluster = PgCluster(bin_dir, data, f"postgresql://postgres@127.0.0.1:{port}/postgres",
                        owner)
    cluster.start()
    return cluster


@pytest.fixture
def pg_cluster(request: pytest.FixtureRequest) -> Iterator[PgCluster]:
    """The test PostgreSQL (scripts/servers') when this process can stop and
    start it, else a throwaway one; running again at the end either way."""
    url = str(request.getfixturevalue("postgres_url"))
    bin_dir = _postgres_bin()
    if bin_dir is None:
        message = "no PostgreSQL binaries (pg_ctl) to restart a server with"
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
            pytest.fail(message)
        pytest.skip(message)
    cluster = _shared_cluster(url, bin_dir)
    base: Path | None = None
    if cluster is None:
        base = Path(tempfile.mkdtemp(prefix="rollsafe-pg-"))
        cluster = _own_cluster(bin_dir, base)
    try:
        yield cluster
    finally:
        if not cluster.running():
            cluster.start()
        if base is not None:
            cluster.stop()
            shutil.rmtree(base, ignore_errors=True)


def once_or_retried(call: Callable[[], T]) -> T:
    """``call()``; if it raises RetryableStorageError, once more (any other
    error, or a second failure, fails the test)."""
    try:
        return call()
    except RetryableStorageError:
        time.sleep(0.2)
        return call()


def test_a_postgresql_restart_raises_only_retryable_errors_and_the_store_recovers(
        pg_cluster: PgCluster) -> None:
    store = make_store(bounded(pg_cluster.url))
    try:
        store.backend.drop_all(store.collections)
        store.ensure_schema()
        app = store.create(new_app(counter=0))
        with ExitStack() as stack:  # three pooled connections, all stale after the restart
            units = [stack.enter_context(store.unit_of_work()) for _ in range(3)]
            for unit in units:
                unit.get(App, app.id)

        # a unit of work open across the stop fails retryably and writes nothing
        pending = new_app(name="pending")
        with pytest.raises(RetryableStorageError), store.unit_of_work() as uow:
            uow.create(pending)
            pg_cluster.stop()
            uow.create(new_app(name="after the stop"))

        # while the server is down, every call fails retryably, at once
        copy_for_update = new_app()
        for call in (lambda: store.get(App, app.id), lambda: store.create(copy_for_update),
                     lambda: store.query(App), lambda: list(store.stream(App))):
            started = time.monotonic()
            with pytest.raises(RetryableStorageError):
                call()
            assert time.monotonic() - started < 15

        pg_cluster.start()
        # the next call succeeds, or fails retryably once and then succeeds
        back = once_or_retried(lambda: store.get(App, app.id))
        assert back == app
        back.counter = 1
        once_or_retried(lambda: store.update(back))
        assert once_or_retried(lambda: store.get(App, app.id)).counter == 1
        with pytest.raises(NotFoundError):
            once_or_retried(lambda: store.get(App, pending.id))
        created = once_or_retried(lambda: store.create(new_app(name="after the restart")))
        listed = once_or_retried(lambda: store.query(App)).items
        assert sorted(a.id for a in listed) == sorted([app.id, created.id])
    finally:
        store.backend.close()


def test_the_first_calls_of_a_new_store_from_many_threads_declare_each_table_once(
        tmp_path: Path) -> None:
    # A conductor restarted under load gets its first calls from many threads
    # at once: each must find the table, not race to declare it twice.
    from .domain import collections

    failures: list[BaseException] = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: a race shows at once
    try:
        _declare_from_threads(tmp_path, collections(), failures)
    finally:
        sys.setswitchinterval(switch)


def _declare_from_threads(tmp_path: Path, colls: list[Any],
                          failures: list[BaseException]) -> None:
    from rollsafe.storage import open_backend
    from rollsafe.storage.sql import SqlBackend

    def first_use(backend: SqlBackend, start: threading.Barrier, found: list[object]) -> None:
        try:
            start.wait(10)
            found.extend(backend.table_map(c).table for c in colls)
        except BaseException as exc:  # reported below
            failures.append(exc)

    for round_ in range(20):
        backend = open_backend(f"sqlite:///{tmp_path}/race-{round_}.db")
        assert isinstance(backend, SqlBackend)
        start = threading.Barrier(8)
        found: list[object] = []
        threads = [threading.Thread(target=first_use, args=(backend, start, found))
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        backend.close()
        assert not failures, failures[0]
        assert len({id(table) for table in found}) == len(colls)
