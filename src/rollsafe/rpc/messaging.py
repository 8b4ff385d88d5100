"""The oslo.messaging transport: the same plain messages over RabbitMQ.

:class:`OsloMessagingTransport` implements :class:`~rollsafe.rpc.transport.Transport`
on oslo.messaging's RPC layer. ``serve`` starts an RPC server on the topic
(with a server name of its own, so that several services serving one topic
share its messages); its single endpoint method ``handle`` runs the handler
and replies ``{"rpc_result": ...}``, or :func:`~rollsafe.rpc.transport.error_reply`
when the handler raised, exactly as the in-process transport does, so the
caller unwraps both the same way. Messages go through oslo.messaging's own
JSON serialisation; like the in-process transport, they are first checked to
be plain data (a message that is not raises :class:`RpcError` before anything
is sent).

This is the only module of rollsafe that imports oslo.messaging: it is not
imported by :mod:`rollsafe.rpc`, so the embedded default needs none of it.

Configuration
    oslo.messaging's RPC client and server read their tracing and metrics
    options (groups ``oslo_messaging_tracing`` and ``oslo_messaging_metrics``)
    from the configuration they are given, but the library registers those
    options only on the global :data:`oslo_config.cfg.CONF`, when it is
    imported. So by default (``conf=None``) the transport uses the global
    ``CONF``: those options are already there, and ``get_rpc_transport``
    registers the transport and driver options on it once per process
    (registering the same options again is a no-op). The transport never
    parses ``CONF`` (no command line, no file is read): an application that
    parses it itself configures the driver that way, else defaults apply.
    A private :class:`~oslo_config.cfg.ConfigOpts` may be given instead: the
    tracing and metrics groups it lacks are then registered on it too, so
    that calls do not fail with ``NoSuchOptError: oslo_messaging_tracing``.

Unreachable broker
    A call to a broker that cannot be reached raises :class:`RpcTimeoutError`
    naming the broker (never its credentials), at its timeout or soon after:
    the client retries a broken connection once (``retry=1``: a broker that
    restarted is reconnected to transparently, about a second later; one that
    is down fails the call after 1 to 3 s, even when its timeout was shorter),
    and the first call of a transport, which opens the reply queue, waits for
    it only until the call's deadline (oslo.messaging would retry that
    connection forever: a background thread keeps trying, and later calls
    succeed once the broker answers). A cast fails the same way; a broker
    that refuses the login is :class:`RpcError`. ``serve`` waits for the
    broker as oslo.messaging services do (logging each retry).

Stopping
    ``Server.stop`` hands the topic over to its other servers (or to the
    next one to start) without losing a call, then returns once the calls
    it took are answered (about a second: oslo.messaging's thread pool
    looks for work once a second). ``close`` stops all servers side by side.

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

import copy
import importlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, NoReturn
from urllib.parse import urlsplit

import oslo_messaging  # type: ignore[import-untyped]
from amqp.exceptions import (  # type: ignore[import-untyped]
    AMQPError,
    NotFound,
    PreconditionFailed,
    RecoverableChannelError,
    RecoverableConnectionError,
)
from oslo_config import cfg

from rollsafe.rpc.transport import (
    Handler,
    RemoteError,
    RpcError,
    RpcTimeoutError,
    Server,
    Transport,
    error_reply,
    plain_copy,
    unwrap_reply,
)

__all__ = ["OsloMessagingTransport"]

_LOG = logging.getLogger(__name__)

#: Option groups oslo.messaging reads from the configuration it is given but
#: registers only on the global CONF: (module that holds the list, group).
#: The list in each module is named after its group.
_GLOBAL_ONLY_GROUPS = (
    ("oslo_messaging._tracing.client", "oslo_messaging_tracing"),
    ("oslo_messaging._metrics.client", "oslo_messaging_metrics"),
)

#: The topic the first call of a transport "calls" to open its reply queue:
#: nothing serves it, so the message is dropped by the broker.
_CONNECT_TOPIC = "rollsafe-transport-connect"

#: Connection retries of a call or cast before it gives up (0: none; each
#: retry waits about a second or two).
_SEND_RETRIES = 1

_ENDPOINT_METHOD = "handle"

#: The context key of the message that wakes a stopping server up.
_WAKE_UP = "rollsafe_wake_up"

#: Seconds a stopped server waits for its wake-up message to reach its own
#: queue before deleting it, when the message was sent but not read.
_WAKE_UP_WAIT = 1.0

_EXECUTORS = ("threading", "eventlet")


def _redacted(url: str) -> str:
    """``url`` without user names and passwords, for messages and logs."""
    try:
        parts = urlsplit(url)
        hosts = ",".join(host.rpartition("@")[2] for host in parts.netloc.split(","))
    except ValueError:
        return "<unparsable transport URL>"
    return f"{parts.scheme}://{hosts}{parts.path}"


def _register_global_only_opts(conf: cfg.ConfigOpts) -> None:
    """Give a private ``conf`` the option groups oslo.messaging puts only on
    the global CONF (nothing to do for the global CONF itself, nor for an
    oslo.messaging release that has no such group)."""
    if conf is cfg.CONF:
        return
    for module_name, group in _GLOBAL_ONLY_GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        opts = getattr(module, group, None)
        if opts is not None:
            conf.register_opts(copy.deepcopy(list(opts)), group=group)


class _Endpoint:
    """The one RPC endpoint of a topic's server: public method ``handle``
    only (the dispatcher exposes every public callable attribute)."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    def handle(self, ctxt: dict[str, Any], message: Any) -> dict[str, Any] | None:
        if isinstance(ctxt, dict) and ctxt.get(_WAKE_UP):
            return None  # the server is stopping: see _MessagingServer.stop
        try:
            return {"rpc_result": plain_copy(self._handler(message))}
        except Exception as exc:  # every failure goes back to the caller
            return error_reply(exc)


