"""What a running demo shows while it runs: a live panel (Rich) on a
terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from solumlite.demo.timeline import Timeline, percentile

__all__ = ["Progress"]


class Progress:
    """Shows ``timeline`` as it grows, on ``stream`` (stderr by default):
    a live panel when ``live`` (None: when the stream is a terminal),
    else one line per event and a status line every ``every`` seconds.
    ``services`` returns slot -> release of the running services."""

    def __init__(self, timeline: Timeline, services: Callable[[], dict[str, str]], *,
                 live: bool | None = None, stream: IO[str] | None = None,
                 every: float = 5.0, quiet: bool = False) -> None:
        self.timeline = timeline
        self.services = services
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.every = every
        self.quiet = quiet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown_events = 0

    def __enter__(self) -> Progress:
        if not self.quiet:
            self._thread = threading.Thread(target=self._run, name="demo-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def status(self, window: float = 5.0) -> dict[str, Any]:
        """The figures shown: phase, elapsed, requests, failed, retried,
        requests per second and p99 (ms) over the last ``window`` seconds."""
        now = self.timeline.now()
        samples = list(self.timeline.samples)
        recent = [s.latency * 1000 for s in samples if s.ok and s.start >= now - window]
        return {"phase": self.timeline.phase, "elapsed": now, "requests": len(samples),
                "failed": sum(not s.ok for s in samples),
                "retried": sum(s.retried for s in samples),
                "rate": len(recent) / window, "p99": percentile(recent, 99)}

    def _line(self) -> str:
        st = self.status()
        services = " ".join(f"{slot}={release}" for slot, release in self.services().items())
        return (f"[{st['elapsed']:6.1f}s] {st['phase']:<10} {st['requests']:>6} requests "
                f"{st['failed']} failed {st['retried']} retried  {st['rate']:5.1f}/s  "
                f"p99 {st['p99']:6.1f} ms  {services}")

    def _new_events(self) -> list[tuple[float, str]]:
        events = list(self.timeline.events)
        new, self._shown_events = events[self._shown_events:], len(events)
        return new

    def _run(self) -> None:
        if self.live:
            self._run_live()
            return
        next_line = self.every
        while not self._stop.wait(0.25):
            for at, text in self._new_events():
                print(f"[{at:6.1f}s] {text}", file=self.stream, flush=True)
            if self.timeline.now() >= next_line:
                print(self._line(), file=self.stream, flush=True)
                next_line += self.every
        for at, text in self._new_events():
            print(f"[{at:6.1f}s] {text}", file=self.stream, flush=True)

    def _run_live(self) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.table import Table
        from rich.text import Text

        console = Console(file=self.stream)
        events: list[tuple[float, str]] = []

        def render() -> Group:
            st = self.status()
            head = Table.grid(padding=(0, 2))
            head.add_row(Text(f"phase: {st['phase']}", style="bold cyan"),
                         f"{st['elapsed']:.1f}s", f"{st['requests']} requests",
                         Text(f"{st['failed']} failed",
                              style="bold red" if st["failed"] else "green"),
                         f"{st['retried']} retried", f"{st['rate']:.1f} req/s",
                         f"p99 {st['p99']:.1f} ms")
            fleet = Table(title="services", show_edge=False, pad_edge=False)
            fleet.add_column("slot")
            fleet.add_column("release")
            for slot, release in self.services().items():
                fleet.add_row(slot, Text(release, style="yellow" if release == "N"
                                         else "green"))
            events.extend(self._new_events())
            log = Text("\n".join(f"{at:6.1f}s  {text}" for at, text in events[-8:]))
            return Group(head, fleet, log)

        with Live(render(), console=console, refresh_per_second=4, transient=False) as live:
            while not self._stop.wait(0.25):
                live.update(render())
            live.update(render())
