"""The services of a solumlite fleet, each runnable in a thread of this
process (the embedded demo) or as a process of its own (``solumlite
conductor | worker | api``).

- :class:`ConductorService`: the only service with store access. It binds
  the release to its store, serves the release's registry with
  ``Conductor(transport, registry, store=store)`` (each call exactly once)
  and writes at the fleet's pins.
- :class:`WorkerService`: runs the workflows handed to it on the
  ``workers`` topic, advancing each through its steps with a short
  simulated delay per step; every step is a flow on the conductor.
- :class:`ApiService`: the HTTP API (uvicorn on 127.0.0.1, a free port), no
  store: its flows go to the conductor, and it hands the workflows it
  starts to the workers.

Every service joins the fleet (:class:`~rollsafe.rpc.FleetMembership`) with
its release and manifest, so the pins follow who is running. :meth:`stop
<FleetService.stop>` is graceful: stop taking work, finish what is in
flight, leave the fleet.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollsafe.rpc import (
    SERVICES,
    Conductor,
    Fleet,
    FleetMembership,
    RemoteIndirection,
    RetryPolicy,
    RpcError,
)
from rollsafe.rpc.transport import Server, Transport
from rollsafe.storage import Store, open_backend
from solumlite.domain import Run
from solumlite.release import Release

if TYPE_CHECKING:
    from solumlite.api.server import ApiServer

__all__ = ["WORKERS_TOPIC", "ApiService", "ConductorService", "FleetOptions", "FleetService",
           "WorkerService", "hand_workflows_to_workers", "remote_calls"]

#: The topic workers take workflows from.
WORKERS_TOPIC = "workers"

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetOptions:
    """Where the fleet's services meet: the store URL holding the fleet's
    records (and, for the conductor, the data), the bus, how fast a silent
    service drops out of the fleet, the host name the services record, and
    how long a remote call waits for each attempt's reply (a call lost with
    a conductor that stops is sent again after that)."""

    db: str
    transport: Transport
    stale_after: float = 6.0
    host: str = "demo"
    call_timeout: float = 10.0

    def open_fleet(self) -> Fleet:
        """A fleet view of its own (each service opens one, as a process would)."""
        return Fleet(Store(open_backend(self.db), [SERVICES]), stale_after=self.stale_after)


def remote_calls(release: Release, transport: Transport, *,
                 timeout: float = 10.0) -> RemoteIndirection:
    """Send ``release``'s flows to the conductor from now on (the setup of a
    service without store access; one indirection per release and process,
    shared by its services). Retries cover a conductor being replaced: a
    call nothing serves for a moment is sent again, with the same request
    id, so it runs exactly once."""
    current = release.registry.indirection
    if isinstance(current, RemoteIndirection) and current.transport is transport:
        return current
    indirection = RemoteIndirection(transport, release.registry, timeout=timeout,
                                    retry=RetryPolicy(attempts=8, backoff=0.02,
                                                      max_backoff=0.5))
    release.registry.indirection = indirection
    return indirection


def hand_workflows_to_workers(release: Release, transport: Transport, *,
                              on_error: Callable[[str], None] | None = None
                              ) -> Callable[[str, Run], None]:
    """Make each workflow ``release`` starts in this process go to a worker
    (a cast on :data:`WORKERS_TOPIC`); returns the hook, to remove from
    ``release.workflow_started`` later. A cast that finds no worker is tried
    again for a few seconds, then reported to ``on_error`` (the workflow
    stays queued; the request that started it has succeeded)."""

    def hand_over(project: str, run: Run) -> None:
        message = {"project": project, "workflow_id": str(run["workflow"]["object"].id)}
        deadline = time.monotonic() + 5.0
        while True:
            try:
                transport.cast(WORKERS_TOPIC, message)
                return
            except RpcError as exc:
                if time.monotonic() > deadline:
                    _LOG.warning("no worker took workflow %s: %s", message["workflow_id"], exc)
                    if on_error is not None:
                        on_error(f"no worker took a workflow: {exc}")
                    return
                time.sleep(0.05)

    release.workflow_started.append(hand_over)
    return hand_over


class FleetService(ABC):
    """One service of a release: ``role`` (conductor, worker, api) and
    ``slot``, the place it holds in the fleet (``worker-1``...), which its
    replacement takes over. Its fleet record is ``role@slot-release``."""

    role: str = "service"

    def __init__(self, release: Release, slot: str, options: FleetOptions) -> None:
        self.release = release
        self.slot = slot
        self.options = options
        self.membership: FleetMembership | None = None

    def __repr__(self) -> str:
        return f"<{self.role} {self.slot} release {self.release.name}>"

    def _join(self, **followers: Any) -> None:
        """Join the fleet with this release's manifest; ``followers``
        (serializers=, stores=) follow the pins."""
        host = f"{self.options.host}-{self.slot}-{self.release.key}"
        self.membership = FleetMembership(
            self.options.open_fleet(), self.role, host, self.release.name,
            self.release.registry, period=self.options.stale_after / 3, **followers)
        self.membership.start()

    def _leave(self) -> None:
        membership, self.membership = self.membership, None
        if membership is not None:
            membership.stop()
            membership.fleet.store.close()

    @property
    def url(self) -> str:
        """Where the service serves HTTP (an API's; RuntimeError for the others)."""
        raise RuntimeError(f"{self!r} serves no HTTP")

    def refresh_pins(self) -> dict[str, str] | None:
        """Recompute the fleet pins now (else: at the next heartbeat)."""
        return None if self.membership is None else self.membership.refresh_now()

    @property
    def pins(self) -> dict[str, str] | None:
        """The pins this service last followed."""
        return None if self.membership is None else self.membership.pins

    @abstractmethod
    def start(self) -> FleetService:
        """Join the fleet and begin serving; returns self."""

    @abstractmethod
    def stop(self) -> None:
        """Stop taking work, finish what is in flight, leave the fleet."""


class ConductorService(FleetService):
    """The conductor of ``release``: the store at ``options.db`` (with the
    collections as they are after contract, if ``contracted``), writing at
    the fleet's pins, served on the ``conductor`` topic."""

    role = "conductor"

    def __init__(self, release: Release, slot: str, options: FleetOptions, *,
                 contracted: bool = False) -> None:
        super().__init__(release, slot, options)
        self.contracted = contracted
        self.store: Store | None = None
        self._conductor: Conductor | None = None

    def start(self) -> ConductorService:
        """Open the store, join the fleet (the store then writes at its
        pins), bind the release to the store and serve calls."""
        store = self.store = self.release.open_store(self.options.db,
                                                     contracted=self.contracted)
        try:
            self._join(stores=[store])
            self.release.bind(store)
            self._conductor = Conductor(self.options.transport, self.release.registry,
                                        store=store, purge_interval=None).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop taking calls (those in flight finish), leave the fleet,
        unbind the release if this store is still the bound one."""
        conductor, self._conductor = self._conductor, None
        if conductor is not None:
            conductor.stop()
        self._leave()
        store, self.store = self.store, None
        if store is not None:
            self.release.unbind(store)
            store.close()


class WorkerService(FleetService):
    """A worker of ``release``: takes workflows from :data:`WORKERS_TOPIC`
    and runs each to its end, ``step_delay`` seconds per step (the
    simulated build, test and deploy). ``on_error(text)`` hears of a
    workflow step that failed unexpectedly."""

    role = "worker"

    def __init__(self, release: Release, slot: str, options: FleetOptions, *,
                 step_delay: float = 0.05,
                 on_error: Callable[[str], None] | None = None) -> None:
        super().__init__(release, slot, options)
        self.step_delay = step_delay
        self.on_error = on_error
        self.finished = 0
        self._server: Server | None = None
        self._stopping = threading.Event()

    def start(self) -> WorkerService:
        """Join the fleet (calls to the conductor go at its pins) and take work."""
        indirection = remote_calls(self.release, self.options.transport,
                                   timeout=self.options.call_timeout)
        try:
            self._join(serializers=[indirection.serializer])
            self._server = self.options.transport.serve(WORKERS_TOPIC, self._handle)
        except BaseException:
            self.stop()
            raise
        return self

    def _handle(self, message: Mapping[str, Any]) -> None:
        project, workflow_id = message.get("project"), message.get("workflow_id")
        if not isinstance(project, str) or not isinstance(workflow_id, str):
            raise RpcError("a workflow message names a project and a workflow_id")
        try:
            self.run_workflow(project, workflow_id)
        except Exception as exc:
            _LOG.warning("%r: workflow %s failed: %s", self, workflow_id, exc)
            if self.on_error is not None:
                self.on_error(f"worker: {type(exc).__name__}: {exc}")

    def run_workflow(self, project: str, workflow_id: str) -> str:
        """Advance workflow ``workflow_id`` step by step to its end; returns
        its final status."""
        status = "queued"
        while status in ("queued", "running"):
            time.sleep(self.step_delay)  # the simulated work of the step
            run = self.release.advance_workflow(project, workflow_id)
            status = run["workflow"]["object"].status
        self.finished += 1
        return status

    def stop(self) -> None:
        """Take no more workflows, finish those taken, leave the fleet."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._leave()


class ApiService(FleetService):
    """The HTTP API of ``release`` for the holders of ``tokens`` (token ->
    project), on 127.0.0.1 and a free port (see :attr:`url`)."""

    role = "api"

    def __init__(self, release: Release, slot: str, options: FleetOptions, *,
                 tokens: Mapping[str, str], port: int = 0) -> None:
        super().__init__(release, slot, options)
        self.tokens = dict(tokens)
        self.port = port
        self._server: ApiServer | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` while serving."""
        if self._server is None:
            raise RuntimeError(f"{self!r} is not serving")
        return self._server.url

    def start(self) -> ApiService:
        """Join the fleet, then serve HTTP (flows go to the conductor)."""
        from solumlite.api import TokenMap, create_api
        from solumlite.api.server import ApiServer

        indirection = remote_calls(self.release, self.options.transport,
                                   timeout=self.options.call_timeout)
        try:
            self._join(serializers=[indirection.serializer])
            self._server = ApiServer(create_api(self.release, TokenMap(self.tokens)),
                                     port=self.port).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop taking connections, let requests in flight finish, leave
        the fleet. (Take it out of the clients' rotation first.)"""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._leave()
