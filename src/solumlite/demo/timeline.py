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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DemoSummary", "PhaseFigures", "RequestSample", "Timeline", "percentile"]


@dataclass(frozen=True)
class RequestSample:
    """One client request: ``start`` in seconds since the run began,
    ``latency`` in seconds, the phase it started in, and its outcome.
    ``retried`` is True when the first attempt failed at the connection and
    a retry succeeded (a kill -9 fault run expects some)."""

    start: float
    latency: float
    operation: str
    phase: str
    ok: bool
    retried: bool = False
    error: str | None = None


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
    failed or any acknowledged write was lost."""

    requests: int
    succeeded: int
    failed: int
    retried: int
    writes_checked: int
    writes_lost: int
    duration: float
    phases: list[PhaseFigures]
    wire_versions: dict[str, list[str]]
    store_versions: dict[str, list[str]]
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No failed request and no lost write."""
        return self.failed == 0 and self.writes_lost == 0

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for ``--json`` and the HTML report)."""
        return {
            "passed": self.passed, "requests": self.requests, "succeeded": self.succeeded,
            "failed": self.failed, "retried": self.retried,
            "writes_checked": self.writes_checked, "writes_lost": self.writes_lost,
            "duration_s": round(self.duration, 3),
            "phases": [vars(p) for p in self.phases],
            "wire_versions": self.wire_versions, "store_versions": self.store_versions,
            "errors": self.errors,
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

    def saw_on_wire(self, name: str, version: str) -> None:
        """An object ``name`` crossed the wire at ``version``."""
        with self._lock:
            self.wire_versions[(name, version)] += 1

    def saw_in_store(self, name: str, version: str) -> None:
        """A record of ``name`` was stored at ``version``."""
        with self._lock:
            self.store_versions[(name, version)] += 1

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

    def summary(self, *, writes_checked: int, writes_lost: int) -> DemoSummary:
        """The run's figures, given what the final check of the writes found."""
        with self._lock:
            samples = list(self.samples)
            wire = _versions(self.wire_versions)
            stored = _versions(self.store_versions)
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
        return DemoSummary(
            requests=len(samples), succeeded=sum(s.ok for s in samples),
            failed=sum(not s.ok for s in samples), retried=sum(s.retried for s in samples),
            writes_checked=writes_checked, writes_lost=writes_lost, duration=self.duration,
            phases=phases, wire_versions=wire, store_versions=stored, errors=dict(errors))


def _versions(counter: Counter[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, version in sorted(counter):
        out.setdefault(name, []).append(version)
    return out
