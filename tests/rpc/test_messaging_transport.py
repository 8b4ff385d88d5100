"""The oslo.messaging transport against a real RabbitMQ, and the transport
contract it shares with the in-process transport.

Tests taking the ``transport`` fixture run on both transports (the RabbitMQ
one needs ``ROLLSAFE_TEST_RABBIT_URL``: skipped without it locally, failed
without it under CI); the others are RabbitMQ only. Every wait is bounded,
and every topic is new, so runs sharing a broker never meet.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from rollsafe.errors import ConflictError
from rollsafe.rpc.inprocess import InProcessTransport
from rollsafe.rpc.transport import RemoteError, RpcError, RpcTimeoutError, Transport
from support import WAIT, wait_for

if TYPE_CHECKING:  # imported by the fixtures only: collecting imports no oslo.messaging
    from rollsafe.rpc.messaging import OsloMessagingTransport


def new_topic() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def oslo_transport(url: str, **options: Any) -> OsloMessagingTransport:
    from rollsafe.rpc.messaging import OsloMessagingTransport

    return OsloMessagingTransport(url, **options)


def joined(thread: threading.Thread, *, within: float = WAIT) -> None:
    thread.join(within)
    assert not thread.is_alive(), f"thread {thread.name} still running after {within} s"


@pytest.fixture(params=["inprocess", "rabbitmq"])
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    """Each transport in turn, closed after the test."""
    if request.param == "inprocess":
        made: Transport = InProcessTransport()
    else:
        made = oslo_transport(request.getfixturevalue("rabbit_url"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def rabbit(rabbit_url: str) -> Iterator[OsloMessagingTransport]:
    made = oslo_transport(rabbit_url)
    try:
        yield made
    finally:
        made.close()


def echo(message: dict[str, Any]) -> Any:
    return message


# --- the contract: both transports --------------------------------------------------


def test_call_returns_the_handlers_result(transport: Transport) -> None:
    topic = new_topic()
    transport.serve(topic, lambda message: {"sum": message["a"] + message["b"]})
    assert transport.call(topic, {"a": 2, "b": 3}, timeout=WAIT) == {"sum": 5}


def test_a_handlers_result_may_be_any_plain_value(transport: Transport) -> None:
    topic = new_topic()
    transport.serve(topic, lambda message: message["value"])
    for value in (None, 0, "text", [1, 2], True):
        assert transport.call(topic, {"value": value}, timeout=WAIT) == value


def test_a_handlers_exception_arrives_as_remote_error(transport: Transport) -> None:
    topic = new_topic()

    def fail(message: dict[str, Any]) -> Any:
        raise ValueError(f"bad size {message['size']}")

    transport.serve(topic, fail)
    with pytest.raises(RemoteError) as caught:
        transport.call(topic, {"size": -1}, timeout=WAIT)
    assert caught.value.exc_type == "ValueError"
    assert caught.value.remote_message == "bad size -1"
    assert caught.value.retryable is False


def test_a_conflict_in_the_handler_is_retryable_for_the_caller(transport: Transport) -> None:
    topic = new_topic()

    def conflict(message: dict[str, Any]) -> Any:
        raise ConflictError("stale revision")

    transport.serve(topic, conflict)
    with pytest.raises(RemoteError) as caught:
        transport.call(topic, {}, timeout=WAIT)
    assert (caught.value.exc_type, caught.value.retryable) == ("ConflictError", True)


def test_a_result_that_is_not_plain_data_is_a_remote_error(transport: Transport) -> None:
    topic = new_topic()
    transport.serve(topic, lambda message: {1, 2, 3})
    with pytest.raises(RemoteError) as caught:
        transport.call(topic, {}, timeout=WAIT)
    assert caught.value.exc_type == "RpcError"
    assert "not plain data" in caught.value.remote_message


def test_a_message_that_is_not_plain_data_is_refused_before_sending(
        transport: Transport) -> None:
    topic = new_topic()
    seen: list[Any] = []
    transport.serve(topic, seen.append)
    with pytest.raises(RpcError, match="not plain data"):
        transport.call(topic, {"when": object()}, timeout=WAIT)
    with pytest.raises(RpcError, match="not plain data"):
        transport.cast(topic, {"set": {1, 2}})
    assert transport.call(topic, {"after": True}, timeout=WAIT) is None
    assert seen == [{"after": True}]


def test_cast_is_delivered(transport: Transport) -> None:
    topic = new_topic()
    seen: list[dict[str, Any]] = []
    transport.serve(topic, seen.append)
    transport.cast(topic, {"event": "created", "id": 7})
    wait_for(lambda: len(seen) == 1, "the cast reaching the handler")
    assert seen == [{"event": "created", "id": 7}]


def test_a_call_nobody_serves_times_out_within_the_timeout(transport: Transport) -> None:
    started = time.monotonic()
    with pytest.raises(RpcTimeoutError):
        transport.call(new_topic(), {"ping": 1}, timeout=2)
    assert time.monotonic() - started < 2 + 1.0


def test_a_slow_handler_times_the_call_out(transport: Transport) -> None:
    topic = new_topic()
    release = threading.Event()
    transport.serve(topic, lambda message: release.wait(WAIT))
    try:
        started = time.monotonic()
        with pytest.raises(RpcTimeoutError, match="no reply"):
            transport.call(topic, {}, timeout=0.5)
        assert 0.5 <= time.monotonic() - started < 0.5 + 1.0
    finally:
        release.set()


def test_stop_finishes_the_call_in_flight_before_returning(transport: Transport) -> None:
    topic = new_topic()
    entered, release = threading.Event(), threading.Event()

    def slow(message: dict[str, Any]) -> Any:
        entered.set()
        assert release.wait(WAIT), "never released"
        return {"done": message["n"]}

    server = transport.serve(topic, slow)
    replies: list[Any] = []
    caller = threading.Thread(
        target=lambda: replies.append(transport.call(topic, {"n": 1}, timeout=WAIT)),
        name="caller")
    caller.start()
    assert entered.wait(WAIT), "the handler never started"

    stopper = threading.Thread(target=server.stop, name="stopper")
    stopper.start()
    time.sleep(0.3)
    assert stopper.is_alive(), "stop returned while a call was still running"
    release.set()
    joined(stopper)
    joined(caller)
    assert replies == [{"done": 1}]


def test_after_stop_nobody_answers_the_topic(transport: Transport) -> None:
    topic = new_topic()
    server = transport.serve(topic, echo)
    assert transport.call(topic, {"x": 1}, timeout=WAIT) == {"x": 1}
    server.stop()
    server.stop()  # a second stop is harmless
    with pytest.raises(RpcTimeoutError):
        transport.call(topic, {"x": 2}, timeout=1)


def test_concurrent_calls_each_get_their_own_reply(transport: Transport) -> None:
    topic = new_topic()

    def work(message: dict[str, Any]) -> Any:
        time.sleep(0.005)  # keep several in flight at once
        return {"thread": message["thread"], "i": message["i"], "square": message["i"] ** 2}

    transport.serve(topic, work)
    threads, calls = 8, 15
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def caller(number: int) -> None:
        try:
            results[number] = [transport.call(topic, {"thread": number, "i": i}, timeout=WAIT)
                               for i in range(calls)]
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=caller, args=(n,), name=f"caller-{n}")
               for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        joined(worker, within=30)
    assert errors == []
    assert results == {n: [{"thread": n, "i": i, "square": i * i} for i in range(calls)]
                       for n in range(threads)}


NESTED: dict[str, Any] = {
    "name": "Zoë — 東京 🚀",
    "escapes": "quote \" backslash \\ newline \n tab \t nul \u0000",
    "numbers": [0, -1, 2**53, -(2**63), 2**63 - 1, 1.5, -0.25, 1e-300],
    "flags": [True, False, None],
    "empty": {"list": [], "dict": {}, "text": ""},
    "deep": {"a": [{"b": [{"c": {"d": ["é", {"ключ": "значение"}]}}]}]},
    "unicode keys ✓": {"ñ": 1, "😀": [2, 3]},
}


def test_nested_unicode_messages_round_trip_exactly(transport: Transport) -> None:
    topic = new_topic()
    received: list[Any] = []

    def record(message: dict[str, Any]) -> Any:
        received.append(message)
        return {"echo": message}

    transport.serve(topic, record)
    assert transport.call(topic, NESTED, timeout=WAIT) == {"echo": NESTED}
    assert received == [NESTED]
    # equal, and of the same types all the way down (an int stays an int)
    assert repr(received[0]) == repr(NESTED)


def test_the_handler_gets_its_own_copy_of_the_message(transport: Transport) -> None:
    topic = new_topic()
    transport.serve(topic, lambda message: message.setdefault("list", []).append(9) or message)
    sent: dict[str, Any] = {"list": [1]}
    assert transport.call(topic, sent, timeout=WAIT) == {"list": [1, 9]}
    assert sent == {"list": [1]}


def test_close_stops_every_server(transport: Transport) -> None:
    topic = new_topic()
    transport.serve(topic, echo)
    assert transport.call(topic, {}, timeout=WAIT) == {}
    transport.close()
    transport.close()  # closing twice is harmless


# --- RabbitMQ only ------------------------------------------------------------------


def test_two_services_talk_through_the_broker(rabbit_url: str) -> None:
    """Server and caller on transports of their own, as in two processes."""
    service, client = oslo_transport(rabbit_url), oslo_transport(rabbit_url)
    try:
        topic = new_topic()
        service.serve(topic, lambda message: {"pong": message["ping"]})
        assert client.call(topic, {"ping": "ñ"}, timeout=WAIT) == {"pong": "ñ"}
    finally:
        client.close()
        service.close()


def test_servers_of_one_topic_share_its_messages(rabbit_url: str) -> None:
    first, second, client = (oslo_transport(rabbit_url) for _ in range(3))
    try:
        topic = new_topic()
        first.serve(topic, lambda message: "first")
        second.serve(topic, lambda message: "second")
        answers = {client.call(topic, {}, timeout=WAIT) for _ in range(20)}
        assert answers == {"first", "second"}  # the broker takes turns
    finally:
        for made in (client, second, first):
            made.close()


def test_transports_on_other_exchanges_do_not_meet(rabbit_url: str) -> None:
    topic = new_topic()
    mine = oslo_transport(rabbit_url, exchange=f"rollsafe-test-{uuid.uuid4().hex[:8]}")
    other = oslo_transport(rabbit_url, exchange=f"rollsafe-test-{uuid.uuid4().hex[:8]}")
    try:
        mine.serve(topic, echo)
        assert mine.call(topic, {"here": 1}, timeout=WAIT) == {"here": 1}
        with pytest.raises(RpcTimeoutError):
            other.call(topic, {"here": 2}, timeout=1)
    finally:
        other.close()
        mine.close()


def test_a_private_config_works_too(rabbit_url: str) -> None:
    """oslo.messaging registers its tracing options on the global CONF only:
    the transport registers them on a private ConfigOpts it is given."""
    from oslo_config import cfg

    private = cfg.ConfigOpts()
    made = oslo_transport(rabbit_url, conf=private)
    try:
        topic = new_topic()
        made.serve(topic, echo)
        assert made.call(topic, {"conf": "private"}, timeout=WAIT) == {"conf": "private"}
        assert private.oslo_messaging_tracing.tracing_enabled is False
    finally:
        made.close()


def test_a_closed_transport_refuses_work(rabbit: OsloMessagingTransport) -> None:
    rabbit.close()
    with pytest.raises(RpcError, match="closed"):
        rabbit.call(new_topic(), {}, timeout=1)
    with pytest.raises(RpcError, match="closed"):
        rabbit.cast(new_topic(), {})
    with pytest.raises(RpcError, match="closed"):
        rabbit.serve(new_topic(), echo)


def test_round_trip_time(rabbit: OsloMessagingTransport) -> None:
    """Not a benchmark: a guard against a call costing orders of magnitude
    more than the ~2 ms it takes on a local broker."""
    topic = new_topic()
    rabbit.serve(topic, echo)
    rabbit.call(topic, {}, timeout=WAIT)  # opens the reply queue
    count = 50
    started = time.monotonic()
    for i in range(count):
        rabbit.call(topic, {"i": i}, timeout=WAIT)
    assert (time.monotonic() - started) / count < 0.1


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_broker_is_a_timeout_with_a_clear_message() -> None:
    """No broker needed: nothing listens on the port. The call gives up at
    its timeout, cast after its one reconnection attempt, and close does not
    wait for the connection oslo.messaging keeps retrying."""
    port = closed_port()
    made = oslo_transport(f"rabbit://guest:s3cret@127.0.0.1:{port}/")
    try:
        started = time.monotonic()
        with pytest.raises(RpcTimeoutError) as caught:
            made.call("anything", {}, timeout=1.5)
        assert time.monotonic() - started < 1.5 + 1.0
        assert f"127.0.0.1:{port}" in str(caught.value)
        assert "s3cret" not in str(caught.value)

        started = time.monotonic()
        with pytest.raises(RpcTimeoutError, match="cannot reach the message broker"):
            made.cast("anything", {})
        assert time.monotonic() - started < WAIT
    finally:
        started = time.monotonic()
        made.close()
        assert time.monotonic() - started < 1.0


def test_a_broker_refusing_the_login_is_an_error(rabbit_url: str) -> None:
    user, _, rest = rabbit_url.partition("://")[2].partition("@")
    refused = oslo_transport(f"rabbit://{user.partition(':')[0]}:not-the-password@{rest}")
    try:
        with pytest.raises(RpcError, match="refused") as caught:
            refused.cast(new_topic(), {})
        assert "not-the-password" not in str(caught.value)
        started = time.monotonic()
        with pytest.raises(RpcTimeoutError, match="cannot reach the message broker"):
            refused.call(new_topic(), {}, timeout=1)
        assert time.monotonic() - started < 1 + 1.0
    finally:
        refused.close()


def test_an_unknown_executor_is_refused() -> None:
    with pytest.raises(ValueError, match="executor"):
        oslo_transport("rabbit://guest:guest@127.0.0.1:5672/", executor="gevent")
