"""The live-upgrade demo (``solumlite demo``) end to end: release N rolled
to N+1 under client traffic over real HTTP, on the embedded default."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from solumlite.cli import app
from solumlite.demo.scenario import PHASES
from solumlite.releases import n, n1


def _demo(tmp_path: Path, *extra: str, duration: str = "10") -> tuple[int, dict[str, Any], Path]:
    report = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["demo", "--duration", duration, "--report", str(report),
                                      "--json", "--quiet", "--clients", "2", "--seed", "7",
                                      *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.stdout), report


def _page(report: Path) -> ElementTree.Element:
    text = report.read_text(encoding="utf-8")
    body = re.search(r"<body>(.*)</body>", text, re.S)
    assert body is not None
    return ElementTree.fromstring(f"<div>{body.group(1)}</div>")


def test_a_rolling_upgrade_under_traffic_fails_no_request_and_loses_no_write(
        tmp_path: Path) -> None:
    code, summary, report = _demo(tmp_path)

    assert code == 0, summary
    assert summary["passed"] and summary["failed"] == 0 and summary["writes_lost"] == 0
    assert summary["requests"] > 50 and summary["succeeded"] == summary["requests"]
    assert summary["writes_checked"] > 0 and summary["background_errors"] == {}
    assert [p["phase"] for p in summary["phases"]] == list(PHASES)
    assert all(p["requests"] > 0 for p in summary["phases"])
    # both releases' versions crossed the wire and were stored...
    assert {"1.0", "1.1"} <= set(summary["wire_versions"]["App"])
    assert {"1.0", "1.1"} <= set(summary["store_versions"]["Workflow"])
    # ...and after the migrations and contract only N+1's are left
    after, counts = summary["store_counts"][-1]["after"], summary["store_counts"][-1]["counts"]
    assert after == "steady N+1"
    assert set(counts["App"]) == {"1.1"} and set(counts["Assembly"]) == {"1.1"}
    events = [e["event"] for e in summary["events"]]
    assert "expand: add_column solum_app.source__v1_1 (JSON)" in events
    assert any(e.startswith("no release N service left; pins now App 1.1") for e in events)
    assert "contract: remove_column solum_app.source (TEXT)" in events

    page = _page(report)
    assert "passed" in "".join(page.find(".//p[@id='verdict']").itertext())  # type: ignore[union-attr]
    lanes = [r.findtext("title") for r in page.iter("rect") if r.get("class") == "lane"]
    for slot in ("conductor", "worker-1", "worker-2", "api-1", "api-2"):
        assert f"{slot}: N" in lanes and f"{slot}: N+1" in lanes
    assert lanes.index("api-1: N") < lanes.index("api-1: N+1")
    # the run leaves the releases as it found them: no indirection, no hook
    assert n.REGISTRY.indirection is None and n1.REGISTRY.indirection is None
    assert n.RELEASE.workflow_started == [] and n1.RELEASE.workflow_started == []


def test_an_acknowledged_write_deleted_before_the_check_fails_the_run(tmp_path: Path) -> None:
    code, summary, report = _demo(tmp_path, "--fault", "lost-write", duration="6")

    assert code == 1
    assert summary["failed"] == 0 and summary["writes_lost"] >= 1
    assert not summary["passed"]
    assert any("HTTP 404" in problem for problem in summary["problems"])
    assert "FAILED" in "".join(_page(report).find(".//p[@id='verdict']").itertext())  # type: ignore[union-attr]


def test_requests_failing_while_no_conductor_serves_fail_the_run(tmp_path: Path) -> None:
    code, summary, _ = _demo(tmp_path, "--fault", "conductor-outage", duration="6")

    assert code == 1
    assert summary["failed"] >= 1 and not summary["passed"]
    assert any("HTTP 503" in error for error in summary["errors"])


def test_the_demo_refuses_bad_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--duration", "1", "--report",
                                      str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "at least 5 seconds" in result.output
    result = CliRunner().invoke(app, ["demo", "--fault", "gremlins"])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["demo", "--db", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 2 and "SQL schema" in result.output


def test_the_demo_refuses_a_database_in_use_and_changes_nothing(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path}/used.db"
    store = n.RELEASE.open_store(url)
    store.ensure_schema()
    store.close()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        before = sorted(sa.inspect(conn).get_table_names())
        conn.execute(sa.text("CREATE TABLE marker (x INTEGER)"))
        conn.commit()
    result = CliRunner().invoke(app, ["demo", "--db", url, "--quiet", "--report",
                                      str(tmp_path / "r.html")])
    assert result.exit_code == 2, result.output
    assert "already has tables the demo creates" in result.output
    assert "solum_app" in result.output
    with engine.connect() as conn:
        assert sorted(sa.inspect(conn).get_table_names()) == sorted([*before, "marker"])
        assert conn.execute(sa.text("SELECT COUNT(*) FROM service_records")).scalar() == 0
    engine.dispose()


@pytest.fixture
def empty_db(postgres_url: str) -> Iterator[str]:
    """The URL of an empty PostgreSQL schema of this test's own (the
    database is shared), dropped afterwards."""
    import sqlalchemy as sa

    schema = f"solum_demo_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def test_the_same_upgrade_with_each_service_a_process_on_postgresql_and_rabbitmq(
        tmp_path: Path, empty_db: str, rabbit_url: str) -> None:
    code, summary, report = _demo(tmp_path, "--db", empty_db, "--transport", rabbit_url,
                                  "--apis", "1", "--workers", "1", "--logs",
                                  str(tmp_path / "logs"), duration="8")

    assert code == 0, summary
    assert summary["failed"] == 0 and summary["writes_lost"] == 0 and summary["passed"]
    assert [p["phase"] for p in summary["phases"]] == list(PHASES)
    assert {"1.0", "1.1"} <= set(summary["wire_versions"]["App"])  # seen by the services
    assert set(summary["store_counts"][-1]["counts"]["App"]) == {"1.1"}
    logs = sorted(p.name for p in (tmp_path / "logs").glob("*.log"))
    assert [name.split("-")[0] for name in logs].count("conductor") == 3  # N, N+1, contracted
    lanes = [r.findtext("title") for r in _page(report).iter("rect") if r.get("class") == "lane"]
    assert {"conductor: N", "conductor: N+1", "worker-1: N+1", "api-1: N+1"} <= set(lanes)


def test_a_kill_9_of_each_service_mid_upgrade_fails_no_request_and_loses_no_write(
        tmp_path: Path, empty_db: str, rabbit_url: str) -> None:
    code, summary, report = _demo(tmp_path, "--db", empty_db, "--transport", rabbit_url,
                                  "--apis", "2", "--workers", "1", "--kill", "conductor",
                                  "--kill", "worker", "--kill", "api", duration="8")

    assert code == 0, summary
    assert summary["failed"] == 0 and summary["writes_lost"] == 0 and summary["passed"]
    assert summary["workflows_unfinished"] == 0 and summary["writes_checked"] > 0
    assert [(k["slot"], k["release"]) for k in summary["kills"]] == [
        ("conductor", "N+1"), ("worker-1", "N"), ("api-1", "N")]
    # The dead API was found by failed connections: those requests went
    # elsewhere and succeeded (the run has 0 failed).
    assert summary["retried"] >= 1 and summary["retried_failed"] == 0
    assert sum(summary["retried_after"].values()) == summary["retried"]
    assert set(summary["retried_after"]) <= {"refused", "broken"}
    events = [e["event"] for e in summary["events"]]
    for slot in ("conductor", "worker-1", "api-1"):
        assert any(e.startswith(f"fault: kill -9 {slot} ") for e in events)
        assert f"{slot}: restarted (release {'N+1' if slot == 'conductor' else 'N'})" in events
    page = _page(report)
    kills = [line.findtext("title") or "" for line in page.iter("line")
             if line.get("class") == "kill"]
    assert sum(k.startswith("kill -9 api-1 (release N)") for k in kills) == 2  # two charts
    assert "kill -9: conductor (release N+1)" in "".join(
        page.find(".//p[@id='faults']").itertext())  # type: ignore[union-attr]


def test_the_kill_9_run_needs_service_processes_and_known_roles(tmp_path: Path) -> None:
    for extra, message in ((["--kill", "api"], "--transport"),
                           (["--kill", "database", "--transport", "rabbit://x/"],
                            "conductor, worker, api"),
                           (["--kill", "api", "--kill", "api", "--transport", "rabbit://x/"],
                            "at most once")):
        result = CliRunner().invoke(app, ["demo", "--report", str(tmp_path / "r.html"),
                                          *extra])
        assert result.exit_code == 2, result.output
        assert message in result.output
