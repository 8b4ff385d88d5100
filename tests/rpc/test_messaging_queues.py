"""The queues a server of the oslo.messaging transport leaves on RabbitMQ.

oslo.messaging declares, for each server, the topic's queue (``TOPIC``, shared
by the topic's servers), the server's own queue (``TOPIC.SERVER``) and a fanout
queue. Each ``serve`` has a server name of its own, so a server's own queue is
never used again once it stops: a graceful stop deletes it (unless a message
for that server is in it), while the topic's queue stays, keeping the calls
sent while no server runs for the next one. The queues are looked at directly
on the broker, with py-amqp. Needs ``ROLLSAFE_TEST_RABBIT_URL`` (skipped without
it locally, failed without it under CI). Every wait is bounded, and every
topic is new.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pytest

from support import WAIT, wait_for

if TYPE_CHECKING:  # imported by the tests only: collecting imports no oslo.messaging
    from oslo_config import cfg

    from rollsafe.rpc.messaging import OsloMessagingTransport


def new_topic() -> str:
    return f"test-queues-{uuid.uuid4().hex[:12]}"


def oslo_transport(url: str, **options: Any) -> OsloMessagingTransport:
    from rollsafe.rpc.messaging import OsloMessagingTransport

    return OsloMessagingTransport(url, **options)


class Broker:
    """Queues and exchanges seen directly on the broker (py-amqp, own connection)."""

    def __init__(self, url: str) -> None:
        import amqp  # type: ignore[import-untyped]

        parts = urlsplit(url)
        self._connection = amqp.Connection(
            host=f"{parts.hostname}:{parts.port}", userid=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            virtual_host=unquote(parts.path[1:]) or "/")
        self._connection.connect()

    def messages_in(self, queue: str) -> int | None:
        """The messages ready in ``queue``, None when there is no such queue
        (a passive declare: the broker refuses it with 404 NOT_FOUND)."""
        from amqp.exceptions import NotFound  # type: ignore[import-untyped]

        channel = self._connection.channel()
        try:
            return int(channel.queue_declare(queue, passive=True).message_count)
        except NotFound:
            return None
        finally:
            self._close(channel)

    def delete_queue(self, queue: str) -> None:
        channel = self._connection.channel()
        try:
            channel.queue_delete(queue)
        finally:
            self._close(channel)

    def delete_exchange(self, exchange: str) -> None:
        channel = self._connection.channel()
        try:
            channel.exchange_delete(exchange)
        finally:
            self._close(channel)

    def close(self) -> None:
        self._connection.close()

    @staticmethod
    def _close(channel: Any) -> None:
        with contextlib.suppress(Exception):  # closed by the broker already
            channel.close()


@pytest.fixture
def broker(rabbit_url: str) -> Iterator[Broker]:
    made = Broker(rabbit_url)
    try:
        yield made
    finally:
        made.close()


def answering_as(name: str) -> Callable[[dict[str, Any]], Any]:
    def answer(message: dict[str, Any]) -> Any:
        return {"by": name, "echo": message}
    return answer


def server_name(server: Any) -> str:
    """The name oslo.messaging knows the server ``serve`` returned by."""
    return str(server.name)


def own_queue(topic: str, server: Any) -> str:
    """The queue oslo.messaging declares for the server ``serve`` returned."""
    return f"{topic}.{server_name(server)}"


def test_a_stopped_server_deletes_its_own_queue_and_leaves_the_topics_queue(
        rabbit_url: str, broker: Broker) -> None:
    topic = new_topic()
    first = oslo_transport(rabbit_url)
    try:
        server = first.serve(topic, answering_as("first"))
        assert first.call(topic, {"n": 1}, timeout=WAIT) == {"by": "first", "echo": {"n": 1}}
        queue = own_queue(topic, server)
        assert broker.messages_in(queue) == 0  # the name is right: it is there while serving
        server.stop()
    finally:
        first.close()

    assert broker.messages_in(queue) is None, f"stopped server left its queue {queue}"
    assert broker.messages_in(topic) == 0, "the topic's queue must stay"

    # a call sent while no server runs waits in the topic's queue for the next one
    caller, second = oslo_transport(rabbit_url), oslo_transport(rabbit_url)
    replies: list[Any] = []
    calling = threading.Thread(
        target=lambda: replies.append(caller.call(topic, {"n": 2}, timeout=WAIT)),
        name="caller")
    try:
        calling.start()
        wait_for(lambda: broker.messages_in(topic) == 1, "the call waiting in the topic's queue")
        second.serve(topic, answering_as("second"))
        calling.join(WAIT)
        assert not calling.is_alive(), f"call not answered within {WAIT} s"
    finally:
        caller.close()
        second.close()
    assert replies == [{"by": "second", "echo": {"n": 2}}]


#: The steps of a stop after which a message sent to the server's own queue
#: comes too late for it: once its consumers are cancelled, and once it has
#: looked for its wake-up message, just before the queue is deleted.
LATE_STEPS = ("cancel_consumers", "_drop_wake_up")


def sending_late(monkeypatch: pytest.MonkeyPatch, broker: Broker, step: str,
                 send: Callable[[], object]) -> None:
    """Make each stopping server get ``send()`` (a message to its own queue)
    just after ``step`` of its stop, once the message is in the queue."""
    from rollsafe.rpc import amqp_handover

    original = getattr(amqp_handover.Handover, step)

    def step_then_send(handover: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(handover, *args, **kwargs)
        queue = handover._own.queue_name
        send()
        wait_for(lambda: broker.messages_in(queue) == 1, f"the late message in {queue}")
        return result

    monkeypatch.setattr(amqp_handover.Handover, step, step_then_send)


def test_a_wake_up_message_that_comes_late_does_not_keep_the_servers_queue(
        rabbit_url: str, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = new_topic()
    transport = oslo_transport(rabbit_url)
    try:
        server = transport.serve(topic, answering_as("server"))
        queue = own_queue(topic, server)
        sending_late(monkeypatch, broker, "cancel_consumers",
                     lambda: transport._wake_up(topic, server_name(server)))
        server.stop()
    finally:
        transport.close()

    assert broker.messages_in(queue) is None, f"stopped server left its queue {queue}"


@pytest.mark.parametrize("step", LATE_STEPS)
def test_a_message_directed_at_a_stopping_server_keeps_its_queue(
        rabbit_url: str, broker: Broker, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    topic = new_topic()
    transport = oslo_transport(rabbit_url)
    try:
        server = transport.serve(topic, answering_as("server"))
        queue = own_queue(topic, server)

        def cast_to_the_server() -> None:
            transport._client.prepare(topic=topic, server=server_name(server)).cast(
                {}, "handle", message={"for": "this server only"})

        sending_late(monkeypatch, broker, step, cast_to_the_server)
        server.stop()
    finally:
        transport.close()

    try:
        assert broker.messages_in(queue) == 1, "the message directed at the server was destroyed"
    finally:
        broker.delete_queue(queue)


def test_a_stopped_server_deletes_its_own_quorum_queue(rabbit_url: str, broker: Broker) -> None:
    """oslo.messaging's ``rabbit_quorum_queue`` makes the server's queue a
    quorum queue, whose deletion cannot be conditional (RabbitMQ refuses
    if-unused and if-empty on them with a connection error)."""
    from oslo_config import cfg

    conf: cfg.ConfigOpts = cfg.ConfigOpts()
    exchange = f"test-quorum-{uuid.uuid4().hex[:12]}"  # durable: other tests' is not
    topic = new_topic()
    queues = [topic]  # to delete at the end (quorum queues are durable)
    transport = oslo_transport(rabbit_url, exchange=exchange, conf=conf)
    conf.set_override("rabbit_quorum_queue", True, group="oslo_messaging_rabbit")
    try:
        server = transport.serve(topic, answering_as("server"))
        queues.append(own_queue(topic, server))
        assert transport.call(topic, {"n": 1}, timeout=WAIT) == {"by": "server", "echo": {"n": 1}}
        server.stop()
        # the listener's connection survived the deletion: its server stopped
        # cleanly, and the transport still serves and calls
        queues.append(own_queue(topic, transport.serve(topic, answering_as("next"))))
        assert transport.call(topic, {"n": 2}, timeout=WAIT) == {"by": "next", "echo": {"n": 2}}
    finally:
        transport.close()
    try:
        assert broker.messages_in(queues[1]) is None, f"stopped server left its queue {queues[1]}"
        assert broker.messages_in(queues[2]) is None, f"closed server left its queue {queues[2]}"
        assert broker.messages_in(topic) == 0, "the topic's queue must stay"
    finally:
        for leftover in queues:
            if broker.messages_in(leftover) is not None:
                broker.delete_queue(leftover)
        broker.delete_exchange(exchange)
