"""The live-upgrade report as one self-contained HTML page.

The page needs nothing from the network: the charts are inline SVG drawn
here. Three charts share one time axis, with the phases marked across all
of them: requests per second (those sent again after a connection failure
in orange, failures in red), latency per second (p50 and p99), and a lane
per service coloured by the release it ran. In the kill -9 fault run a red
line marks each process killed.
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from solumlite.demo.timeline import DemoSummary, Timeline, percentile

__all__ = ["render_html", "render_text", "write_html"]

_WIDTH, _LEFT, _RIGHT = 960, 70, 20
_PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948"]


def write_html(path: Path, timeline: Timeline, summary: DemoSummary, *, title: str) -> Path:
    """Write the report to ``path`` (folders created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(timeline, summary, title=title), encoding="utf-8")
    return path


def render_html(timeline: Timeline, summary: DemoSummary, *, title: str) -> str:
    """The report page for ``timeline`` and its ``summary``."""
    seconds = max(1, int(timeline.duration) + 1)
    per_second: dict[int, list[float]] = defaultdict(list)
    failures: dict[int, int] = defaultdict(int)
    for sample in timeline.samples:
        bucket = int(sample.start)
        if sample.ok:
            per_second[bucket].append(sample.latency * 1000)
        else:
            failures[bucket] += 1
    x = _Axis(seconds)
    verdict = "passed" if summary.passed else "FAILED"
    colour = "#2e7d32" if summary.passed else "#c62828"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
        "table{border-collapse:collapse;margin:8px 0 20px}"
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
        "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
        "svg{display:block;margin-bottom:14px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p id='verdict' style='font-size:1.3em;color:{colour}'><b>{verdict}</b>: "
        f"{summary.requests} requests, {summary.failed} failed, {summary.retried} retried; "
        f"{summary.writes_checked} writes checked, {summary.writes_lost} lost; "
        f"{summary.duration:.1f} s.</p>",
        (f"<p id='faults'>{html.escape(_fault_text(summary))}</p>"
         if _faulted(summary) else ""),
        _ratio(summary),
        _phase_table(summary),
        "<h2>Timeline</h2>",
        _requests_chart(x, per_second, failures, timeline),
        _latency_chart(x, per_second, timeline),
        _release_lanes(x, timeline),
        _versions_table(summary),
        _store_counts_table(summary),
        _events_list(summary),
    ]
    for heading, errors in (("Errors", summary.errors),
                            ("Errors in the background", summary.background_errors)):
        if errors:
            parts.append(f"<h2>{heading}</h2><table><tr><th>error</th><th>count</th></tr>")
            parts += [f"<tr><td>{html.escape(e)}</td><td>{n}</td></tr>"
                      for e, n in sorted(errors.items())]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


