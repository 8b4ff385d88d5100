"""Serving the API with uvicorn in a thread of this process (tests, the
embedded setup), with a graceful stop: no new connections, requests in
flight finish, then the thread ends."""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.types import ASGIApp

__all__ = ["ApiServer"]


class ApiServer:
    """uvicorn serving ``app`` on ``host``:``port`` (0: a free port, see
    :attr:`port` once started) in a background thread."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning", graceful_seconds: float = 10.0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                timeout_graceful_shutdown=int(graceful_seconds),
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ApiServer:
        """Start serving; returns once the socket listens (RuntimeError if
        it does not within ``timeout`` seconds)."""
        if self._thread is not None:
            raise RuntimeError("this server was started already")
        self._thread = threading.Thread(target=self._server.run, name="solumlite-api",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise RuntimeError(f"the API did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop taking connections, let requests in flight finish, and wait
        for the thread (at most ``timeout`` seconds)."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the API on port {self.port} did not stop within {timeout}s")
        self._thread = None
