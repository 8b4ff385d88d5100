"""The services of a solumlite fleet, each runnable in a thread of this
process (the embedded demo) or as a process of its own (``solumlite
conductor | worker | api``).

- :class:`ConductorService`: the only service with store access. It binds
  the release to its store, serves the release's registry with
  ``Conductor(transport, registry, store=store)`` (each call exactly once)
  and writes at the fleet's pins. Its :class:`OrphanSweep` casts the
  workflows a dead worker left unfinished to the workers again.
- :class:`WorkerService`: runs the workflows handed to it on the
  ``workers`` topic, advancing each through its steps with a short
  simulated delay per step; every step is a flow on the conductor. It
  may get a workflow twice, or one that has ended: it goes on from where
  the workflow is.
- :class:`ApiService`: the HTTP API (uvicorn on 127.0.0.1, a free port), no
  store: its flows go to the conductor, and it hands the workflows it
  starts to the workers.

Every service joins the fleet (:class:`~rollsafe.rpc.FleetMembership`) with
its release and manifest, so the pins follow who is running. :meth:`stop
<FleetService.stop>` is graceful: stop taking work, finish what is in
flight, leave the fleet.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from rollsafe import VersionedObject
from rollsafe.errors import NotFoundError
from rollsafe.rpc import (
    SERVICES,
    Conductor,
    Fleet,
    FleetMembership,
    RemoteError,
    RemoteIndirection,
    RetryPolicy,
    RpcError,
)
from rollsafe.rpc.transport import Server, Transport
from rollsafe.storage import Store, open_backend
from solumlite.domain import Run, WorkflowShape, utcnow
from solumlite.errors import IllegalTransitionError
from solumlite.release import Release
from solumlite.status import ReleaseStatus, RemoteStatus, serve_status

if TYPE_CHECKING:
    from solumlite.api.server import ApiServer

__all__ = ["WORKERS_TOPIC", "ApiService", "ConductorService", "FleetOptions", "FleetService",
           "OrphanSweep", "WorkerService", "hand_workflows_to_workers", "remote_calls"]

#: The topic workers take workflows from.
WORKERS_TOPIC = "workers"
#: The statuses of a workflow that has not ended.
_UNDER_WAY = ("queued", "running")

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
    again for a few seconds, then reported to ``on_error`` (the request
    that started the workflow has succeeded; the workflow stays queued
    until the conductor's :class:`OrphanSweep` casts it again)."""

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


