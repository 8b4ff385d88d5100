"""The live-upgrade report: figures per phase and the HTML timeline."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

from solumlite.demo.report import write_html
from solumlite.demo.timeline import RequestSample, Timeline, percentile


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _run() -> Timeline:
    clock = _Clock()
    timeline = Timeline(clock)
    timeline.service_release("api-1", "N")
    timeline.begin_phase("steady")
    for i in range(10):
        timeline.record(RequestSample(start=i * 0.2, latency=0.010 + i * 0.001,
                                      operation="create_app", phase="steady", ok=True))
    clock.t += 2.0
    timeline.begin_phase("upgrade")
    timeline.service_release("api-1", None)
    timeline.service_release("api-1", "N+1")
    timeline.record(RequestSample(start=2.1, latency=0.5, operation="create_app",
                                  phase="upgrade", ok=False, error="ConnectError"))
    timeline.record(RequestSample(start=2.2, latency=0.03, operation="create_app",
                                  phase="upgrade", ok=True, retried_after="refused"))
    timeline.saw_on_wire("App", "1.0")
    timeline.saw_in_store("App", "1.1")
    timeline.saw_in_store("App", "1.0")
    clock.t += 1.0
    timeline.end()
    return timeline


def test_percentile_uses_nearest_rank() -> None:
    assert percentile([], 99) == 0.0
    assert percentile([5.0], 50) == 5.0
    assert percentile([float(v) for v in range(1, 101)], 99) == 99.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0


def test_summary_counts_requests_failures_and_retries_per_phase() -> None:
    summary = _run().summary(writes_checked=11, writes_lost=0)
    assert (summary.requests, summary.succeeded, summary.failed, summary.retried) == (12, 11, 1, 1)
    steady, upgrade = summary.phases
    assert (steady.phase, steady.requests, steady.failed, steady.seconds) == ("steady", 10, 0, 2.0)
    assert steady.p50_ms == 14.0 and steady.p99_ms == 19.0
    # failed requests do not count in the latency of the phase
    assert (upgrade.requests, upgrade.failed, upgrade.p99_ms) == (2, 1, 30.0)
    assert summary.store_versions == {"App": ["1.0", "1.1"]}
    assert summary.errors == {"ConnectError": 1}
    assert not summary.passed


def test_a_run_passes_only_with_no_failure_and_no_lost_write() -> None:
    timeline = Timeline(_Clock())
    timeline.begin_phase("steady")
    timeline.record(RequestSample(0.0, 0.01, "get_app", "steady", ok=True))
    assert timeline.summary(writes_checked=1, writes_lost=0).passed
    assert not timeline.summary(writes_checked=1, writes_lost=1).passed


def test_html_report_is_well_formed_with_the_three_charts_and_phase_marks(tmp_path: Path) -> None:
    timeline = _run()
    summary = timeline.summary(writes_checked=11, writes_lost=0)
    page = write_html(tmp_path / "out" / "report.html", timeline, summary, title="demo <run>")
    text = page.read_text(encoding="utf-8")
    assert "demo &lt;run&gt;" in text
    body = re.search(r"<body>(.*)</body>", text, re.S)
    assert body is not None
    root = ElementTree.fromstring(f"<div>{body.group(1)}</div>")  # the page parses as XML
    charts = {svg.get("id"): svg for svg in root.iter("svg")}
    assert set(charts) == {"requests", "latency", "releases"}
    failures = [r for r in charts["requests"].iter("rect") if r.get("class") == "failure"]
    assert len(failures) == 1
    lanes = [r for r in charts["releases"].iter("rect") if r.get("class") == "lane"]
    titles = [lane.findtext("title") for lane in lanes]
    assert titles == ["api-1: N", "api-1: N+1"]
    phase_labels = [t.text for t in charts["requests"].iter("text")
                    if t.text in {"steady", "upgrade"}]
    assert phase_labels == ["steady", "upgrade"]
    verdict = root.find(".//p[@id='verdict']")
    assert verdict is not None and "FAILED" in "".join(verdict.itertext())
