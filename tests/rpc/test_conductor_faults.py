"""The conductor under faults: killed and restarted mid-traffic with nothing
applied twice, a peer that never answers, a payload at a version nobody can
serve, and the request records that make retries safe.

The kill test runs the conductor in a process of its own over a real
RabbitMQ, on SQLite (a file) and PostgreSQL; the in-process transport gets
the same scenario with a conductor stopped and started again. Every wait is
bounded, and a watchdog ends the run with every thread's stack if a test
hangs anyway.
"""

from __future__ import annotations

import collections
import faulthandler
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rollsafe import Added, History, Registry, Version, VersionedObject, remotable_classmethod
from rollsafe import to_primitive as envelope_of
from rollsafe.rpc import (
    Conductor,
    InProcessTransport,
    RemoteError,
    RemoteIndirection,
    RetryableRpcError,
    RetryPolicy,
    RpcError,
    RpcRequest,
    RpcTimeoutError,
    Transport,
    current_unit,
    joined_unit,
    same_request_id,
)
from rollsafe.rpc.requests import purge_requests
from rollsafe.storage import Collection, Store, open_backend
from support import WAIT, FakeClock, wait_for

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `import ledger_domain`, as the conductor process does
    sys.path.insert(0, str(HERE))

from ledger_domain import (  # noqa: E402
    LEDGER,
    TOTAL,
    Entry,
    Tally,
    open_ledger,
    reset_ledger,
)

if TYPE_CHECKING:  # imported by the fixtures only: collecting imports no oslo.messaging
    from rollsafe.rpc.messaging import OsloMessagingTransport

#: No test here may take longer; past it the watchdog dumps every thread's
#: stack and ends the run (a hang must never stall CI silently).
TEST_BUDGET_SECONDS = 180
#: PostgreSQL sessions give up on a lock or a statement instead of waiting forever.
PG_BOUNDS = "connect_timeout=10&options=-c%20lock_timeout%3D20000%20-c%20statement_timeout%3D60000"


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(TEST_BUDGET_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def bounded(url: str) -> str:
    """``url`` with connection, lock and statement timeouts for PostgreSQL."""
    if url.startswith("postgres"):
        return url + ("&" if "?" in url else "?") + PG_BOUNDS
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, then the real PostgreSQL (skipped locally without it)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return bounded(str(request.getfixturevalue("postgres_url")))


@pytest.fixture
def ledger(store_url: str) -> Iterator[Store]:
    """An empty ledger with its Tally at 0."""
    store = open_ledger(store_url)
    reset_ledger(store)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Store]:
    """The ledger on a SQLite file (for what needs no second backend)."""
    store = open_ledger(f"sqlite:///{tmp_path}/ledger.db")
    reset_ledger(store)
    try:
        yield store
    finally:
        store.close()


def new_name(kind: str) -> str:
    return f"rpcfault-{kind}-{uuid.uuid4().hex[:12]}"


def oslo_transport(url: str, **options: Any) -> OsloMessagingTransport:
    from rollsafe.rpc.messaging import OsloMessagingTransport

    return OsloMessagingTransport(url, **options)