class _Axis:
    """Maps seconds to x pixels."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __call__(self, t: float) -> float:
        return _LEFT + (_WIDTH - _LEFT - _RIGHT) * t / self.seconds


def _phase_marks(x: _Axis, timeline: Timeline, height: int, labels: bool) -> str:
    out = []
    row, free_at = 0, [-1e9, -1e9]  # two rows of labels: the next starts where one is free
    for name, start, _ in timeline.phase_spans():
        px = x(start)
        out.append(f"<line x1='{px:.1f}' x2='{px:.1f}' y1='14' y2='{height - 20}' "
                   "stroke='#999' stroke-dasharray='4 3'/>")
        if labels:
            row = 0 if px >= free_at[0] else 1
            free_at[row] = px + 7 * len(name) + 8
            out.append(f"<text x='{px + 3:.1f}' y='{11 + 11 * row}' font-size='11' "
                       f"fill='#555'>{html.escape(name)}</text>")
    return "".join(out)


def _kill_marks(x: _Axis, timeline: Timeline, height: int, labels: bool) -> str:
    """A red line where each service process was killed (the fault run)."""
    out = []
    for i, (t, slot, release) in enumerate(list(timeline.kills)):
        px = x(t)
        what = html.escape(f"kill -9 {slot} (release {release}) at {t:.1f}s")
        out.append(f"<line class='kill' x1='{px:.1f}' x2='{px:.1f}' y1='14' "
                   f"y2='{height - 20}' stroke='#c62828' stroke-width='2'>"
                   f"<title>{what}</title></line>")
        if labels:  # stacked: kills come seconds apart
            out.append(f"<text x='{px + 3:.1f}' y='{38 + 11 * i}' font-size='10' "
                       f"fill='#c62828'>kill -9 {html.escape(slot)}</text>")
    return "".join(out)


def _frame(x: _Axis, height: int, title: str, top: float, unit: str) -> str:
    bottom = height - 20
    ticks = []
    step = max(1, x.seconds // 12)
    for s in range(0, x.seconds + 1, step):
        ticks.append(f"<text x='{x(s):.1f}' y='{height - 5}' font-size='10' "
                     f"text-anchor='middle' fill='#666'>{s}s</text>")
    return (f"<text x='4' y='{bottom / 2 + 10:.0f}' font-size='11' fill='#333'>"
            f"{html.escape(title)}</text>"
            f"<text x='{_LEFT - 4}' y='24' font-size='10' text-anchor='end' fill='#666'>"
            f"{top:.0f}{unit}</text>"
            f"<line x1='{_LEFT}' x2='{_WIDTH - _RIGHT}' y1='{bottom}' y2='{bottom}' "
            "stroke='#444'/>" + "".join(ticks))


def _requests_chart(x: _Axis, per_second: dict[int, list[float]],
                    failures: dict[int, int], timeline: Timeline) -> str:
    height = 170
    counts = {s: len(v) + failures.get(s, 0) for s, v in per_second.items()}
    top = max([*counts.values(), *failures.values(), 1])
    scale = (height - 40) / top
    bar = max(1.0, x(1) - x(0) - 1)
    rects = []
    for s, count in sorted(counts.items()):
        h = count * scale
        rects.append(f"<rect x='{x(s):.1f}' y='{height - 20 - h:.1f}' width='{bar:.1f}' "
                     f"height='{h:.1f}' fill='#4e79a7'><title>{s}s: {count} req</title></rect>")
    retried: dict[int, int] = defaultdict(int)
    for sample in timeline.samples:
        if sample.retried:
            retried[int(sample.start)] += 1
    for cls, series, colour, what in (("retried", retried, "#f28e2b", "sent again"),
                                      ("failure", failures, "#c62828", "failed")):
        for s, count in sorted(series.items()):
            h = max(2.0, count * scale)  # one retry in a second full of requests still shows
            rects.append(f"<rect class='{cls}' x='{x(s):.1f}' y='{height - 20 - h:.1f}' "
                         f"width='{bar:.1f}' height='{h:.1f}' fill='{colour}'>"
                         f"<title>{s}s: {count} {what}</title></rect>")
    return (f"<svg id='requests' width='{_WIDTH}' height='{height}'>"
            + _frame(x, height, "req/s", top, "") + "".join(rects)
            + _phase_marks(x, timeline, height, True)
            + _kill_marks(x, timeline, height, True) + "</svg>")


def _latency_chart(x: _Axis, per_second: dict[int, list[float]], timeline: Timeline) -> str:
    height = 170
    p50 = {s: percentile(v, 50) for s, v in per_second.items() if v}
    p99 = {s: percentile(v, 99) for s, v in per_second.items() if v}
    top = max([*p99.values(), 1.0])
    scale = (height - 40) / top
    lines = []
    for name, series, colour in (("p50", p50, "#59a14f"), ("p99", p99, "#f28e2b")):
        points = " ".join(f"{x(s + 0.5):.1f},{height - 20 - v * scale:.1f}"
                          for s, v in sorted(series.items()))
        lines.append(f"<polyline points='{points}' fill='none' stroke='{colour}' "
                     f"stroke-width='1.5'><title>{name} latency</title></polyline>")
    legend = (f"<text x='{_WIDTH - 90}' y='24' font-size='10' fill='#59a14f'>p50</text>"
              f"<text x='{_WIDTH - 60}' y='24' font-size='10' fill='#f28e2b'>p99</text>")
    return (f"<svg id='latency' width='{_WIDTH}' height='{height}'>"
            + _frame(x, height, "latency", top, " ms") + "".join(lines) + legend
            + _phase_marks(x, timeline, height, False) + "</svg>")


def _release_lanes(x: _Axis, timeline: Timeline) -> str:
    services: list[str] = []
    for _, service, _release in timeline.releases:
        if service not in services:
            services.append(service)
    releases = sorted({r for _, _, r in timeline.releases if r is not None})
    colours = {r: _PALETTE[i % len(_PALETTE)] for i, r in enumerate(releases)}
    lane = 22
    height = 40 + lane * max(1, len(services))
    end = timeline.duration
    shapes = []
    for row, service in enumerate(services):
        y = 16 + row * lane
        shapes.append(f"<text x='4' y='{y + 14}' font-size='11'>{html.escape(service)}</text>")
        events = [(t, r) for t, s, r in timeline.releases if s == service]
        for i, (t, release) in enumerate(events):
            if release is None:
                continue
            until = events[i + 1][0] if i + 1 < len(events) else end
            shapes.append(
                f"<rect class='lane' x='{x(t):.1f}' y='{y}' width='{max(1.0, x(until) - x(t)):.1f}'"
                f" height='{lane - 6}' fill='{colours[release]}'>"
                f"<title>{html.escape(service)}: {html.escape(release)}</title></rect>")
    legend = "".join(
        f"<rect x='{_WIDTH - 200 + i * 90}' y='{height - 14}' width='10' height='10' "
        f"fill='{colours[r]}'/><text x='{_WIDTH - 186 + i * 90}' y='{height - 5}' "
        f"font-size='10'>{html.escape(r)}</text>" for i, r in enumerate(releases))
    return (f"<svg id='releases' width='{_WIDTH}' height='{height}'>" + "".join(shapes)
            + legend + _phase_marks(x, timeline, height, False)
            + _kill_marks(x, timeline, height, False) + "</svg>")


def _phase_table(summary: DemoSummary) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(p.phase)}</td><td>{p.seconds:.1f}</td><td>{p.requests}</td>"
        f"<td>{p.failed}</td><td>{p.p50_ms:.1f}</td><td>{p.p99_ms:.1f}</td></tr>"
        for p in summary.phases)
    return ("<h2>Phases</h2><table id='phases'><tr><th>phase</th><th>seconds</th>"
            "<th>requests</th><th>failed</th><th>p50 ms</th><th>p99 ms</th></tr>"
            f"{rows}</table>")


def _versions_table(summary: DemoSummary) -> str:
    names = sorted(summary.wire_versions.keys() | summary.store_versions.keys())
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td>"
        f"<td>{html.escape(', '.join(summary.wire_versions.get(n, [])))}</td>"
        f"<td>{html.escape(', '.join(summary.store_versions.get(n, [])))}</td></tr>"
        for n in names)
    return ("<h2>Versions seen</h2><table id='versions'><tr><th>object</th>"
            f"<th>on the wire</th><th>in the store</th></tr>{rows}</table>")


def _ratio(summary: DemoSummary) -> str:
    ratio = summary.upgrade_p99_ratio
    if ratio is None:
        return ""
    return (f"<p id='ratio'>p99 latency during the upgrade: {summary.upgrade_p99_ms:.1f} ms, "
            f"{ratio:.2f}x the steady p99 before it ({summary.steady_p99_ms:.1f} ms; "
            "the target is at most 2x).</p>")


def _store_counts_table(summary: DemoSummary) -> str:
    if not summary.store_counts:
        return ""
    names = sorted({n for _, counts in summary.store_counts for n in counts})
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for label, counts in summary.store_counts:
        cells = "".join(
            "<td>" + html.escape(", ".join(f"{v}: {c}" for v, c in sorted(
                counts.get(n, {}).items()) if c)) + "</td>" for n in names)
        rows.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    return ("<h2>Records in the store, by version</h2><table id='stored'>"
            f"<tr><th>after</th>{head}</tr>{''.join(rows)}</table>")


def _events_list(summary: DemoSummary) -> str:
    if not summary.events:
        return ""
    items = "".join(f"<li>{t:.1f}s: {html.escape(text)}</li>" for t, text in summary.events)
    return f"<h2>What happened</h2><ol id='events'>{items}</ol>"


def render_text(summary: DemoSummary, *, report: Path | None = None,
                problems: list[str] | None = None) -> str:
    """The report as plain text, for the terminal."""
    verdict = "PASSED" if summary.passed and not problems else "FAILED"
    lines = [
        f"live upgrade N -> N+1: {verdict}",
        f"  requests   {summary.requests} sent, {summary.succeeded} succeeded, "
        f"{summary.failed} failed, {summary.retried} retried",
        f"  writes     {summary.writes_checked} checked afterwards, {summary.writes_lost} lost; "
        f"{summary.workflows_unfinished} workflow(s) unfinished",
    ]
    if _faulted(summary):
        lines.append(f"  faults     {_fault_text(summary)}")
    if summary.upgrade_p99_ratio is not None:
        lines.append(f"  p99        {summary.upgrade_p99_ms:.1f} ms during the upgrade, "
                     f"{summary.steady_p99_ms:.1f} ms steady before it: "
                     f"{summary.upgrade_p99_ratio:.2f}x (target: at most 2x)")
    lines.append(f"  {'phase':<12}{'seconds':>8}{'requests':>10}{'failed':>8}"
                 f"{'p50 ms':>9}{'p99 ms':>9}")
    lines += [f"  {p.phase:<12}{p.seconds:>8.1f}{p.requests:>10}{p.failed:>8}"
              f"{p.p50_ms:>9.1f}{p.p99_ms:>9.1f}" for p in summary.phases]
    lines.append("  versions   on the wire: " + _version_text(summary.wire_versions))
    lines.append("             in the store: " + _version_text(summary.store_versions))
    if summary.store_counts:
        label, counts = summary.store_counts[-1]
        lines.append(f"             stored after {label}: " + "; ".join(
            f"{name} " + ", ".join(f"{v}x{c}" for v, c in sorted(versions.items()) if c)
            for name, versions in sorted(counts.items()) if any(versions.values())))
    for heading, errors in (("errors", summary.errors),
                            ("background errors", summary.background_errors)):
        if errors:
            lines.append(f"  {heading}:")
            lines += [f"    {count} x {error}" for error, count in
                      sorted(errors.items(), key=lambda item: -item[1])[:10]]
    if problems:
        lines.append("  found wrong afterwards:")
        lines += [f"    {problem}" for problem in problems[:20]]
    if report is not None:
        lines.append(f"  report     {report}")
    return "\n".join(lines)


def _faulted(summary: DemoSummary) -> bool:
    """Whether the run had faults to report: kills, retries, re-sent workflows."""
    return bool(summary.retried or summary.kills or summary.redispatched)


def _fault_text(summary: DemoSummary) -> str:
    """The processes killed and what the clients' retries did about it."""
    kills = ", ".join(f"{slot} (release {release}) at {t:.1f} s"
                      for t, slot, release in summary.kills)
    causes = ", ".join(f"{count} {_CAUSES.get(cause, cause)}"
                       for cause, count in sorted(summary.retried_after.items()))
    parts = [f"kill -9: {kills}"] if kills else []
    parts.append(f"{summary.retried} request(s) failed at the connection and were sent again"
                 + (f" ({causes})" if causes else "")
                 + f": {summary.retried - summary.retried_failed} then succeeded, "
                   f"{summary.retried_failed} failed")
    if summary.redispatched:
        parts.append(f"the conductor sent {summary.redispatched} orphaned workflow(s) to the "
                     "workers again")
    return "; ".join(parts)


_CAUSES = {"refused": "refused before anything was sent",
           "broken": "broken with the request in flight"}


def _version_text(versions: dict[str, list[str]]) -> str:
    return "; ".join(f"{name} {', '.join(found)}" for name, found in sorted(versions.items()))