class OrphanSweep:
    """Finds the workflows that a worker took and never finished (it was
    killed: a cast is acknowledged when taken, so the message died with it)
    and casts them to :data:`WORKERS_TOPIC` again, so that a live worker
    finishes them. It only reads the store and casts; the workers write.

    A workflow is orphaned when it is ``queued`` or ``running`` and has not
    changed for ``orphaned_after`` seconds (a healthy step takes a fraction
    of a second). Workflow status is not indexed, so the sweep never
    filters on it (Redis would read every record); it walks the workflows
    by ``created_at`` (indexed), ``page`` at a time, through a window it
    keeps in memory: from the first page that may still hold an unfinished
    workflow (the pages before it were all ended when read) to the
    workflows created less than ``orphaned_after`` ago (too young to be
    orphaned). A sweep reads at most ``pages`` pages and goes on where it
    stopped next time, starting again at the window's beginning once it
    reached its end. A new sweep's window begins at the oldest workflow,
    so it walks the history once. A workflow it cast is cast again only if
    it still has not changed ``orphaned_after`` seconds later.

    A worker can get a workflow twice this way (the orphan's worker was
    slow, not dead; two conductors overlap in a roll): workers go on from
    where a workflow is (:meth:`WorkerService.run_workflow`). ``clock``
    returns the aware current time, compared with the ``updated_at`` the
    conductors write: their clocks must agree to well within
    ``orphaned_after``."""

    def __init__(self, release: Release, store: Store, transport: Transport, *,
                 orphaned_after: float = 5.0, page: int = 100, pages: int = 2,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if orphaned_after <= 0:
            raise ValueError("orphaned_after must be a positive number of seconds")
        if page < 1 or pages < 1:
            raise ValueError("page and pages must be at least 1")
        self.release = release
        self.store = store
        self.transport = transport
        self.orphaned_after = orphaned_after
        self.page = page
        self.pages = pages
        self.clock = clock
        #: Workflows cast to the workers again so far.
        self.redispatched = 0
        # The window's beginning (a cursor; None: the first workflow), and
        # where the next sweep goes on (None: at the window's beginning).
        self._start: str | None = None
        self._resume: str | None = None
        # Workflow id -> when this sweep last cast it.
        self._cast: dict[uuid.UUID, datetime] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self, interval: float) -> OrphanSweep:
        """Sweep every ``interval`` seconds (each wait jittered by up to
        half, so that conductors side by side do not sweep in step) in a
        thread, until :meth:`stop`; returns self."""
        if interval <= 0:
            raise ValueError("interval must be a positive number of seconds")
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True,
                                            name=f"orphan-sweep-{self.release.key}")
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sweeping (a sweep under way finishes first)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join()

    def _run(self, interval: float) -> None:
        while not self._stopping.wait(interval * random.uniform(0.5, 1.5)):
            try:
                self.sweep()
            except Exception as exc:  # the store or the bus away: the next sweep tries again
                _LOG.warning("no sweep for orphaned workflows this time: %s: %s",
                             type(exc).__name__, exc)

    def sweep(self) -> list[uuid.UUID]:
        """One sweep: read the window on from where the last one stopped,
        at most ``pages`` pages, and cast the orphans found; returns their
        ids. A store or transport error is raised (the next sweep reads
        the same pages again)."""
        now = self.clock()
        cutoff = now - timedelta(seconds=self.orphaned_after)
        self._cast = {key: when for key, when in self._cast.items() if when >= cutoff}
        at_start = self._resume is None
        cursor = self._start if at_start else self._resume
        found: list[uuid.UUID] = []
        for _ in range(self.pages):
            page = self.store.query(cast(type[VersionedObject], self.release.workflow),
                                    order_by="created_at", limit=self.page, cursor=cursor)
            workflows = cast(list[WorkflowShape], page.items)
            young = [w for w in workflows if w.created_at >= cutoff]
            under_way = False
            for workflow in workflows[:len(workflows) - len(young)]:
                if workflow.status in _UNDER_WAY:
                    under_way = True
                    if self._last_moved(workflow) < cutoff:
                        self._redispatch(workflow, now)
                        found.append(workflow.id)
            if young or page.next_cursor is None:  # the window's end
                self._resume = None
                return found
            cursor = page.next_cursor
            if at_start and not under_way:
                self._start = cursor  # every workflow before it has ended
            else:
                at_start = False
        self._resume = None if at_start else cursor
        return found

    def _last_moved(self, workflow: WorkflowShape) -> datetime:
        """When ``workflow`` last changed, or this sweep last cast it."""
        cast_at = self._cast.get(workflow.id)
        return workflow.updated_at if cast_at is None else max(workflow.updated_at, cast_at)

    def _redispatch(self, workflow: WorkflowShape, now: datetime) -> None:
        idle = (now - workflow.updated_at).total_seconds()
        _LOG.warning("workflow %s of project %s is still %s and unchanged for %.1f s (its "
                     "worker died?): casting it to the workers again", workflow.id,
                     workflow.project, workflow.status, idle)
        self.transport.cast(WORKERS_TOPIC, {"project": workflow.project,
                                            "workflow_id": str(workflow.id)})
        self._cast[workflow.id] = now
        self.redispatched += 1