class _MessagingServer(Server):
    """One oslo.messaging RPC server on a topic."""

    def __init__(self, owner: OsloMessagingTransport, topic: str, name: str,
                 rpc_server: Any) -> None:
        self._owner = owner
        self.topic = topic
        self.name = name
        self._rpc_server = rpc_server
        self._lock = threading.Lock()
        self._stopped = False

    def stop(self) -> None:
        with self._lock:  # a second stop waits for the first, then returns
            if self._stopped:
                return
            self._stopped = True
            handover = _Handover.of(self._rpc_server, own_queue=f"{self.topic}.{self.name}")
            if handover is None:
                _LOG.warning("cannot hand topic %r over at stop (an oslo.messaging driver "
                             "of an unknown shape): calls delivered meanwhile may time out",
                             self.topic)
            else:
                handover.requeue_deliveries()
            # ends the idle listener's socket read (see the module's "Stopping")
            woken = self._owner._wake_up(self.topic, self.name)
            self._rpc_server.stop()  # its thread dispatches what it acknowledged
            if handover is not None and handover.cancel_consumers():
                handover.delete_own_queue(wake_up_sent=woken)
            self._rpc_server.wait()  # finishes those in flight, closes the listener
        self._owner._forget(self)


class _Handover:
    """The consumers of one server's listener (oslo.messaging's RabbitMQ
    driver), made to give their deliveries back at stop, and the server's
    own queue, deleted then: see the module's "Stopping" and "Queues left
    on the broker"."""

    def __init__(self, connection: Any, consumers: dict[Any, Any], own: Any) -> None:
        self._connection = connection
        self._consumers = consumers
        self._own = own  # the consumer of the server's own queue, or None
        self._woken = threading.Event()  # the wake-up message was read

    @classmethod
    def of(cls, rpc_server: Any, *, own_queue: str) -> _Handover | None:
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
        queue), waiting for it up to :data:`_WAKE_UP_WAIT` seconds if ``wait``
        and it was not read yet. False when another message is there (it is
        put back)."""
        from oslo_messaging._drivers.impl_rabbit import (  # type: ignore[import-untyped]
            RabbitMessage,
        )

        deadline = time.monotonic() + (_WAKE_UP_WAIT if wait else 0.0)
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
        wake_up = bool(message.get(f"_context_{_WAKE_UP}"))
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


class OsloMessagingTransport(Transport):
    """Topics served and called through oslo.messaging (RabbitMQ).

    ``url`` is an oslo.messaging transport URL, ``rabbit://USER:PASS@HOST:PORT/``;
    ``exchange`` is the AMQP exchange every topic of this transport lives in
    (callers and servers must agree on it); ``executor`` runs the handlers of
    each server (``"threading"``: a pool of threads per server); ``conf`` is
    the configuration oslo.messaging reads (the global ``CONF`` by default:
    see the module's documentation).
    """

    def __init__(self, url: str, *, exchange: str = "rollsafe", executor: str = "threading",
                 conf: cfg.ConfigOpts | None = None) -> None:
        if executor not in _EXECUTORS:
            raise ValueError(f"executor must be one of {_EXECUTORS}, not {executor!r}")
        self.exchange = exchange
        self.executor = executor
        self._where = _redacted(url)
        self._conf = cfg.CONF if conf is None else conf
        _register_global_only_opts(self._conf)
        try:
            self._transport = oslo_messaging.get_rpc_transport(self._conf, url=url)
        except (oslo_messaging.InvalidTransportURL, oslo_messaging.DriverLoadFailure) as exc:
            raise RpcError(f"cannot use transport URL {self._where}: {exc}") from None
        self._client = oslo_messaging.get_rpc_client(
            self._transport, oslo_messaging.Target(exchange=exchange), retry=_SEND_RETRIES)
        self._lock = threading.Lock()
        self._servers: list[_MessagingServer] = []
        self._closed = False
        self._cleaned = False
        self._reply_ready = threading.Event()
        self._connecting = False  # a connector thread runs (set and cleared under _lock)

    # --- serving ----------------------------------------------------------

    def serve(self, topic: str, handler: Handler) -> Server:
        self._check_open()
        name = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:12]}"
        target = oslo_messaging.Target(exchange=self.exchange, topic=topic, server=name)
        # oslo.messaging 18 deprecates its executor argument (threading is to
        # be the only model, and is its default): pass it for eventlet only
        options = {} if self.executor == "threading" else {"executor": self.executor}
        rpc_server = oslo_messaging.get_rpc_server(
            self._transport, target, [_Endpoint(handler)],
            access_policy=oslo_messaging.DefaultRPCAccessPolicy, **options)
        server = _MessagingServer(self, topic, name, rpc_server)
        with self._lock:
            if self._closed:
                raise RpcError("the transport is closed")
            self._servers.append(server)
        try:
            rpc_server.start()
        except Exception:
            self._forget(server)
            raise
        return server

    def _forget(self, server: _MessagingServer) -> None:
        with self._lock:
            if server in self._servers:
                self._servers.remove(server)

    # --- sending ----------------------------------------------------------

    def call(self, topic: str, message: dict[str, Any], *, timeout: float) -> Any:
        self._check_open()
        payload = plain_copy(message)
        deadline = time.monotonic() + timeout
        self._await_reply_queue(deadline, timeout)
        left = max(deadline - time.monotonic(), 0.001)
        context = self._client.prepare(topic=topic, timeout=left)
        try:
            reply = context.call({}, _ENDPOINT_METHOD, message=payload)
        except oslo_messaging.MessagingTimeout:
            raise RpcTimeoutError(f"no reply from {topic!r} within {timeout} s") from None
        except oslo_messaging.RemoteError as exc:  # the server's dispatcher itself failed
            raise RemoteError(str(exc.exc_type), str(exc.value)) from None
        except Exception as exc:
            self._raise_unreachable(exc, topic)
        return unwrap_reply(reply)

    def cast(self, topic: str, message: dict[str, Any]) -> None:
        self._check_open()
        payload = plain_copy(message)
        try:
            self._client.prepare(topic=topic).cast({}, _ENDPOINT_METHOD, message=payload)
        except Exception as exc:
            self._raise_unreachable(exc, topic)

    def _wake_up(self, topic: str, server: str) -> bool:
        """Send the wake-up message to ``server``'s own queue (best effort:
        without it, stopping only takes longer); False when it failed."""
        try:
            self._client.prepare(topic=topic, server=server, retry=0).cast(
                {_WAKE_UP: True}, _ENDPOINT_METHOD, message=None)
        except Exception:
            _LOG.debug("cannot wake server %s of %r up", server, topic, exc_info=True)
            return False
        return True

    def _raise_unreachable(self, exc: Exception, topic: str) -> NoReturn:
        """RpcTimeoutError for a broker that cannot be reached, RpcError for
        one that refuses the connection (credentials, permissions); ``exc``
        as it is for anything else."""
        kind = _broker_failure(exc)
        if kind == "unreachable":
            raise RpcTimeoutError(
                f"cannot reach the message broker at {self._where} to send to {topic!r}: "
                f"{type(exc).__name__}: {exc}") from exc
        if kind == "refused":
            raise RpcError(
                f"the message broker at {self._where} refused to send to {topic!r}: "
                f"{type(exc).__name__}: {exc}") from exc
        raise exc

    def _await_reply_queue(self, deadline: float, timeout: float) -> None:
        """Wait until the reply queue of this transport is open (the first
        call opens it), but not past ``deadline``."""
        if self._reply_ready.is_set():
            return
        with self._lock:
            if not self._connecting:
                self._connecting = True
                threading.Thread(target=self._open_reply_queue, name="rpc-connect",
                                 daemon=True).start()
        if not self._reply_ready.wait(max(deadline - time.monotonic(), 0.0)):
            raise RpcTimeoutError(
                f"cannot reach the message broker at {self._where} within {timeout} s "
                "(oslo.messaging keeps trying, and logs why it cannot connect)")

    def _open_reply_queue(self) -> None:
        """The connector thread: a call to a topic nobody serves opens the
        reply queue; its timeout (a reply was never expected) tells the queue
        is there. Cleans the transport up if it was closed meanwhile."""
        try:
            self._client.prepare(topic=_CONNECT_TOPIC, timeout=0.01).call(
                {}, _ENDPOINT_METHOD, message={})
        except oslo_messaging.MessagingTimeout:
            self._reply_ready.set()
        except Exception:
            _LOG.warning("cannot open the reply queue at %s", self._where, exc_info=True)
        else:
            self._reply_ready.set()
        finally:
            with self._lock:
                self._connecting = False
                late_cleanup = self._closed and not self._cleaned
                self._cleaned = self._cleaned or late_cleanup
            if late_cleanup:
                self._transport.cleanup()

    def _check_open(self) -> None:
        if self._closed:
            raise RpcError("the transport is closed")

    # --- closing ----------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            servers = list(self._servers)
        stoppers = [threading.Thread(target=server.stop, name=f"rpc-stop-{server.topic}")
                    for server in servers]  # side by side: each may wait for its handlers
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        with self._lock:
            # a connector still trying holds the driver's reply-queue lock:
            # it cleans up itself when it is done
            cleanup_now = not self._connecting and not self._cleaned
            self._cleaned = self._cleaned or cleanup_now
        if cleanup_now:
            self._transport.cleanup()


def _broker_failure(exc: BaseException) -> str | None:
    """``"unreachable"`` for the errors of a broker that cannot be reached
    (oslo.messaging's own, sockets', kombu's and py-amqp's recoverable ones),
    ``"refused"`` for py-amqp's other errors (a login or a permission
    refused), None for anything else."""
    from kombu.exceptions import OperationalError

    unreachable = (oslo_messaging.MessagingException, OSError, OperationalError,
                   RecoverableConnectionError, RecoverableChannelError)
    if isinstance(exc, unreachable):
        return "unreachable"
    if isinstance(exc, AMQPError):
        return "refused"
    return None
