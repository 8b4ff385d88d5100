"""What happened during a live-upgrade run, second by second.

The traffic threads record every request (when it started, how long it
took, whether it succeeded, whether it needed a retry); the orchestrator
records the phases and which release each service runs; the store and the
wire report the object versions they saw. :meth:`Timeline.summary` turns
that into the figures the report prints, and :func:`render_html` into a page
with a timeline chart.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DemoSummary", "PhaseFigures", "RequestSample", "Timeline", "percentile"]


@dataclass(frozen=True)
class RequestSample:
    """One client request: ``start`` in seconds since the run began,
    ``latency`` in seconds, the phase it started in, and its outcome.
    ``retried_after`` is set when the first attempt failed at the
    connection and the request was sent again (a kill -9 fault run expects
    some): ``"refused"`` (no connection: nothing was sent) or ``"broken"``
    (the connection broke with the request in flight)."""

    start: float
    latency: float
    operation: str
    phase: str
    ok: bool
    error: str | None = None
    retried_after: str | None = None

    @property
    def retried(self) -> bool:
        """Whether the request was sent again after a connection failure."""
        return self.retried_after is not None


@dataclass(frozen=True)
class PhaseFigures:
    """Requests and latency of one phase (latencies in milliseconds)."""

    phase: str
    seconds: float
    requests: int
    failed: int
    p50_ms: float
    p99_ms: float


@dataclass
class DemoSummary:
    """The figures a run ends with; ``passed`` is False when any request
    failed, any acknowledged write was lost, anything failed in the
    background or an acknowledged workflow never finished."""

    requests: int
    succeeded: int
    failed: int
    writes_checked: int
    writes_lost: int
    duration: float
    phases: list[PhaseFigures]
    wire_versions: dict[str, list[str]]
    store_versions: dict[str, list[str]]
    errors: dict[str, int] = field(default_factory=dict)
    #: Failures away from the clients (a worker's workflow step), by message.
    background_errors: dict[str, int] = field(default_factory=dict)
    #: (label, object name -> version -> records), stored versions counted
    #: at the end of each phase.
    store_counts: list[tuple[str, dict[str, dict[str, int]]]] = field(default_factory=list)
    #: (seconds, text): what the orchestrator did, in order.
    events: list[tuple[float, str]] = field(default_factory=list)
    #: p99 (ms) of the steady phase before the upgrade and of the upgrade
    #: phases together, when the run named them (see :meth:`Timeline.summary`).
    steady_p99_ms: float | None = None
    upgrade_p99_ms: float | None = None
    #: Requests sent again after their first attempt failed at the
    #: connection, by how it failed (``refused``, ``broken``).
    retried_after: dict[str, int] = field(default_factory=dict)
    #: Of the requests sent again, those that still failed (also in ``failed``).
    retried_failed: int = 0
    #: (seconds, slot, release): the service processes killed with SIGKILL.
    kills: list[tuple[float, str, str]] = field(default_factory=list)
    #: Acknowledged workflows still queued or running when the run ended.
    workflows_unfinished: int = 0
    #: Workflows a conductor found orphaned (their worker gone) and sent
    #: the workers again (conductors killed with SIGKILL cannot say).
    redispatched: int = 0

    @property
    def retried(self) -> int:
        """Requests sent again after their first attempt failed at the connection."""
        return sum(self.retried_after.values())

    @property
    def passed(self) -> bool:
        """No failed request, no lost write, no failure in the background, no
        workflow left unfinished."""
        return (self.failed == 0 and self.writes_lost == 0 and not self.background_errors
                and self.workflows_unfinished == 0)

    @property
    def upgrade_p99_ratio(self) -> float | None:
        """p99 during the upgrade over steady p99 (the target is at most 2)."""
        if not self.steady_p99_ms or self.upgrade_p99_ms is None:
            return None
        return round(self.upgrade_p99_ms / self.steady_p99_ms, 2)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for ``--json`` and the HTML report)."""
        return {
            "passed": self.passed, "requests": self.requests, "succeeded": self.succeeded,
            "failed": self.failed, "retried": self.retried,
            "writes_checked": self.writes_checked, "writes_lost": self.writes_lost,
            "duration_s": round(self.duration, 3),
            "phases": [vars(p) for p in self.phases],
            "wire_versions": self.wire_versions, "store_versions": self.store_versions,
            "errors": self.errors, "background_errors": self.background_errors,
            "store_counts": [{"after": label, "counts": counts}
                             for label, counts in self.store_counts],
            "events": [{"t": round(t, 3), "event": text} for t, text in self.events],
            "steady_p99_ms": self.steady_p99_ms, "upgrade_p99_ms": self.upgrade_p99_ms,
            "upgrade_p99_ratio": self.upgrade_p99_ratio,
            "retried_after": self.retried_after, "retried_failed": self.retried_failed,
            "kills": [{"t": round(t, 3), "slot": slot, "release": release}
                      for t, slot, release in self.kills],
            "workflows_unfinished": self.workflows_unfinished,
            "redispatched": self.redispatched,
        }


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by nearest rank; 0.0
    for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Timeline:
    """Thread-safe record of a run. Times are seconds since construction
    (``clock`` is injectable for tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._origin: float = clock()
        self._lock = threading.Lock()
        self.samples: list[RequestSample] = []
        #: (time, phase name), in order.
        self.phases: list[tuple[float, str]] = []
        #: (time, service name, release or None when it stopped), in order.
        self.releases: list[tuple[float, str, str | None]] = []
        self.wire_versions: Counter[tuple[str, str]] = Counter()
        self.store_versions: Counter[tuple[str, str]] = Counter()
        self.background_errors: Counter[str] = Counter()
        #: (label, object name -> version -> records), in order.
        self.store_counts: list[tuple[str, dict[str, dict[str, int]]]] = []
        #: (time, text), in order.
        self.events: list[tuple[float, str]] = []
        #: (time, slot, release) of each service process killed, in order.
        self.kills: list[tuple[float, str, str]] = []
        #: Orphaned workflows the conductors that stopped sent again.
        self.redispatched = 0
        self._ended: float | None = None

    def now(self) -> float:
        """Seconds since the run began."""
        return self._clock() - self._origin

    @property
    def phase(self) -> str:
        """The current phase's name (``"start"`` before the first)."""
        with self._lock:
            return self.phases[-1][1] if self.phases else "start"

    def begin_phase(self, name: str) -> None:
        """Mark the start of phase ``name`` now."""
        with self._lock:
            self.phases.append((self.now(), name))

    def service_release(self, service: str, release: str | None) -> None:
        """``service`` runs ``release`` from now on (None: it stopped)."""
        with self._lock:
            self.releases.append((self.now(), service, release))

    def record(self, sample: RequestSample) -> None:
        """Add one finished request."""
        with self._lock:
            self.samples.append(sample)

    def saw_on_wire(self, name: str, version: str, times: int = 1) -> None:
        """An object ``name`` crossed the wire at ``version`` (``times`` times)."""
        with self._lock:
            self.wire_versions[(name, version)] += times

    def saw_in_store(self, name: str, version: str) -> None:
        """A record of ``name`` was stored at ``version``."""
        with self._lock:
            self.store_versions[(name, version)] += 1

    def background_error(self, message: str) -> None:
        """Something failed away from the clients (a worker's step, say)."""
        with self._lock:
            self.background_errors[message] += 1

    def event(self, text: str) -> None:
        """Note what the orchestrator did now."""
        with self._lock:
            self.events.append((self.now(), text))

    def killed(self, slot: str, release: str, pid: int | None) -> None:
        """The process in ``slot`` (running ``release``) was killed with SIGKILL now."""
        with self._lock:
            now = self.now()
            self.kills.append((now, slot, release))
            self.events.append((now, f"fault: kill -9 {slot} (release {release}, pid {pid})"))

    def workflows_redispatched(self, count: int) -> None:
        """A conductor that stopped had sent ``count`` orphaned workflows again."""
        with self._lock:
            self.redispatched += count

    def stored(self, label: str, counts: dict[str, dict[str, int]]) -> None:
        """The store holds ``counts`` (name -> version -> records) after
        ``label``; each version present is also seen in the store."""
        with self._lock:
            self.store_counts.append((label, {n: dict(v) for n, v in counts.items()}))
            for name, versions in counts.items():
                for version, records in versions.items():
                    if records:
                        self.store_versions[(name, version)] += records

    def end(self) -> None:
        """Mark the end of the run."""
        with self._lock:
            self._ended = self.now()

    @property
    def duration(self) -> float:
        """Seconds from start to :meth:`end` (or to now)."""
        return self._ended if self._ended is not None else self.now()

    def phase_spans(self) -> list[tuple[str, float, float]]:
        """(phase, start, end) for each phase, in order."""
        with self._lock:
            marks = list(self.phases)
        end = self.duration
        return [(name, at, marks[i + 1][0] if i + 1 < len(marks) else end)
                for i, (at, name) in enumerate(marks)]

    def summary(self, *, writes_checked: int, writes_lost: int, steady_phase: str | None = None,
                upgrade_phases: Sequence[str] = (), workflows_unfinished: int = 0
                ) -> DemoSummary:
        """The run's figures, given what the final check of the writes found.
        With ``steady_phase`` and ``upgrade_phases``, also the p99 of each
        (the upgrade phases' requests taken together)."""
        with self._lock:
            kills = list(self.kills)
            redispatched = self.redispatched
            samples = list(self.samples)
            wire = _versions(self.wire_versions)
            stored = _versions(self.store_versions)
            background = dict(self.background_errors)
            store_counts = list(self.store_counts)
            events = list(self.events)
        phases = []
        for name, start, end in self.phase_spans():
            in_phase = [s for s in samples if s.phase == name]
            latencies = [s.latency * 1000 for s in in_phase if s.ok]
            phases.append(PhaseFigures(
                phase=name, seconds=round(end - start, 3), requests=len(in_phase),
                failed=sum(not s.ok for s in in_phase),
                p50_ms=round(percentile(latencies, 50), 2),
                p99_ms=round(percentile(latencies, 99), 2)))
        errors = Counter(s.error or "unknown" for s in samples if not s.ok)

        def p99(phases: Sequence[str]) -> float | None:
            latencies = [s.latency * 1000 for s in samples if s.ok and s.phase in phases]
            return round(percentile(latencies, 99), 2) if latencies else None

        return DemoSummary(
            requests=len(samples), succeeded=sum(s.ok for s in samples),
            failed=sum(not s.ok for s in samples),
            writes_checked=writes_checked, writes_lost=writes_lost, duration=self.duration,
            phases=phases, wire_versions=wire, store_versions=stored, errors=dict(errors),
            background_errors=background, store_counts=store_counts, events=events,
            steady_p99_ms=None if steady_phase is None else p99([steady_phase]),
            upgrade_p99_ms=p99(upgrade_phases) if upgrade_phases else None,
            retried_after=dict(Counter(s.retried_after for s in samples if s.retried_after)),
            retried_failed=sum(s.retried and not s.ok for s in samples), kills=kills,
            workflows_unfinished=workflows_unfinished, redispatched=redispatched)


def _versions(counter: Counter[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, version in sorted(counter):
        out.setdefault(name, []).append(version)
    return out