class ConductorService(FleetService):
    """The conductor of ``release``: the store at ``options.db`` (with the
    collections as they are after contract, if ``contracted``), writing at
    the fleet's pins, served on the ``conductor`` topic. Every
    ``sweep_interval`` seconds (None: never) its :class:`OrphanSweep` casts
    the workflows unchanged for ``orphaned_after`` seconds to the workers
    again (see :attr:`redispatched`)."""

    role = "conductor"

    def __init__(self, release: Release, slot: str, options: FleetOptions, *,
                 contracted: bool = False, orphaned_after: float = 5.0,
                 sweep_interval: float | None = 1.0) -> None:
        super().__init__(release, slot, options)
        self.contracted = contracted
        self.orphaned_after = orphaned_after
        self.sweep_interval = sweep_interval
        self.store: Store | None = None
        self._conductor: Conductor | None = None
        self._sweep: OrphanSweep | None = None
        self._status: Server | None = None

    @property
    def redispatched(self) -> int:
        """Orphaned workflows this conductor cast to the workers again
        (still readable once it stopped)."""
        return 0 if self._sweep is None else self._sweep.redispatched

    def start(self) -> ConductorService:
        """Open the store, join the fleet (the store then writes at its
        pins), bind the release to the store, serve calls and sweep for
        orphaned workflows."""
        store = self.store = self.release.open_store(self.options.db,
                                                     contracted=self.contracted)
        try:
            self._join(stores=[store])
            self.release.bind(store)
            self._warm_up(store)
            self._conductor = Conductor(self.options.transport, self.release.registry,
                                        store=store, purge_interval=None).start()
            # the operator dashboards of APIs without store access ask here
            self._status = serve_status(self.options.transport, ReleaseStatus(self.release))
            if self.sweep_interval is not None:
                self._sweep = OrphanSweep(self.release, store, self.options.transport,
                                          orphaned_after=self.orphaned_after)
                self._sweep.start(self.sweep_interval)
        except BaseException:
            self.stop()
            raise
        return self

    def _warm_up(self, store: Store) -> None:
        """Read each table once before taking calls: what the store prepares
        on first use (its statements, its row readers) is then ready, and
        the first calls the new conductor takes mid-roll do not wait for it."""
        nobody, nothing = "warm-up", uuid.UUID(int=0)
        with store.unit_of_work(readonly=True) as unit:
            for cls in self.release.classes.values():
                unit.query(cls, project=nobody, limit=1)
                with contextlib.suppress(NotFoundError):  # nothing there, as meant
                    unit.get(cls, nothing, project=nobody)

    def stop(self) -> None:
        """Stop sweeping and taking calls (those in flight finish), leave
        the fleet, unbind the release if this store is still the bound one."""
        if self._sweep is not None:
            self._sweep.stop()
        status, self._status = self._status, None
        if status is not None:
            status.stop()
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
    workflow step that failed unexpectedly (not of a step another worker
    made first). :attr:`finished` counts the workflows taken that ended."""

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
        its final status.

        Safe when another worker runs the same workflow (a start replayed
        and cast again, an orphan cast again while its worker was only
        slow) and when it has ended already (it returns its status): the
        worker reads where the workflow is first, and each step names the
        assembly status the worker last saw, so a step someone else made
        meanwhile is refused, not made twice. The worker then reads again
        and goes on from there, or returns once the workflow has ended. A
        refusal while the assembly has not moved is an error, raised."""
        workflow, seen = self._where(project, workflow_id)
        while workflow.status in _UNDER_WAY:
            self._work()
            try:
                run = self.release.advance_workflow(project, workflow_id, from_status=seen)
            except Exception as exc:
                if not _raised(exc, IllegalTransitionError):
                    raise
                refused_from = seen
                workflow, seen = self._where(project, workflow_id)
                if workflow.status in _UNDER_WAY and seen == refused_from:
                    raise  # nothing moved it: not a race
            else:
                workflow, seen = run["workflow"]["object"], run["assembly"]["object"].status
        self.finished += 1
        return str(workflow.status)

    def _work(self) -> None:
        """The simulated build, test or deploy of one step."""
        time.sleep(self.step_delay)

    def _where(self, project: str, workflow_id: str) -> tuple[WorkflowShape, str]:
        """Workflow ``workflow_id`` as stored, and then its assembly's status."""
        workflow = self.release.fetch(self.release.workflow, project, workflow_id)["object"]
        assembly = self.release.fetch(self.release.assembly, project, workflow.assembly_id)
        return workflow, str(assembly["object"].status)

    def stop(self) -> None:
        """Take no more workflows, finish those taken, leave the fleet."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._leave()


def _raised(exc: BaseException, cls: type[Exception]) -> bool:
    """Whether ``exc`` is ``cls``, raised here or by a flow on the conductor
    (a :class:`RemoteError` naming it)."""
    return isinstance(exc, cls) or (isinstance(exc, RemoteError) and exc.exc_type == cls.__name__)


class ApiService(FleetService):
    """The HTTP API of ``release`` for the holders of ``tokens`` (token ->
    project), on 127.0.0.1 and a free port (see :attr:`url`); with
    ``operator_token``, also the operator dashboard, whose status it asks
    of the conductor."""

    role = "api"

    def __init__(self, release: Release, slot: str, options: FleetOptions, *,
                 tokens: Mapping[str, str], port: int = 0,
                 operator_token: str | None = None) -> None:
        super().__init__(release, slot, options)
        self.tokens = dict(tokens)
        self.port = port
        self.operator_token = operator_token
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
            status = None if self.operator_token is None else RemoteStatus(
                self.options.transport)
            api = create_api(self.release, TokenMap(self.tokens),
                             operator_token=self.operator_token, status_source=status)
            self._server = ApiServer(api, port=self.port).start()
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