@pytest.fixture(params=["inprocess", "rabbitmq"])
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    """Each transport in turn (RabbitMQ on an exchange of its own), closed after."""
    if request.param == "inprocess":
        made: Transport = InProcessTransport()
    else:
        made = oslo_transport(request.getfixturevalue("rabbit_url"),
                              exchange=new_name("exchange"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def calls_go_to() -> Iterator[Callable[[RemoteIndirection], None]]:
    """Sets the ledger's indirection for one test, and clears it after."""
    yield lambda indirection: setattr(LEDGER, "indirection", indirection)
    LEDGER.indirection = None


def labels_in(store: Store) -> collections.Counter[str]:
    """How many entries the ledger holds per label."""
    return collections.Counter(entry.label for entry in store.stream(Entry))


def request_ids_in(store: Store) -> list[str]:
    return sorted(record.id for record in store.stream(RpcRequest))


def serving_conductor(transport: Transport, registry: Registry, store: Store) -> Conductor:
    """A started conductor on ``store``, with no purge thread to outlive the test."""
    return Conductor(transport, registry, store=store, purge_interval=None).start()


def class_call(method: str, *args: Any, request_id: str | None = None) -> dict[str, Any]:
    """The message RemoteIndirection sends for ``Tally.method(*args)``."""
    message: dict[str, Any] = {"op": "object_class_action", "class": "Tally",
                               "method": method, "args": list(args), "kwargs": {},
                               "manifest": LEDGER.manifest()}
    if request_id is not None:
        message["request_id"] = request_id
    return message


# --- traffic: clients calling Tally.record while the conductor goes away ---------


class Traffic:
    """``clients`` threads, each calling ``Tally.record`` ``calls`` times
    with labels of its own, sorting every outcome."""

    def __init__(self, clients: int, calls: int) -> None:
        self.labels = [f"c{c}-{i}" for c in range(clients) for i in range(calls)]
        self.lock = threading.Lock()
        self.succeeded: list[str] = []
        self.retryable: list[tuple[str, str]] = []  # (label, request id)
        self.other: list[tuple[str, BaseException]] = []
        self.threads = [threading.Thread(target=self._client, args=(c, calls), daemon=True,
                                         name=f"client-{c}") for c in range(clients)]

    def _client(self, client: int, calls: int) -> None:
        for i in range(calls):
            label = f"c{client}-{i}"
            try:
                Tally.record(label)
            except RetryableRpcError as exc:
                assert exc.request_id is not None
                with self.lock:
                    self.retryable.append((label, exc.request_id))
            except BaseException as exc:  # reported by check(), in the test's thread
                with self.lock:
                    self.other.append((label, exc))
            else:
                with self.lock:
                    self.succeeded.append(label)

    def start(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def done(self) -> int:
        with self.lock:
            return len(self.succeeded) + len(self.retryable) + len(self.other)

    def join(self, within: float) -> None:
        deadline = time.monotonic() + within
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
        alive = [t.name for t in self.threads if t.is_alive()]
        assert not alive, f"clients still calling after {within} s: {alive}"

    def send_failed_again(self) -> None:
        """The documented remedy for RetryableRpcError: the same call with the
        same request id. Every one must now succeed."""
        for label, request_id in self.retryable:
            with same_request_id(request_id):
                Tally.record(label)

    def check(self, store: Store) -> None:
        """Every call succeeded or failed retryably; each is in the store
        exactly once (the acknowledged ones included) and counted once."""
        assert self.other == [], f"calls failed with other errors: {self.other[:3]}"
        assert sorted(self.succeeded + [label for label, _ in self.retryable]) == \
            sorted(self.labels)
        stored = labels_in(store)
        twice = sorted(label for label, count in stored.items() if count > 1)
        assert twice == [], f"applied more than once: {twice[:10]}"
        assert set(stored) == set(self.labels)
        assert store.get(Tally, TOTAL).count == len(self.labels)
        assert len(request_ids_in(store)) == len(self.labels)


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line ``proc`` prints, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        pytest.fail(f"the conductor process printed nothing within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        stderr = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"the conductor process ended (exit {proc.returncode}):\n{stderr[-3000:]}")
    return line.strip()


def start_conductor(rabbit_url: str, store_url: str, exchange: str,
                    topic: str) -> subprocess.Popen[str]:
    """tests/rpc/ledger_conductor.py in its own process group, once ready."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "ledger_conductor.py"), rabbit_url, store_url, exchange,
         topic], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        assert read_line(proc, timeout=60) == "ready"
    except BaseException:
        reap(proc)
        raise
    return proc


def reap(proc: subprocess.Popen[str]) -> None:
    """Make sure a conductor process is gone (SIGKILL if it still runs)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_a_conductor_killed_mid_traffic_and_restarted_applies_each_call_once(
        ledger: Store, store_url: str, rabbit_url: str,
        calls_go_to: Callable[[RemoteIndirection], None]) -> None:
    exchange, topic = new_name("exchange"), new_name("conductor")
    first = start_conductor(rabbit_url, store_url, exchange, topic)
    processes = [first]
    client = oslo_transport(rabbit_url, exchange=exchange)
    try:
        calls_go_to(RemoteIndirection(client, LEDGER, topic=topic, timeout=2.0,
                                      retry=RetryPolicy(attempts=6, backoff=0.2,
                                                        max_backoff=1.0)))
        traffic = Traffic(clients=4, calls=50).start()
        wait_for(lambda: traffic.done() >= 60, "60 calls through the first conductor",
                 within=60)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL
        assert traffic.done() < len(traffic.labels), "the kill came after the traffic"
        second = start_conductor(rabbit_url, store_url, exchange, topic)
        processes.append(second)
        traffic.join(within=120)
        traffic.send_failed_again()

        assert second.stdin is not None
        second.stdin.close()  # stops cleanly: nothing in flight is cut
        assert read_line(second, timeout=60) == "stopped"
        second.wait(timeout=30)
    finally:
        client.close()
        for proc in processes:
            reap(proc)
    traffic.check(ledger)


def test_an_inprocess_conductor_stopped_and_started_again_applies_each_call_once(
        sqlite_ledger: Store, calls_go_to: Callable[[RemoteIndirection], None]) -> None:
    transport = InProcessTransport()
    try:
        first = serving_conductor(transport, LEDGER, sqlite_ledger)
        calls_go_to(RemoteIndirection(transport, LEDGER, timeout=5.0,
                                      retry=RetryPolicy(attempts=8, backoff=0.05,
                                                        max_backoff=0.5)))
        traffic = Traffic(clients=4, calls=25).start()
        wait_for(lambda: traffic.done() >= 30, "30 calls through the first conductor")
        first.stop()  # the calls in flight finish; later ones find nobody
        time.sleep(0.2)  # a downtime the clients' retries have to bridge
        serving_conductor(transport, LEDGER, sqlite_ledger)
        traffic.join(within=60)
        traffic.send_failed_again()
    finally:
        transport.close()
    traffic.check(sqlite_ledger)


# --- request records: each request id runs once ----------------------------------


def test_a_repeated_request_gets_the_recorded_reply_and_runs_once(ledger: Store) -> None:
    conductor = Conductor(InProcessTransport(), LEDGER, store=ledger)
    first = conductor.handle(class_call("record", "a", request_id="req-1"))
    again = conductor.handle(class_call("record", "a", request_id="req-1"))
    other = conductor.handle(class_call("record", "b", request_id="req-2"))
    assert first == again == {"result": 1}
    assert other == {"result": 2}
    assert labels_in(ledger) == {"a": 1, "b": 1}
    assert request_ids_in(ledger) == ["req-1", "req-2"]


def test_a_call_without_a_request_id_runs_each_time_it_arrives(sqlite_ledger: Store) -> None:
    """Callers from before request ids: at least once, as before."""
    conductor = Conductor(InProcessTransport(), LEDGER, store=sqlite_ledger)
    conductor.handle(class_call("record", "a"))
    conductor.handle(class_call("record", "a"))
    assert labels_in(sqlite_ledger) == {"a": 2}
    assert request_ids_in(sqlite_ledger) == []


def test_a_failed_call_leaves_nothing_and_runs_again_when_sent_again(ledger: Store) -> None:
    conductor = Conductor(InProcessTransport(), LEDGER, store=ledger)
    for _ in range(2):
        with pytest.raises(ValueError, match="x is refused"):
            conductor.handle(class_call("refuse", "x", request_id="req-x"))
    assert labels_in(ledger) == {}  # the entry written before the error is gone
    assert request_ids_in(ledger) == []


def test_duplicates_arriving_together_are_applied_once(ledger: Store) -> None:
    """Several deliveries of one request at once (a retry while the first
    attempt still runs): one applies it, the others reply what it recorded."""
    conductor = Conductor(InProcessTransport(), LEDGER, store=ledger)
    copies = 6
    barrier = threading.Barrier(copies, timeout=WAIT)
    replies: list[Any] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        barrier.wait()
        try:
            replies.append(conductor.handle(class_call("record", "once", request_id="dup")))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=deliver, daemon=True) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert replies == [{"result": 1}] * copies
    assert labels_in(ledger) == {"once": 1}
    assert ledger.get(Tally, TOTAL).count == 1


class ReplyLost(Transport):
    """The in-process transport, except that the replies of the first
    ``lose`` calls are lost after the handler ran: a conductor killed after
    its commit, or a reply queue gone, as the caller sees it."""

    def __init__(self, inner: InProcessTransport, lose: int) -> None:
        self.inner = inner
        self.lose = lose
        self.sent: list[dict[str, Any]] = []

    def serve(self, topic: str, handler: Any) -> Any:
        return self.inner.serve(topic, handler)

    def call(self, topic: str, message: dict[str, Any], *, timeout: float) -> Any:
        self.sent.append(message)
        reply = self.inner.call(topic, message, timeout=timeout)
        if self.lose > 0:
            self.lose -= 1
            raise RpcTimeoutError(f"no reply from {topic!r} within {timeout} s")
        return reply

    def cast(self, topic: str, message: dict[str, Any]) -> None:
        self.inner.cast(topic, message)

    def close(self) -> None:
        self.inner.close()


def test_a_call_whose_reply_was_lost_is_sent_again_and_applied_once(
        sqlite_ledger: Store, calls_go_to: Callable[[RemoteIndirection], None]) -> None:
    transport = ReplyLost(InProcessTransport(), lose=2)
    try:
        serving_conductor(transport, LEDGER, sqlite_ledger)
        calls_go_to(RemoteIndirection(transport, LEDGER, timeout=5.0,
                                      retry=RetryPolicy(attempts=3, backoff=0.0)))
        assert Tally.record("lost twice") == 1  # the recorded reply of the first run
        assert Tally.record("next") == 2
    finally:
        transport.close()
    assert labels_in(sqlite_ledger) == {"lost twice": 1, "next": 1}
    ids = [message["request_id"] for message in transport.sent]
    assert len(ids) == 4 and ids[0] == ids[1] == ids[2] != ids[3]


def test_after_every_attempt_fails_the_error_says_retry_with_the_same_id(
        sqlite_ledger: Store, calls_go_to: Callable[[RemoteIndirection], None]) -> None:
    transport = InProcessTransport()
    try:
        calls_go_to(RemoteIndirection(transport, LEDGER, timeout=1.0,
                                      retry=RetryPolicy(attempts=3, backoff=0.01)))
        with pytest.raises(RetryableRpcError) as caught:
            Tally.record("while down")  # no conductor yet
        failure = caught.value
        assert failure.retryable and failure.attempts == 3
        assert isinstance(failure.__cause__, RpcTimeoutError)
        assert "Tally.record" in str(failure) and "may or may not have run" in str(failure)
        assert "same_request_id" in str(failure)
        assert failure.request_id is not None

        serving_conductor(transport, LEDGER, sqlite_ledger)
        with same_request_id(failure.request_id):
            assert Tally.record("while down") == 1
            assert Tally.record("later") == 2  # only the next call takes the id
        with same_request_id(failure.request_id):
            assert Tally.record("while down") == 1  # recorded: not applied again
    finally:
        transport.close()
    assert labels_in(sqlite_ledger) == {"while down": 1, "later": 1}
    assert failure.request_id in request_ids_in(sqlite_ledger)


def test_a_remote_error_that_is_not_retryable_is_raised_at_once(
        sqlite_ledger: Store, calls_go_to: Callable[[RemoteIndirection], None]) -> None:
    transport = ReplyLost(InProcessTransport(), lose=0)
    try:
        serving_conductor(transport, LEDGER, sqlite_ledger)
        calls_go_to(RemoteIndirection(transport, LEDGER, timeout=5.0,
                                      retry=RetryPolicy(attempts=5, backoff=0.0)))
        with pytest.raises(RemoteError, match="refused") as caught:
            Tally.refuse("x")
        assert caught.value.retryable is False
    finally:
        transport.close()
    assert len(transport.sent) == 1


def test_a_retry_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(backoff=-1.0)
    with pytest.raises(ValueError, match="request id"), same_request_id(""):
        pass


def test_a_malformed_request_id_is_refused(sqlite_ledger: Store) -> None:
    conductor = Conductor(InProcessTransport(), LEDGER, store=sqlite_ledger)
    message = class_call("record", "a")
    message["request_id"] = 42
    with pytest.raises(RpcError, match="request id"):
        conductor.handle(message)
    assert labels_in(sqlite_ledger) == {}


def test_a_conductor_store_without_request_records_is_refused_at_once(
        tmp_path: Path) -> None:
    from rollsafe.errors import DefinitionError

    store = Store(open_backend(f"sqlite:///{tmp_path}/bare.db"), [])
    with pytest.raises(DefinitionError, match=r"add rollsafe\.rpc\.RPC_REQUESTS"):
        Conductor(InProcessTransport(), LEDGER, store=store)


# --- the unit of work a remote method writes through -------------------------------

notes = Registry("notes")
NOTE_STORES: list[Store] = []  # the store Note.write uses when it runs locally


class Note(VersionedObject, registry=notes):
    id: str
    text: str

    @remotable_classmethod
    def write(cls, key: str, text: str, fail: bool = False) -> str:
        with joined_unit(NOTE_STORES[-1]) as unit:
            unit.create(cls(id=key, text=text))
        if fail:
            raise ValueError(f"{key} written, then failed")
        return key


NOTES = Collection(Note, key="id", name="rpcfault_notes")
NOTE_REQUESTS = Collection(RpcRequest, key="id", indexes=["created_at"],
                           name="rpcfault_note_requests")


@pytest.fixture
def note_store(tmp_path: Path) -> Iterator[Store]:
    store = Store(open_backend(f"sqlite:///{tmp_path}/notes.db"), [NOTES, NOTE_REQUESTS])
    store.ensure_schema()
    NOTE_STORES.append(store)
    try:
        yield store
    finally:
        NOTE_STORES.remove(store)
        notes.indirection = None
        store.close()


def test_joined_unit_joins_the_calls_unit_remotely_and_opens_its_own_locally(
        note_store: Store) -> None:
    # locally: a unit of its own, committed when its block ends
    assert Note.write("local", "no conductor") == "local"
    with pytest.raises(ValueError, match="written, then failed"):
        Note.write("local-failed", "no conductor", fail=True)
    transport = InProcessTransport()
    try:
        serving_conductor(transport, notes, note_store)
        notes.indirection = RemoteIndirection(transport, notes, timeout=5.0)
        assert Note.write("remote", "through the conductor") == "remote"
        # remotely: the call's unit, so the note goes when the call fails
        with pytest.raises(RemoteError, match="written, then failed"):
            Note.write("remote-failed", "through the conductor", fail=True)
    finally:
        transport.close()
    assert sorted(note.id for note in note_store.stream(Note)) == [
        "local", "local-failed", "remote"]
    assert len(list(note_store.stream(RpcRequest))) == 1


def test_current_unit_outside_a_conductor_call_is_a_clear_error() -> None:
    with pytest.raises(RpcError, match="current_unit\\(\\) works in remotable methods"):
        current_unit()


# --- old request records expire -------------------------------------------------------


def test_request_records_older_than_their_ttl_are_purged_in_batches(ledger: Store) -> None:
    clock = FakeClock()
    conductor = Conductor(InProcessTransport(), LEDGER, store=ledger, request_ttl=60,
                          purge_interval=None, clock=clock)
    for n in range(5):
        conductor.handle(class_call("record", f"old-{n}", request_id=f"old-{n}"))
    clock.advance(30)
    conductor.handle(class_call("record", "young", request_id="young"))
    clock.advance(31)  # the old ones are 61 s old, the young one 31 s

    assert conductor.purge_requests(batch=2) == 5
    assert request_ids_in(ledger) == ["young"]
    assert conductor.purge_requests() == 0
    # the effects stay; only the memory of the request ids goes
    assert ledger.get(Tally, TOTAL).count == 6
    with pytest.raises(ValueError, match="batch"):
        purge_requests(ledger, before=clock.now, batch=0)


def test_a_started_conductor_purges_by_itself(sqlite_ledger: Store) -> None:
    clock = FakeClock()
    conductor = Conductor(InProcessTransport(), LEDGER, store=sqlite_ledger, request_ttl=60,
                          purge_interval=0.05, clock=clock)
    conductor.handle(class_call("record", "a", request_id="req-a"))
    assert request_ids_in(sqlite_ledger) == ["req-a"]
    clock.advance(61)
    conductor.start()
    try:
        wait_for(lambda: request_ids_in(sqlite_ledger) == [], "the purge thread's first round")
    finally:
        conductor.stop()


# --- a peer that never answers, a conductor gone ------------------------------------


def test_a_peer_that_never_answers_ends_in_a_timeout(
        transport: Transport, calls_go_to: Callable[[RemoteIndirection], None]) -> None:
    topic = new_name("silent")
    release = threading.Event()
    transport.serve(topic, lambda message: release.wait(WAIT))
    try:
        calls_go_to(RemoteIndirection(transport, LEDGER, topic=topic, timeout=0.5,
                                      retry=RetryPolicy(attempts=2, backoff=0.0)))
        with pytest.raises(RetryableRpcError) as caught:
            Tally.record("unanswered")
        assert isinstance(caught.value.__cause__, RpcTimeoutError)
        assert "no reply" in str(caught.value)
    finally:
        release.set()


def test_a_conductor_gone_looks_the_same_on_every_transport(
        transport: Transport, calls_go_to: Callable[[RemoteIndirection], None]) -> None:
    """Stopped, it answers nothing: a retryable RpcTimeoutError on each
    transport, and a RetryableRpcError once the indirection gives up."""
    topic = new_name("conductor")
    conductor = Conductor(transport, LEDGER, topic=topic).start()
    conductor.stop()
    with pytest.raises(RpcTimeoutError) as direct:
        transport.call(topic, class_call("record", "x", request_id="r"), timeout=1.0)
    assert direct.value.retryable
    calls_go_to(RemoteIndirection(transport, LEDGER, topic=topic, timeout=1.0,
                                  retry=RetryPolicy(attempts=2, backoff=0.0)))
    with pytest.raises(RetryableRpcError) as caught:
        Tally.record("x")
    assert isinstance(caught.value.__cause__, RpcTimeoutError)


# --- payloads at versions nobody can serve --------------------------------------------

old_parts = Registry("parts")
new_parts = Registry("parts")


class Part(VersionedObject, registry=old_parts):
    """Part as release N knows it: 1.0 only."""

    name: str


OldPart = Part


class Part(VersionedObject, registry=new_parts):  # type: ignore[no-redef]
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Parts have a weight", Added("weight")))
    name: str
    weight: int = 0

    @remotable_classmethod
    def echo(cls, part: Part) -> Part:
        return part


NewPart = Part


def far_future_part() -> dict[str, Any]:
    """A Part envelope at a version no release here knows."""
    envelope = envelope_of(NewPart(name="p", weight=3))
    envelope["versioned_object.version"] = "7.0"
    return envelope


@pytest.fixture
def part_calls() -> Iterator[None]:
    yield
    old_parts.indirection = None
    new_parts.indirection = None


def test_a_version_the_conductor_does_not_know_is_a_clear_remote_error(
        transport: Transport, part_calls: None) -> None:
    """The conductor is the newest service: nobody it could ask knows more."""
    topic = new_name("conductor")
    Conductor(transport, new_parts, topic=topic).start()
    message = {"op": "object_class_action", "class": "Part", "method": "echo",
               "args": [far_future_part()], "kwargs": {}, "manifest": old_parts.manifest(),
               "request_id": "r"}
    with pytest.raises(RemoteError) as caught:
        transport.call(topic, message, timeout=WAIT)
    assert caught.value.exc_type == "PayloadVersionError"
    assert caught.value.retryable is False
    assert "Part" in caught.value.remote_message and "7.0" in caught.value.remote_message


def test_a_version_too_new_with_no_conductor_to_backport_it_is_a_clear_error(
        transport: Transport, part_calls: None) -> None:
    topic = new_name("conductor")
    old_parts.indirection = RemoteIndirection(transport, old_parts, topic=topic, timeout=0.5,
                                              retry=RetryPolicy(attempts=2, backoff=0.0))
    serializer = old_parts.indirection.serializer
    with pytest.raises(RetryableRpcError) as caught:
        serializer.deserialize(envelope_of(NewPart(name="p", weight=3)))  # 1.1: too new
    assert "backport of Part 1.1" in str(caught.value)


def test_a_backport_that_comes_back_still_too_new_ends_without_a_loop(
        transport: Transport, part_calls: None) -> None:
    """A peer that answers a backport request with the same version (an older
    or broken one): one request, then a clear error, never a second round."""
    topic = new_name("conductor")
    asked: list[dict[str, Any]] = []

    def unhelpful(message: dict[str, Any]) -> Any:
        asked.append(message)
        return message["object"]

    transport.serve(topic, unhelpful)
    old_parts.indirection = RemoteIndirection(transport, old_parts, topic=topic, timeout=WAIT)
    with pytest.raises(RpcError, match="no peer can serve this version"):
        old_parts.indirection.serializer.deserialize(
            envelope_of(NewPart(name="p", weight=3)))
    assert [message["op"] for message in asked] == ["object_backport"]
