"""How a server of :class:`~rollsafe.rpc.messaging.OsloMessagingTransport`
stops: it hands its topic over without losing a call, and leaves no queue
of its own behind. This reaches into oslo.messaging's RabbitMQ driver (its
listener's connection and consumers, and kombu's queues under them); a
driver of another shape is stopped the plain way, with a warning.

Losing no call
    oslo.messaging alone loses calls here. Its RPC server acknowledges each
    request the moment the driver reads it off the socket, before
    dispatching it (``RpcAMQPListener.__call__``, so that a failed ack is
    never processed), and keeps it in a list that the listener's thread
    polls. ``RPCServer.stop`` ends that thread but does not cancel the
    consumers, and the prefetch is unlimited (``rabbit_qos_prefetch_count``
    is 0): while ``wait`` lets the handlers finish, RabbitMQ keeps sending
    this server its turn of the topic's calls. Whoever reads the socket next
    acknowledges them into a list that nobody polls any more: the heartbeat
    thread (it drains the connection now and then), or ``cleanup`` when it
    deletes the fanout queue (a synchronous ``queue.delete`` reads every
    delivery queued before its reply). Each such call is gone from the
    broker and never answered: its caller waits for its timeout. Only what
    comes after that is ignored while the channel closes, and requeued by
    the broker when it is closed; py-amqp's warning
    "Received method (60, 30) during closing channel" is one such frame, the
    broker's ``basic.cancel`` of the consumer whose fanout queue was just
    deleted.
    A prefetch count would only bound how many calls are lost, since a
    request is acknowledged as soon as it is read.

    So ``stop`` first points the listener's consumers at a callback that
    puts every later delivery straight back on its queue (``basic.reject``
    with requeue; the wake-up message described below is dropped instead),
    then stops oslo.messaging's server, whose thread dispatches what it had
    already acknowledged, then cancels the consumers while nothing else
    reads the connection: until the broker confirms a cancel, the
    deliveries still on their way are requeued as they are read, and after
    it none come. Every call delivered to a stopping server is answered or
    requeued at once for the others, never left to its timeout. This reaches
    into oslo.messaging's RabbitMQ driver (its listener's connection and
    consumers); a driver of another shape is stopped the plain way, with a
    warning.

    An idle listener sits in a socket read of up to 5 s between two looks
    at its stop flag: ``stop`` ends that read with a wake-up message to the
    server's own queue.

Queues left on the broker
    oslo.messaging's RabbitMQ driver declares three queues for each server:
    the topic's queue ``TOPIC`` (shared by its servers), the server's own
    queue ``TOPIC.SERVER`` (for messages directed at that server) and a
    fanout queue. With the default ``amqp_auto_delete=False`` the first two
    outlive every consumer; the driver deletes the fanout queue when the
    server stops (and declares it with ``x-expires``,
    ``rabbit_transient_queues_ttl``: 30 min by default). Since every
    ``serve`` has a server name of its own, nothing reads a server's own
    queue once that server stops: left there, each service restart would
    add one more queue to the broker, for good.

    So once the consumers are cancelled, ``stop`` deletes the server's own
    queue (on a channel of its own, before its handlers finish, which need
    no queue to reply). Only an empty and unused queue is deleted
    (``if-unused``, ``if-empty``), so a message directed at the stopping
    server just then is not destroyed silently: the queue is kept with it,
    and a warning names it. rollsafe itself directs only the wake-up
    message at a server's own queue: it is dropped if found there (and
    waited for, up to a second, if it was sent but not read yet). A quorum
    queue (``rabbit_quorum_queue``) refuses those conditions with an error
    that closes the connection: it is looked at (a passive declare), then
    deleted when it is empty and unused (a message directed at the server
    between the two is lost with it). The topic's queue is never
    deleted: the calls sent while no server runs wait there for the next
    one (a restart relies on it; so leave ``amqp_auto_delete`` off, which
    would make RabbitMQ delete that queue along with its last consumer).

    A server that cannot stop gracefully (killed with SIGKILL, its host
    gone, or its connection broken at stop) leaves its own queue behind,
    empty but for messages directed at it, with no expiry: oslo.messaging
    declares it with no ``x-expires``, and it cannot be given one from here
    (a queue declared again with other arguments is refused with
    ``PRECONDITION_FAILED``, and the driver declares it again on every
    reconnection). A broker policy can expire such queues, since a policy
    is no declaration argument: for instance ``rabbitmqctl set_policy
    --apply-to queues rollsafe-servers '\\.[0-9]+\\.[0-9a-f]{12}$'
    '{"expires": 3600000}'`` (a server's name ends with its pid and 12 hex
    digits) deletes a server's queue an hour after its last consumer went;
    mind that a queue follows only one policy, the highest priority one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from amqp.exceptions import NotFound, PreconditionFailed  # type: ignore[import-untyped]

__all__ = ["WAKE_UP", "WAKE_UP_WAIT", "Handover"]

_LOG = logging.getLogger(__name__)

#: The context key of the message that wakes a stopping server up.
WAKE_UP = "rollsafe_wake_up"

#: Seconds a stopped server waits for its wake-up message to reach its own
#: queue before deleting it, when the message was sent but not read.
WAKE_UP_WAIT = 1.0


class Handover:
    """The consumers of one server's listener (oslo.messaging's RabbitMQ
    driver), made to give their deliveries back at stop, and the server's
    own queue, deleted then: see the module's documentation."""

    def __init__(self, connection: Any, consumers: dict[Any, Any], own: Any) -> None:
        self._connection = connection
        self._consumers = consumers
        self._own = own  # the consumer of the server's own queue, or None
        self._woken = threading.Event()  # the wake-up message was read

    @classmethod
    def of(cls, rpc_server: Any, *, own_queue: str) -> Handover | None:
        """The handover of a started ``rpc_server`` whose own queue is named
        ``own_queue``, or None when its listener is not the RabbitMQ driver's
        (``AMQPListener`` polled by an adapter)."""
        adapter = getattr(rpc_server, "listener", None)
        listener = getattr(adapter, "_poll_style_listener", None)
        connection = getattr(listener, "conn", None)
        consumers = getattr(connection, "_consumers", None)
        if (not isinstance(consumers, dict) or not consumers
                or not hasattr(connection, "_connection_lock")
                or not all(hasattr(consumer, "callback") and hasattr(consumer, "cancel")
                           for consumer in consumers)):
            return None
        own = next((consumer for consumer in consumers
                    if getattr(consumer, "queue_name", None) == own_queue
                    and hasattr(consumer, "queue")), None)
        return cls(connection, consumers, own)

    def requeue_deliveries(self) -> None:
        """From now on, whichever thread reads a delivery puts it back on its
        queue instead of acknowledging it for a listener about to stop."""
        for consumer in self._consumers:
            consumer.callback = self._give_back

    def cancel_consumers(self) -> bool:
        """Cancel every consumer, once the listener's thread has stopped: each
        cancel reads (and so requeues) the deliveries sent before the broker
        confirms it, and none comes after. A broken connection needs none:
        the broker requeues what it had sent when the connection drops.
        False when they could not be cancelled."""
        try:
            with self._connection._connection_lock:  # against the heartbeat thread
                for consumer, tag in list(self._consumers.items()):
                    consumer.cancel(tag=tag)
        except Exception:
            _LOG.debug("cannot cancel the consumers of a stopping server", exc_info=True)
            return False
        return True

    def delete_own_queue(self, *, wake_up_sent: bool) -> None:
        """Delete the server's own queue once its consumers are cancelled,
        unless a message other than the wake-up is in it (then log a warning
        naming the queue). ``wake_up_sent``: the wake-up message was sent,
        so the queue is deleted only once it has been read."""
        # the listener's connection is a ConnectionContext around the
        # driver's Connection, around kombu's
        kombu_connection: Any = getattr(getattr(self._connection, "connection", None),
                                        "connection", None)
        if self._own is None or not callable(getattr(kombu_connection, "channel", None)):
            _LOG.warning("cannot delete the own queue of a stopping server (an "
                         "oslo.messaging driver of an unknown shape): the queue is left")
            return
        name = self._own.queue_name
        try:
            with self._connection._connection_lock:  # against the heartbeat thread
                # a channel of its own: the broker closes the one of a refused delete
                channel = kombu_connection.channel()
                try:
                    queue = self._own.queue.bind(channel)
                    if self._drop_wake_up(queue, wait=wake_up_sent) and _delete_if_unused(queue):
                        return
                finally:
                    _close_quietly(channel)
        except NotFound:
            return  # gone already (the driver's amqp_auto_delete)
        except PreconditionFailed:
            pass  # a message came to it just now
        except Exception:
            _LOG.warning("cannot delete queue %s of a stopped server", name, exc_info=True)
            return
        _LOG.warning("kept queue %s of a stopped server: it holds messages sent to that server "
                     "alone, which nothing will read; delete it once they are not needed", name)

    def _drop_wake_up(self, queue: Any, *, wait: bool) -> bool:
        """Take the wake-up message out of the server's own ``queue`` (a kombu
        queue), waiting for it up to :data:`WAKE_UP_WAIT` seconds if ``wait``
        and it was not read yet. False when another message is there (it is
        put back)."""
        from oslo_messaging._drivers.impl_rabbit import (  # type: ignore[import-untyped]
            RabbitMessage,
        )

        deadline = time.monotonic() + (WAKE_UP_WAIT if wait else 0.0)
        while True:
            raw = queue.get(no_ack=False)
            if raw is not None:
                if not self._give_back(RabbitMessage(raw)):
                    return False
            elif self._woken.is_set() or time.monotonic() >= deadline:
                return True
            else:
                time.sleep(0.01)

    def _give_back(self, message: Any) -> bool:
        """The consumers' callback of a stopping server: put ``message`` (a
        driver's ``RabbitMessage``) back on its queue, for the topic's other
        servers; drop the wake-up message, which is for this server only.
        True when it was the wake-up message."""
        # oslo.messaging's AMQP drivers pack each context key as "_context_KEY"
        wake_up = bool(message.get(f"_context_{WAKE_UP}"))
        if wake_up:
            self._woken.set()
        try:
            if wake_up:
                message.acknowledge()
            else:
                message.requeue()
        except Exception:  # the connection broke: the broker requeues it itself
            _LOG.debug("cannot requeue a message at stop", exc_info=True)
        return wake_up


def _delete_if_unused(queue: Any) -> bool:
    """Delete ``queue`` (a kombu queue) if it is empty and has no consumer;
    False (or amqp's ``PreconditionFailed``) when it was kept."""
    if (queue.queue_arguments or {}).get("x-queue-type") == "quorum":
        # RabbitMQ refuses if-unused and if-empty on a quorum queue with a
        # connection error: look, then delete
        _, messages, consumers = queue.channel.queue_declare(queue.name, passive=True)
        if messages or consumers:
            return False
        queue.delete()
    else:
        queue.delete(if_unused=True, if_empty=True)
    return True


def _close_quietly(channel: Any) -> None:
    try:
        channel.close()
    except Exception:  # closed by the broker already, or the connection broke
        _LOG.debug("cannot close a channel", exc_info=True)
