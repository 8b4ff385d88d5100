"""The fleet as separate processes: ``solumlite conductor``, ``solumlite
worker`` and ``solumlite api --fleet`` run one service each (against
PostgreSQL and RabbitMQ, say), and :class:`ServiceProcess` is how the
demo's orchestrator starts and stops them.

A service process writes its URL (or ``ready``) to its ``--ready-file``
once it serves, refreshes the fleet pins on SIGHUP, and on SIGTERM (or
SIGINT) stops gracefully: it takes no more work, finishes what is in
flight, leaves the fleet, writes the object versions it saw on the wire
(``--wire-stats``) and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from solumlite.demo.services import (
    ApiService,
    ConductorService,
    FleetOptions,
    FleetService,
    WorkerService,
    hand_workflows_to_workers,
)
from solumlite.demo.wire import WatchedTransport
from solumlite.release import Release

__all__ = ["ServiceProcess", "run_service"]


def run_service(role: str, release: Release, *, db: str, transport_url: str, slot: str,
                stale_after: float = 6.0, contracted: bool = False, step_delay: float = 0.05,
                tokens: Mapping[str, str] | None = None, port: int = 0,
                ready_file: Path | None = None, wire_stats: Path | None = None,
                operator_token: str | None = None) -> None:
    """Run one service of ``release`` in this process until SIGTERM or
    SIGINT (main thread only). ``db``: the conductor's store, or for the
    others the store holding the fleet's records; ``operator_token``: an
    API's dashboard token."""
    from rollsafe.rpc.messaging import OsloMessagingTransport

    seen: Counter[tuple[str, str]] = Counter()
    errors: Counter[str] = Counter()
    lock = threading.Lock()

    def saw(name: str, version: str) -> None:
        with lock:
            seen[(name, version)] += 1

    def failed(message: str) -> None:
        with lock:
            errors[message] += 1

    transport = WatchedTransport(OsloMessagingTransport(transport_url), saw)
    # A call that a stopping conductor took but never answered is sent
    # again (same request id, so it runs once) after this: keep it short.
    options = FleetOptions(db, transport, stale_after=stale_after, host=f"pid{os.getpid()}",
                           call_timeout=2.0)
    service: FleetService
    if role == "conductor":
        service = ConductorService(release, slot, options, contracted=contracted)
    elif role == "worker":
        service = WorkerService(release, slot, options, step_delay=step_delay, on_error=failed)
    elif role == "api":
        service = ApiService(release, slot, options, tokens=tokens or {}, port=port,
                             operator_token=operator_token)
        hand_workflows_to_workers(release, transport, on_error=failed)
    else:
        raise ValueError(f"no service role {role!r}: conductor, worker or api")
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        try:
            assert service.membership is not None
            service.membership.install_signal_handler()  # SIGHUP: refresh the pins now
            if ready_file is not None:
                text = service.url if isinstance(service, ApiService) else "ready"
                ready_file.write_text(text, encoding="utf-8")
            while not stopping.wait(0.5):
                pass
        finally:
            service.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        transport.close()
        if wire_stats is not None:
            with lock:
                stats = {"wire": [[n, v, c] for (n, v), c in sorted(seen.items())],
                         "errors": dict(errors),
                         "redispatched": getattr(service, "redispatched", 0)}
            wire_stats.write_text(json.dumps(stats), encoding="utf-8")


class ServiceProcess:
    """One service of the fleet as a child process (``solumlite ROLE``),
    its output in ``folder``. :meth:`start` returns once it serves;
    :meth:`stop` sends SIGTERM and reaps it."""

    def __init__(self, role: str, release: Release, slot: str, *, db: str, transport: str,
                 folder: Path, stale_after: float = 6.0, contracted: bool = False,
                 step_delay: float = 0.05, tokens: Mapping[str, str] | None = None) -> None:
        self.role = role
        self.release = release
        self.slot = slot
        self.contracted = contracted
        self.db = db
        self.transport = transport
        self.stale_after = stale_after
        self.step_delay = step_delay
        self.tokens = dict(tokens or {})
        name = f"{slot}-{release.key}{'-contracted' if contracted else ''}-{time.monotonic_ns()}"
        self.log = folder / f"{name}.log"
        self.ready = folder / f"{name}.ready"
        self.stats = folder / f"{name}.stats.json"
        self._process: subprocess.Popen[bytes] | None = None
        self._url: str | None = None

    def __repr__(self) -> str:
        return f"<{self.role} process {self.slot} release {self.release.name}>"

    @property
    def url(self) -> str:
        """The API's ``http://127.0.0.1:PORT`` (APIs only, once started)."""
        if self._url is None:
            raise RuntimeError(f"{self!r} serves no HTTP")
        return self._url

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return None if self._process is None else self._process.pid

    def argv(self) -> list[str]:
        """The command line that runs the service."""
        common = ["--release", self.release.key, "--transport", self.transport,
                  "--slot", self.slot, "--stale-after", str(self.stale_after),
                  "--ready-file", str(self.ready), "--wire-stats", str(self.stats)]
        command = [sys.executable, "-m", "solumlite", self.role, *common]
        if self.role == "conductor":
            return [*command, "--db", self.db, *(["--contracted"] if self.contracted else [])]
        if self.role == "worker":
            return [*command, "--fleet", self.db, "--step-delay", str(self.step_delay)]
        tokens = [arg for token, project in self.tokens.items()
                  for arg in ("--token", f"{token}={project}")]
        return [*command, "--db", "none://", "--fleet", self.db, "--port", "0",
                "--log-level", "warning", *tokens]

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        """Start the process; return once it serves (RuntimeError, with the
        end of its log, if it exits or does not get ready in ``timeout``)."""
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self!r} did not start:\n{self.tail()}")
            time.sleep(0.05)
        time.sleep(0.05)  # the file is written in one go, but let the writer close it
        text = self.ready.read_text(encoding="utf-8").strip()
        self._url = text if self.role == "api" else None
        return self

    def refresh_pins(self) -> dict[str, str] | None:
        """Ask the service to refresh the fleet pins now (SIGHUP); the pins
        are the service's own, so None."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGHUP)
        return None

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM, then wait for a graceful exit (killed, and RuntimeError,
        if it takes more than ``timeout`` seconds or exits non-zero)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(
                f"{self!r} did not stop within {timeout}s:\n{self.tail()}") from None
        self._process = None
        if code != 0:
            raise RuntimeError(f"{self!r} exited with {code}:\n{self.tail()}")

    def kill(self) -> None:
        """Kill the process at once and reap it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def tail(self, lines: int = 30) -> str:
        """The end of the process's output."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])

    def wire_stats(self) -> dict[str, Any]:
        """What the stopped process saw: ``{"wire": [[name, version,
        count]...], "errors": {message: count}, "redispatched": n}`` (the
        workflows a conductor sent the workers again; empty if it wrote none)."""
        try:
            found: dict[str, Any] = json.loads(self.stats.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"wire": [], "errors": {}, "redispatched": 0}
        return found
