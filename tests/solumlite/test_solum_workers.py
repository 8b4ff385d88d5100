"""Workers and the conductor's orphan sweep, on real components: a
conductor with the store, workers taking workflows from the ``workers``
topic, this test as the API (its flows go to the conductor). On SQLite
with the in-process transport, and on PostgreSQL with RabbitMQ.

A worker killed with SIGKILL takes the workflows it had with it (a cast is
acknowledged when taken): here a "doomed" worker takes the cast and never
runs it. Workers may get a workflow twice (a start replayed, an orphan
cast again while its worker was slow): each step then happens once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from solum_support import RELEASES, Stores, add_app, add_pack, backend_url, open_stores

from rollsafe.rpc import InProcessTransport, Transport
from solumlite import Release
from solumlite.demo.services import (
    WORKERS_TOPIC,
    ConductorService,
    FleetOptions,
    FleetService,
    OrphanSweep,
    WorkerService,
    hand_workflows_to_workers,
    remote_calls,
)
from solumlite.domain import utcnow
from solumlite.lifecycle import STEPS
from support import FakeClock, wait_for

P = "acme"
#: How long a workflow stays unchanged before the conductor casts it again
#: (short for the tests; a step here takes milliseconds).
ORPHANED_AFTER = 0.5
#: Seconds between two sweeps of the conductor.
SWEEP = 0.05
#: The setups: store and transport.
SETUPS = ("sqlite-inprocess", "postgresql-rabbitmq")


def _transport(setup: str, request: pytest.FixtureRequest) -> Transport:
    if setup == "sqlite-inprocess":
        return InProcessTransport()
    from rollsafe.rpc.messaging import OsloMessagingTransport

    # An exchange of its own: runs sharing the broker never meet.
    return OsloMessagingTransport(str(request.getfixturevalue("rabbit_url")),
                                  exchange=f"test-{uuid.uuid4().hex[:12]}")


class Services:
    """Services of ``release`` on ``stores``' backend and ``transport``,
    stopped by :meth:`close` (workers first, as in a roll); this test is
    the API: its flows go to the conductor, its workflows to the workers."""

    def __init__(self, release: Release, stores: Stores, transport: Transport) -> None:
        self.release = release
        self.options = FleetOptions(stores.url, transport, host="test")
        self.transport = transport
        #: What the workers and the hand-over reported as failed.
        self.errors: list[str] = []
        self.running: list[FleetService] = []
        remote_calls(release, transport)
        self.hook = hand_workflows_to_workers(release, transport, on_error=self.errors.append)

    def conductor(self, **options: Any) -> ConductorService:
        """A conductor, started."""
        service = ConductorService(self.release, "conductor", self.options, **options).start()
        self.running.append(service)
        return service

    def worker(self, slot: str) -> WorkerService:
        """A worker, started (no delay between steps)."""
        service = WorkerService(self.release, slot, self.options, step_delay=0.0,
                                on_error=self.errors.append).start()
        self.running.append(service)
        return service

    def close(self) -> None:
        order = {"worker": 0, "conductor": 1}
        for service in sorted(self.running, key=lambda s: order[s.role]):
            service.stop()
        self.release.workflow_started.remove(self.hook)
        self.release.registry.indirection = None
        self.transport.close()

    # -- reading back (through the conductor) ------------------------------------
    def workflow(self, workflow_id: uuid.UUID) -> Any:
        return self.release.fetch(self.release.workflow, P, workflow_id)

    def status(self, workflow_id: uuid.UUID) -> str:
        return str(self.workflow(workflow_id)["object"].status)

    def assembly_status(self, workflow_id: uuid.UUID) -> str:
        assembly_id = self.workflow(workflow_id)["object"].assembly_id
        return str(self.release.fetch(self.release.assembly, P, assembly_id)["object"].status)

    def outcome(self, app_id: uuid.UUID, workflow_id: uuid.UUID) -> dict[str, Any]:
        """What the workflow left: its status, its assembly's, the app's,
        and the kinds of the components made (one each when every step
        happened once)."""
        workflow = self.workflow(workflow_id)["object"]
        assembly = self.release.fetch(self.release.assembly, P, workflow.assembly_id)["object"]
        app = self.release.fetch(self.release.app, P, app_id)["object"]
        components = self.release.page(self.release.component, P, limit=100, app_id=app_id)
        return {"workflow": workflow.status, "assembly": assembly.status, "app": app.status,
                "components": sorted(c["object"].kind for c in components["items"])}


FINISHED = {"workflow": "succeeded", "assembly": "ready", "app": "deployed",
            "components": ["artifact", "stack"]}


@pytest.fixture(params=SETUPS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    kind = str(request.param).split("-")[0]
    with open_stores(backend_url(kind, request, tmp_path)) as opened:
        yield opened


@pytest.fixture(params=sorted(RELEASES))
def release(request: pytest.FixtureRequest) -> Release:
    return RELEASES[request.param]


@pytest.fixture
def services(request: pytest.FixtureRequest, stores: Stores, release: Release
             ) -> Iterator[Services]:
    setup = request.node.callspec.params["stores"]
    made = Services(release, stores, _transport(setup, request))
    try:
        yield made
    finally:
        made.close()


def _started(services: Services, *, cast: bool = True) -> tuple[uuid.UUID, uuid.UUID]:
    """(app id, workflow id) of a workflow just started, and cast to the
    workers unless not ``cast``."""
    release = services.release
    add_pack(release, P)
    app_id = add_app(release, P)
    if not cast:
        release.workflow_started.remove(services.hook)
    try:
        return app_id, release.start_workflow(P, app_id)["workflow"]["object"].id
    finally:
        if not cast:
            release.workflow_started.append(services.hook)


# -- the orphan: its worker died -------------------------------------------------


def test_a_workflow_whose_worker_died_is_cast_again_and_finished_by_a_live_worker(
        services: Services) -> None:
    conductor = services.conductor(orphaned_after=ORPHANED_AFTER, sweep_interval=SWEEP)
    taken: list[dict[str, Any]] = []
    doomed = services.transport.serve(WORKERS_TOPIC, taken.append)  # takes, never runs
    app_id, workflow_id = _started(services)
    wait_for(lambda: len(taken) >= 1, "the doomed worker takes the workflow")
    doomed.stop()  # killed: the message it took is gone with it
    assert services.status(workflow_id) == "queued"

    worker = services.worker("worker-1")
    wait_for(lambda: services.status(workflow_id) == "succeeded",
             "the conductor casts the orphan again and the live worker finishes it")

    assert services.outcome(app_id, workflow_id) == FINISHED
    assert conductor.redispatched >= 1 and worker.finished >= 1
    assert services.errors == []
    conductor.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("orphan-sweep")]
    assert conductor.redispatched >= 1  # still readable for the report


def test_a_workflow_orphaned_mid_way_is_finished_from_where_it_stopped(
        services: Services) -> None:
    conductor = services.conductor(orphaned_after=ORPHANED_AFTER, sweep_interval=SWEEP)
    taken: list[dict[str, Any]] = []
    doomed = services.transport.serve(WORKERS_TOPIC, taken.append)
    app_id, workflow_id = _started(services)
    wait_for(lambda: len(taken) >= 1, "the doomed worker takes the workflow")
    # It made two steps before it was killed.
    for _ in range(2):
        services.release.advance_workflow(P, workflow_id)
    doomed.stop()
    assert services.status(workflow_id) == "running"

    services.worker("worker-1")
    wait_for(lambda: services.status(workflow_id) == "succeeded",
             "a live worker finishes the orphan")

    assert services.outcome(app_id, workflow_id) == FINISHED
    assert conductor.redispatched >= 1 and services.errors == []


# -- the same workflow twice ------------------------------------------------------


def test_two_workers_given_the_same_workflows_make_each_step_once(services: Services) -> None:
    services.conductor(sweep_interval=None)  # only the duplicates sent here
    first, second = services.worker("worker-1"), services.worker("worker-2")
    add_pack(services.release, P)
    started = []
    for i in range(6):
        app_id = add_app(services.release, P, f"shop{i}")
        run = services.release.start_workflow(P, app_id)  # cast once by the hook...
        workflow_id = run["workflow"]["object"].id
        services.transport.cast(WORKERS_TOPIC, {"project": P,  # ...and once more
                                                "workflow_id": str(workflow_id)})
        started.append((app_id, workflow_id))

    wait_for(lambda: first.finished + second.finished == 2 * len(started),
             "both copies of every workflow run to the end")

    for app_id, workflow_id in started:
        assert services.outcome(app_id, workflow_id) == FINISHED
    assert services.errors == []


class OvertakenWorker(WorkerService):
    """A worker that notes the assembly status (``look()``) it works in at
    each step, and whose first step takes so long that ``meanwhile`` (what
    another worker does) happens before it reports that step."""

    def __init__(self, *args: Any, look: Callable[[], str], meanwhile: Callable[[], object],
                 **options: Any) -> None:
        super().__init__(*args, **options)
        self.look = look
        self.meanwhile: Callable[[], object] | None = meanwhile
        self.worked_in: list[str] = []

    def _work(self) -> None:
        self.worked_in.append(self.look())
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()


@pytest.mark.parametrize("meanwhile", ["one step", "the whole workflow"])
def test_a_worker_overtaken_by_another_goes_on_from_where_the_workflow_is(
        services: Services, meanwhile: str) -> None:
    services.conductor(sweep_interval=None)
    release = services.release
    app_id, workflow_id = _started(services, cast=False)  # this test hands it over
    other = WorkerService(release, "worker-2", services.options, step_delay=0.0,
                          on_error=services.errors.append)
    slow = OvertakenWorker(
        release, "worker-1", services.options, step_delay=0.0, on_error=services.errors.append,
        look=lambda: services.assembly_status(workflow_id),
        meanwhile=(lambda: release.advance_workflow(P, workflow_id)) if meanwhile == "one step"
        else (lambda: other.run_workflow(P, str(workflow_id))))

    assert slow.run_workflow(P, str(workflow_id)) == "succeeded"

    assert services.outcome(app_id, workflow_id) == FINISHED
    assert slow.finished == 1 and services.errors == []
    if meanwhile == "one step":
        # It did the work of every step it reported: none was reported
        # done by a worker that worked on another.
        steps = release.workflow_steps(services.workflow(workflow_id)["object"])
        running = {step.name: step.running for step in STEPS}
        assert slow.worked_in == ["queued", *(running[name] for name in steps)]
    else:
        assert slow.worked_in == ["queued"] and other.finished == 1


def test_a_finished_workflow_cast_again_changes_nothing(services: Services) -> None:
    services.conductor(sweep_interval=None)
    worker = services.worker("worker-1")
    app_id, workflow_id = _started(services)
    wait_for(lambda: worker.finished == 1, "the worker finishes the workflow")
    before = services.workflow(workflow_id)["revision"], services.outcome(app_id, workflow_id)

    services.transport.cast(WORKERS_TOPIC, {"project": P, "workflow_id": str(workflow_id)})
    wait_for(lambda: worker.finished == 2, "the worker takes the workflow again")

    after = services.workflow(workflow_id)["revision"], services.outcome(app_id, workflow_id)
    assert after == before and before[1] == FINISHED
    assert services.errors == []


def test_a_workflow_that_does_not_exist_is_reported_as_an_error(services: Services) -> None:
    services.conductor(sweep_interval=None)
    services.worker("worker-1")

    services.transport.cast(WORKERS_TOPIC, {"project": P, "workflow_id": str(uuid.uuid4())})

    wait_for(lambda: services.errors != [], "the worker reports the failure")
    assert len(services.errors) == 1 and "NotFoundError" in services.errors[0]


# -- the sweep, one round at a time ---------------------------------------------------


def test_the_sweep_reads_a_page_at_a_time_and_casts_each_orphan_once_per_period(
        release: Release, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with open_stores(backend_url("sqlite", request, tmp_path)) as stores, \
            release.bound(stores.open(release)) as store:
        add_pack(release, P)
        app_id = add_app(release, P)
        ids = [release.start_workflow(P, app_id)["workflow"]["object"].id for _ in range(5)]
        ended, orphans = [ids[0], ids[1], ids[3]], [ids[2], ids[4]]
        for workflow_id in ended:
            while release.fetch(release.workflow, P, workflow_id)["object"].status != \
                    "succeeded":
                release.advance_workflow(P, workflow_id)
        release.advance_workflow(P, ids[2])  # running, then its worker died; ids[4] queued
        revisions = {w: release.fetch(release.workflow, P, w)["revision"] for w in ids}
        transport = InProcessTransport()
        cast: list[dict[str, Any]] = []
        transport.serve(WORKERS_TOPIC, cast.append)
        clock = FakeClock(utcnow())
        sweep = OrphanSweep(release, store, transport, orphaned_after=5.0, page=2, pages=1,
                            clock=clock)
        try:
            assert [sweep.sweep() for _ in range(3)] == [[], [], []]  # all too young

            clock.advance(6.0)  # nothing changed since: the unfinished ones are orphans
            rounds = [sweep.sweep() for _ in range(5)]
            assert rounds == [[], [ids[2]], [ids[4]], [], []]  # ended pages left behind

            clock.advance(6.0)  # cast, and still unchanged: cast again, once
            rounds = [sweep.sweep() for _ in range(3)]
        finally:
            transport.close()
        assert rounds == [[ids[2]], [ids[4]], []]
        assert sweep.redispatched == 4
        wait_for(lambda: len(cast) == 4, "the casts arrive")
        assert sorted(m["workflow_id"] for m in cast) == sorted(2 * [str(w) for w in orphans])
        # the sweep only reads: nothing it looked at changed
        assert {w: release.fetch(release.workflow, P, w)["revision"] for w in ids} == revisions
