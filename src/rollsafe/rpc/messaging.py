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
    looks for work once a second), and deletes the server's own queue.
    ``close`` stops all servers side by side. Why oslo.messaging alone
    loses calls at stop and leaves a queue per server on the broker, and
    how rollsafe avoids both: :mod:`rollsafe.rpc.amqp_handover`.
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
    RecoverableChannelError,
    RecoverableConnectionError,
)
from oslo_config import cfg

from rollsafe.rpc.amqp_handover import WAKE_UP, Handover
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
        if isinstance(ctxt, dict) and ctxt.get(WAKE_UP):
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
            handover = Handover.of(self._rpc_server, own_queue=f"{self.topic}.{self.name}")
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
                {WAKE_UP: True}, _ENDPOINT_METHOD, message=None)
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
