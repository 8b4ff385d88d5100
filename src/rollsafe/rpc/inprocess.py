"""The in-process transport: the embedded default, no server to run.

Every message is encoded to JSON bytes and decoded again on the other side,
as it would be on a real wire, so no object reference is ever shared
between "services". Each topic's handler runs on its own worker threads;
``call`` waits for the reply up to its timeout. Several servers may serve
one topic (as consumers share a queue on a broker): each message goes to
one of them, in turn, so a service can be replaced by starting the new one
before stopping the old.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from rollsafe.rpc.transport import (
    Handler,
    RpcTimeoutError,
    Server,
    Transport,
    error_reply,
    plain_copy,
    unwrap_reply,
)

__all__ = ["InProcessTransport"]


class _Topic(Server):
    def __init__(self, transport: InProcessTransport, topic: str, handler: Handler,
                 workers: int) -> None:
        self.transport = transport
        self.topic = topic
        self.handler = handler
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"rpc-{topic}")
        self.stopped = False
        # Held while submitting and while stopping, so that no message is
        # submitted to a pool that is shutting down.
        self.lock = threading.Lock()

    def submit(self, message: Any) -> Future[Any]:
        with self.lock:
            if self.stopped:
                # The same error as a topic nothing serves, as on a broker:
                # a caller retries both the same way.
                raise RpcTimeoutError(f"nothing serves topic {self.topic!r} (it stopped)")
            return self.pool.submit(self._handle, message)

    def _handle(self, message: Any) -> Any:
        try:
            return {"rpc_result": plain_copy(self.handler(message))}
        except Exception as exc:  # every failure goes back to the caller
            return error_reply(exc)

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
        self.transport._drop(self)
        self.pool.shutdown(wait=True)  # finish what is in flight


class InProcessTransport(Transport):
    """Topics served by handlers in this process (``workers`` threads each).
    A topic served by several handlers gives each message to one of them,
    in turn."""

    def __init__(self, *, workers: int = 4) -> None:
        self.workers = workers
        self._topics: dict[str, list[_Topic]] = {}
        self._turn = 0
        self._lock = threading.Lock()

    def serve(self, topic: str, handler: Handler) -> Server:
        server = _Topic(self, topic, handler, self.workers)
        with self._lock:
            self._topics.setdefault(topic, []).append(server)
        return server

    def _drop(self, server: _Topic) -> None:
        with self._lock:
            servers = self._topics.get(server.topic, [])
            if server in servers:
                servers.remove(server)
            if not servers:
                self._topics.pop(server.topic, None)

    def _submit(self, topic: str, message: Any) -> Future[Any]:
        """Hand ``message`` to one server of ``topic`` (the next in turn
        that is not stopping)."""
        while True:
            with self._lock:
                servers = self._topics.get(topic)
                if not servers:
                    raise RpcTimeoutError(f"nothing serves topic {topic!r}")
                self._turn += 1
                server = servers[self._turn % len(servers)]
            try:
                return server.submit(message)
            except RpcTimeoutError:
                self._drop(server)  # it is stopping: another one may serve

    def call(self, topic: str, message: dict[str, Any], *, timeout: float) -> Any:
        future = self._submit(topic, plain_copy(message))
        try:
            reply = future.result(timeout=timeout)
        except FutureTimeout:
            raise RpcTimeoutError(f"no reply from {topic!r} within {timeout} s") from None
        return unwrap_reply(reply)

    def cast(self, topic: str, message: dict[str, Any]) -> None:
        self._submit(topic, plain_copy(message))

    def close(self) -> None:
        with self._lock:
            servers = [s for group in self._topics.values() for s in group]
        for server in servers:
            server.stop()
