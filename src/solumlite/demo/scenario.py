"""The live upgrade of solumlite from release N to N+1, under client traffic.

:func:`run_demo` runs the whole scenario and returns what the clients saw:

1. **steady N**: release N runs (a conductor, workers, API instances) while
   client threads use the API over HTTP, checking every response;
2. **expand**: the schema gains what N+1 needs, nothing N minds;
3. **roll**: each service is replaced by its N+1 twin, one at a time
   (conductor, then workers, then APIs): the new one starts, the old one
   stops taking work, finishes what it has, leaves the fleet and exits;
   once no N service is left the fleet's pins rise to N+1's versions (in
   the kill -9 fault run, right after the conductor's replacement the
   processes named in ``DemoOptions.kill`` are killed with SIGKILL one by
   one and restarted, as a supervisor would, a second later);
4. **migrate**: N+1's online migrations move the old records forward;
5. **contract**: the contract gate agrees, the conductor switches to the
   contracted collections, and contract drops what only N used;
6. **steady N+1**, then the traffic stops and every acknowledged write is
   read back (lost: missing or different).

Everything is recorded in a :class:`~solumlite.demo.timeline.Timeline`:
phases, each service's release over time, every request, the object
versions seen on the wire and stored.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import httpx

from rollsafe.rpc import InProcessTransport
from rollsafe.storage import Store, migrate, open_backend
from rollsafe.storage.sql import SqlBackend
from rollsafe.upgrade.gate import check_contract
from solumlite.demo.processes import ServiceProcess
from solumlite.demo.progress import Progress
from solumlite.demo.report import write_html
from solumlite.demo.services import (
    ApiService,
    ConductorService,
    FleetOptions,
    WorkerService,
    hand_workflows_to_workers,
    remote_calls,
)
from solumlite.demo.timeline import DemoSummary, Timeline
from solumlite.demo.traffic import (
    Client,
    Endpoints,
    Ledger,
    WriteCheck,
    check_writes,
    unfinished_workflows,
)
from solumlite.demo.wire import WatchedTransport
from solumlite.domain import Run
from solumlite.release import TABLES, Release
from solumlite.releases import n, n1

__all__ = ["KILLABLE", "PHASES", "PROJECT_TOKENS", "UPGRADE_PHASES", "DemoOptions",
           "DemoRefused", "DemoResult", "Fault", "count_stored", "run_demo"]

#: The phases of a run, in order.
PHASES = ("steady N", "expand", "roll", "migrate", "contract", "steady N+1")
#: The phases that make "during the upgrade" (their p99 against steady N's).
UPGRADE_PHASES = ("expand", "roll", "migrate", "contract")

#: A fault the run injects, to prove that the verdict catches it (tests):
#: ``lost-write`` deletes an acknowledged app before the final check;
#: ``conductor-outage`` stops the conductor for longer than clients retry.
Fault = Literal["lost-write", "conductor-outage"]

#: The roles the kill -9 fault run can kill, in the order it kills them,
#: and the slot it kills of each.
KILLABLE = {"conductor": "conductor", "worker": "worker-1", "api": "api-1"}

#: Project -> bearer token of the demo's two projects.
PROJECT_TOKENS = {"acme": "demo-token-acme", "globex": "demo-token-globex"}


class DemoRefused(ValueError):
    """The demo cannot run where it was pointed (a database already in use)."""


@dataclass
class DemoOptions:
    """How to run the demo. ``duration``: seconds the run takes, roughly
    (the phases share it); ``db``: the store URL (None: a SQLite file in a
    temporary folder); ``transport``: an oslo.messaging URL (``rabbit://``)
    to run every service as a process of its own (None: every service is a
    set of threads of this process, on the in-process transport);
    ``clients``, ``apis``, ``workers``: how many of each; ``report``: where
    the HTML report goes; ``live``: the live panel (None: when stderr is a
    terminal); ``quiet``: no progress at all; ``logs``: a folder to keep
    the service processes' output in (None: a temporary one); ``kill``:
    the roles (:data:`KILLABLE`) whose process the kill -9 fault run kills
    mid-upgrade, each restarted ``restart_delay`` seconds later (needs
    ``transport``: separate processes)."""

    duration: float = 60.0
    db: str | None = None
    transport: str | None = None
    clients: int = 3
    apis: int = 2
    workers: int = 2
    report: Path = Path("solumlite-demo-report.html")
    live: bool | None = None
    quiet: bool = False
    client_pause: float = 0.05
    step_delay: float = 0.05
    stale_after: float = 6.0
    fault: Fault | None = None
    seed: int | None = None
    logs: Path | None = None
    kill: tuple[str, ...] = ()
    restart_delay: float = 1.0

    def __post_init__(self) -> None:
        if self.duration < 5:
            raise ValueError("the demo needs --duration of at least 5 seconds")
        unknown = sorted(set(self.kill) - set(KILLABLE))
        if unknown:
            raise ValueError(f"--kill {unknown[0]}: the roles that can be killed are "
                             f"{', '.join(KILLABLE)}")
        if len(set(self.kill)) != len(self.kill):
            raise ValueError("--kill names each role at most once")
        scheme = (self.db or "sqlite://").split(":", 1)[0].split("+", 1)[0].lower()
        if scheme not in ("sqlite", "postgresql"):
            raise ValueError(f"--db {self.db}: the demo expands and contracts a SQL schema: "
                             "give sqlite:///PATH or postgresql://...")
        if self.kill and self.transport is None:
            raise ValueError("--kill kills service processes: run them as processes of "
                             "their own with --transport rabbit://... (and --db)")
        for name in ("clients", "apis", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass
class DemoResult:
    """A finished run: its figures, the report written, and what the final
    check found wrong (empty when nothing)."""

    summary: DemoSummary
    report: Path
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No failed request, no lost write, nothing failed in the background."""
        return self.summary.passed and not self.problems


def count_stored(store: Store) -> dict[str, dict[str, int]]:
    """Object name -> stored version -> records, over the demo's tables."""
    import sqlalchemy as sa

    out: dict[str, dict[str, int]] = {}
    with _sql(store).engine.connect() as conn:
        for name, (table, _) in TABLES.items():
            rows = conn.execute(sa.text(
                f"SELECT rs_version, COUNT(*) FROM {table} GROUP BY rs_version")).all()
            out[name] = {str(version): int(count) for version, count in rows}
    return out


class _Service(Protocol):
    """A running service as the scenario drives it: in a thread
    (:class:`~solumlite.demo.services.FleetService`) or a process
    (:class:`~solumlite.demo.processes.ServiceProcess`)."""

    role: str
    slot: str
    release: Release

    @property
    def url(self) -> str:
        """An API's URL."""

    def start(self) -> object:
        """Start serving."""

    def stop(self) -> None:
        """Stop gracefully."""

    def refresh_pins(self) -> dict[str, str] | None:
        """Recompute the fleet pins now (None: the service does it itself)."""


class _Run:
    """One run of the scenario: every service a set of threads of this
    process on the in-process transport, or (with ``options.transport``)
    a process of its own; one store."""

    def __init__(self, options: DemoOptions, timeline: Timeline, stack: ExitStack) -> None:
        self.options = options
        self.timeline = timeline
        self.stack = stack
        self.folder = Path(tempfile.mkdtemp(prefix="solumlite-demo-"))
        stack.callback(shutil.rmtree, self.folder, True)
        self.db = options.db or f"sqlite:///{self.folder / 'solum.db'}"
        self.logs = self.folder if options.logs is None else options.logs
        self.logs.mkdir(parents=True, exist_ok=True)
        inner = InProcessTransport(workers=8)
        self.transport = WatchedTransport(inner, timeline.saw_on_wire)
        stack.callback(self.transport.close)
        self.fleet = FleetOptions(self.db, self.transport, stale_after=options.stale_after)
        self.endpoints = Endpoints()
        self.ledger = Ledger()
        self.running: dict[str, _Service] = {}
        self.clients: list[Client] = []
        self.ops = n.RELEASE.open_store(self.db)   # the operator's view of the store
        stack.callback(self.ops.close)

    # -- the fleet ------------------------------------------------------------
    def releases(self) -> dict[str, str]:
        """Slot -> release of the running services."""
        return {slot: service.release.name for slot, service in list(self.running.items())}

    def launch(self, service: _Service) -> None:
        """Start ``service`` in its slot (the slot's old holder keeps
        running until :meth:`retire`)."""
        service.start()
        if service.role == "api":
            self.endpoints.add(service.url)
        self.timeline.service_release(service.slot, service.release.name)

    def retire(self, service: _Service) -> None:
        """Stop ``service`` gracefully (an API leaves the rotation first)."""
        if service.role == "api":
            self.endpoints.retire(service.url)
        service.stop()
        if isinstance(service, ServiceProcess):
            stats = service.wire_stats()
            for name, version, times in stats["wire"]:
                self.timeline.saw_on_wire(name, version, times)
            for message, times in stats["errors"].items():
                for _ in range(times):
                    self.timeline.background_error(message)
            self.timeline.workflows_redispatched(int(stats.get("redispatched", 0)))
        elif isinstance(service, ConductorService):
            self.timeline.workflows_redispatched(service.redispatched)

    def replace(self, slot: str, new: _Service) -> None:
        """Start ``new``, then stop the service holding ``slot``."""
        old = self.running[slot]
        self.launch(new)
        self.running[slot] = new
        self.retire(old)
        what = "contracted " if getattr(new, "contracted", False) else ""
        self.timeline.event(f"{slot}: release {old.release.name} -> {what}{new.release.name}")

    def make(self, role: str, release: Release, slot: str, *, contracted: bool = False
             ) -> _Service:
        """A new service of ``role`` (not started)."""
        tokens = {token: project for project, token in PROJECT_TOKENS.items()}
        if self.options.transport is not None:
            return ServiceProcess(role, release, slot, db=self.db,
                                  transport=self.options.transport, folder=self.logs,
                                  stale_after=self.options.stale_after, contracted=contracted,
                                  step_delay=self.options.step_delay, tokens=tokens)
        if role == "conductor":
            return ConductorService(release, slot, self.fleet, contracted=contracted)
        if role == "worker":
            return WorkerService(release, slot, self.fleet, step_delay=self.options.step_delay,
                                 on_error=self.timeline.background_error)
        return ApiService(release, slot, self.fleet, tokens=tokens)

    def slots(self) -> list[tuple[str, str]]:
        """(slot, role), in the order the roll replaces them."""
        return ([("conductor", "conductor")]
                + [(f"worker-{i}", "worker") for i in range(1, self.options.workers + 1)]
                + [(f"api-{i}", "api") for i in range(1, self.options.apis + 1)])

    # -- the scenario ---------------------------------------------------------------
    def wait(self, seconds: float) -> None:
        """Let the traffic run ``seconds`` (failing early if a client crashed)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for client in self.clients:
                if client.crashed is not None:
                    raise RuntimeError(f"client {client.label} crashed: "
                                       f"{client.crashed!r}") from client.crashed
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def store_snapshot(self, label: str) -> None:
        """Count the stored versions now."""
        self.timeline.stored(label, count_stored(self.ops))

    def refuse_a_used_database(self) -> None:
        """:class:`DemoRefused` if the database already has any of the demo's
        tables: the run creates them, drops columns at contract and checks
        every record it wrote, so it needs an empty database (it changes
        nothing before refusing)."""
        import sqlalchemy as sa

        wanted = {collection.name for collection in self.ops.collections}
        with _sql(self.ops).engine.connect() as conn:
            found = sorted(wanted & set(sa.inspect(conn).get_table_names()))
        if found:
            raise DemoRefused(f"--db already has tables the demo creates ({', '.join(found)}): "
                              "point it at an empty database (or a new PostgreSQL schema, "
                              "postgresql://...?options=-csearch_path%3DNAME)")

    def start_release_n(self) -> None:
        """Schema, fleet and services of release N, and the clients' setup."""
        self.refuse_a_used_database()
        self.ops.ensure_schema()
        for release in (n.RELEASE, n1.RELEASE):
            if self.options.transport is not None:
                break  # each service process sets up its own
            remote_calls(release, self.transport)
            hook = hand_workflows_to_workers(release, self.transport,
                                             on_error=self.timeline.background_error)
            self.stack.callback(_remove, release.workflow_started, hook)
            self.stack.callback(_no_indirection, release)
        self.stack.callback(self.stop_all)
        for slot, role in self.slots():
            service = self.make(role, n.RELEASE, slot)
            self.launch(service)
            self.running[slot] = service
        self.timeline.event(f"release N started: {', '.join(self.releases())}")
        url = self.endpoints.live[0]
        for project, token in PROJECT_TOKENS.items():
            response = httpx.post(f"{url}/v1/languagepacks", timeout=15.0,
                                  headers={"Authorization": f"Bearer {token}"},
                                  json={"name": "python", "base_image": "python:3.12"})
            if response.status_code != 201:
                raise RuntimeError(f"cannot create the demo's language pack in {project}: "
                                   f"HTTP {response.status_code} {response.text[:200]}")

    def start_clients(self) -> None:
        """Start the client threads (alternating between the projects)."""
        projects = list(PROJECT_TOKENS.items())
        for i in range(self.options.clients):
            project, token = projects[i % len(projects)]
            stranger = projects[(i + 1) % len(projects)][1]
            seed = None if self.options.seed is None else self.options.seed + i
            client = Client(f"c{i + 1}", self.endpoints, self.timeline, self.ledger,
                            token=token, project=project, stranger=stranger,
                            pause=self.options.client_pause, seed=seed)
            self.clients.append(client)
            client.start()
        self.stack.callback(self.stop_clients)

    def stop_clients(self) -> None:
        """Halt the clients and wait for them."""
        for client in self.clients:
            client.halt()
        for client in self.clients:
            client.join(30.0)
        self.clients = [c for c in self.clients if c.is_alive()]
        if self.clients:
            raise RuntimeError(f"{len(self.clients)} client thread(s) did not stop")

    def stop_all(self) -> None:
        """Stop every running service (APIs first, the conductor last)."""
        order = {"api": 0, "worker": 1, "conductor": 2}
        failures: list[BaseException] = []
        for slot, service in sorted(self.running.items(), key=lambda i: order[i[1].role]):
            try:
                self.retire(service)
            except Exception as exc:  # stop the others all the same
                failures.append(exc)
                if isinstance(service, ServiceProcess):
                    service.kill()
            self.timeline.service_release(slot, None)
        self.running.clear()
        if failures:
            raise failures[0]

    @contextmanager
    def operator_store(self) -> Iterator[Store]:
        """A store of release N+1 writing at the fleet's pins, as the
        operator's commands open it (``rollsafe migrate`` and the gate)."""
        fleet = self.fleet.open_fleet()
        try:
            pins = fleet.pins()
        finally:
            fleet.store.close()
        store = n1.RELEASE.open_store(self.db, storage_versions=pins)
        try:
            yield store
        finally:
            store.close()

    @contextmanager
    def schema(self) -> Iterator[SqlBackend]:
        """A fresh backend on the store, for ``rollsafe db expand / contract``."""
        backend = open_backend(self.db)
        try:
            if not isinstance(backend, SqlBackend):
                raise TypeError("the demo's expand and contract need a SQL store "
                                "(sqlite:/// or postgresql://)")
            yield backend
        finally:
            backend.close()

    def expand(self) -> None:
        """Add what N+1 needs to the schema (``rollsafe db expand``)."""
        with self.schema() as backend:
            plan = migrate.expand(backend, n1.RELEASE.collections())
        for step in plan.describe() or ["expand: nothing to add"]:
            self.timeline.event(step)

    def roll(self, seconds: float) -> None:
        """Replace every service by its N+1 twin, one at a time, spread over
        ``seconds`` (the kill -9 fault run kills its victims right after the
        conductor's replacement); then wait until no release N service is
        left in the fleet and raise the pins."""
        slots = self.slots()
        pause = seconds / (len(slots) + 1)
        for index, (slot, role) in enumerate(slots):
            self.wait(pause)
            self.replace(slot, self.make(role, n1.RELEASE, slot))
            if index == 0:
                for victim in (r for r in KILLABLE if r in self.options.kill):
                    self.wait(pause / 2)
                    self.kill_and_restart(KILLABLE[victim])
        pins = self.await_release_n_gone()
        self.timeline.event("no release N service left; pins now "
                            + ", ".join(f"{k} {v}" for k, v in sorted(pins.items())))
        self.wait(pause)

    def await_release_n_gone(self) -> dict[str, str]:
        """Wait until the fleet has no live release N service, and return
        its pins then. A service killed with SIGKILL never left: its record
        counts until it goes stale (``stale_after`` seconds without a
        heartbeat), as it would for the operator's ``rollsafe upgrade
        check``. RuntimeError if that takes more than twice as long."""
        deadline = time.monotonic() + 2 * self.options.stale_after + 10
        said = False
        fleet = self.fleet.open_fleet()
        try:
            while True:
                left = sorted(r.host for r in fleet.live() if r.release == n.RELEASE.name)
                if not left:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("release N services still in the fleet after the roll: "
                                       + ", ".join(left))
                if not said:
                    self.timeline.event(f"waiting for {len(left)} release N fleet record(s) "
                                        "of killed services to go stale")
                    said = True
                self.wait(0.5)
            pins: dict[str, str] = {}
            for service in list(self.running.values()):
                pins = service.refresh_pins() or pins
            if not pins:  # service processes refresh on their own (SIGHUP): ask the fleet
                time.sleep(0.5)
                pins = fleet.refresh()
            return pins
        finally:
            fleet.store.close()

    def kill_and_restart(self, slot: str) -> None:
        """The kill -9 fault: SIGKILL the service process in ``slot`` (what
        it had in flight dies with it), then ``restart_delay`` seconds
        later start the same service in its place, as a supervisor would.
        A killed API stays in the clients' rotation until its successor is
        in: meanwhile the clients find it dead by the connections that fail."""
        victim = self.running[slot]
        if not isinstance(victim, ServiceProcess):
            raise TypeError(f"kill -9 needs a service process in slot {slot}, not {victim!r}")
        url = victim.url if victim.role == "api" else None
        pid = victim.pid
        victim.kill()
        self.timeline.killed(slot, victim.release.name, pid)
        self.timeline.service_release(slot, None)
        self.wait(self.options.restart_delay)
        new = self.make(victim.role, victim.release, slot, contracted=victim.contracted)
        self.launch(new)
        self.running[slot] = new
        if url is not None:
            self.endpoints.remove(url)
        self.timeline.event(f"{slot}: restarted (release {victim.release.name})")

    def migrate(self, seconds: float) -> None:
        """Run N+1's online migrations until nothing is left."""
        started = time.monotonic()
        with self.operator_store() as store:
            moved = 0
            for _ in range(100):
                report = n1.MIGRATIONS.run(store, batch_size=100, pause=0.01)
                moved += report.done
                if report.exit_code == 0:
                    break
                if report.exit_code == 2:
                    raise RuntimeError("online migrations failed: " + "; ".join(
                        f"{r.name}: {r.error}" for r in report.results if r.error))
            else:
                raise RuntimeError("online migrations still have records left after 100 runs")
            self.timeline.event(f"online migrations: {moved} records moved, none left")
        self.wait(seconds - (time.monotonic() - started))

    def contract(self, seconds: float) -> None:
        """Gate, switch the conductor to the contracted collections, contract."""
        started = time.monotonic()
        fleet = self.fleet.open_fleet()
        try:
            with self.operator_store() as store:
                check_contract(n1.CONTRACTED, store, fleet=fleet)
        finally:
            fleet.store.close()
        self.timeline.event("contract gate: no live service needs the old versions, "
                            "no migration has records left")
        self.replace("conductor", self.make("conductor", n1.RELEASE, "conductor",
                                            contracted=True))
        with self.schema() as backend:
            plan = migrate.contract(backend, n1.CONTRACTED.collections)
        for step in plan.describe() or ["contract: nothing to drop"]:
            self.timeline.event(step)
        self.wait(seconds - (time.monotonic() - started))

    def conductor_outage(self, seconds: float) -> None:
        """The ``conductor-outage`` fault: no conductor for ``seconds``."""
        old = self.running.pop("conductor")
        self.timeline.event(f"fault: the conductor stops for {seconds:g}s")
        old.stop()
        self.timeline.service_release("conductor", None)
        time.sleep(seconds)
        new = self.make("conductor", n1.RELEASE, "conductor",
                        contracted=getattr(old, "contracted", False))
        self.launch(new)
        self.running["conductor"] = new

    def lose_a_write(self) -> None:
        """The ``lost-write`` fault: delete an acknowledged app behind the
        clients' back (the final check must notice)."""
        records = self.ledger.snapshot()
        if not records:
            raise RuntimeError("no acknowledged app to lose")
        victim = records[0]
        response = httpx.delete(f"{self.endpoints.live[0]}/v1/apps/{victim.id}", timeout=15.0,
                                headers={"Authorization":
                                         f"Bearer {PROJECT_TOKENS[victim.project]}"})
        if response.status_code != 204:
            raise RuntimeError(f"the lost-write fault could not delete app {victim.id}: "
                               f"HTTP {response.status_code}")
        self.timeline.event(f"fault: app {victim.id} deleted behind the clients' back")

    def check(self) -> tuple[WriteCheck, list[str]]:
        """Read every acknowledged write back through a live API, once the
        workflows started have ended; the check and the workflows that
        never did (still queued or running after 30 s)."""
        tokens = dict(PROJECT_TOKENS)
        unfinished = unfinished_workflows(self.ledger, self.endpoints.live[0], tokens)
        return check_writes(self.ledger, self.endpoints.live[0], tokens), unfinished


def _sql(store: Store) -> SqlBackend:
    backend = store.backend
    if not isinstance(backend, SqlBackend):
        raise TypeError("the demo counts stored versions on SQL stores only "
                        "(sqlite:/// or postgresql://)")
    return backend


def _remove(hooks: list[Callable[[str, Run], None]], hook: Callable[[str, Run], None]) -> None:
    if hook in hooks:
        hooks.remove(hook)


def _no_indirection(release: Release) -> None:
    release.registry.indirection = None


@contextmanager
def _phase(timeline: Timeline, name: str, run: _Run | None = None) -> Iterator[None]:
    timeline.begin_phase(name)
    timeline.event(f"phase {name}")
    yield
    if run is not None:
        run.store_snapshot(name)


def run_demo(options: DemoOptions) -> DemoResult:
    """Run the live upgrade (see the module documentation) and write the
    HTML report; services, clients and threads are all stopped on return,
    even when the run fails."""
    timeline = Timeline()
    d = options.duration
    check = WriteCheck()
    unfinished: list[str] = []
    problems: list[str] = []
    with ExitStack() as stack:
        run = _Run(options, timeline, stack)
        stack.enter_context(Progress(timeline, run.releases, live=options.live,
                                                quiet=options.quiet))
        run.start_release_n()
        run.start_clients()
        with _phase(timeline, "steady N", run):
            run.wait(0.2 * d)
        with _phase(timeline, "expand", run):
            run.expand()
            run.wait(0.05 * d)
        with _phase(timeline, "roll", run):
            run.roll(0.35 * d)
        with _phase(timeline, "migrate", run):
            run.migrate(0.1 * d)
        with _phase(timeline, "contract", run):
            run.contract(0.05 * d)
        with _phase(timeline, "steady N+1", run):
            if options.fault == "conductor-outage":
                run.wait(0.05 * d)
                run.conductor_outage(3.0)
            run.wait(0.2 * d)
        run.stop_clients()
        if options.fault == "lost-write":
            run.lose_a_write()
        check, unfinished = run.check()
        problems = check.problems + [f"workflow {w}: still queued or running after the run"
                                     for w in unfinished]
        timeline.event(f"checked {check.checked} acknowledged writes: {check.lost} lost; "
                       f"{len(unfinished)} workflow(s) unfinished")
        timeline.end()
    summary = timeline.summary(writes_checked=check.checked, writes_lost=check.lost,
                               steady_phase="steady N", upgrade_phases=UPGRADE_PHASES,
                               workflows_unfinished=len(unfinished))
    report = write_html(options.report, timeline, summary,
                        title="solumlite live upgrade: release N to N+1")
    return DemoResult(summary=summary, report=report, problems=problems)
