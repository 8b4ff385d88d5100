"""``solumlite api`` (``python -m solumlite``) in a subprocess: it serves
the API of the release it is given, and refuses bad usage with exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from solum_support import free_port

SOLUMLITE = [sys.executable, "-m", "solumlite"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SOLUMLITE, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})


def wait_for_health(url: str, process: subprocess.Popen[str]) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the API exited with {process.returncode}: "
                                 f"{process.stderr.read() if process.stderr else ''}")
        try:
            body: dict[str, object] = httpx.get(f"{url}/healthz", timeout=1).json()
            return body
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the API did not answer within 30 s")


@pytest.mark.parametrize(("release", "name"), [("n", "N"), ("n1", "N+1")])
def test_the_api_command_serves_a_release_until_interrupted(
        tmp_path: Path, release: str, name: str) -> None:
    port = free_port()
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"file-token-01": "acme"}))
    process = subprocess.Popen(
        [*SOLUMLITE, "api", "--release", release, "--db", f"sqlite:///{tmp_path}/cli.db",
         "--port", str(port), "--tokens-file", str(tokens), "--token", "flag-token-01=globex",
         "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_for_health(url, process)["release"] == name
        made = httpx.post(f"{url}/v1/languagepacks", json={"name": "go", "base_image": "go"},
                          headers={"Authorization": "Bearer file-token-01"})
        assert made.status_code == 201, made.text
        other = httpx.get(f"{url}/v1/languagepacks/{made.json()['id']}",
                          headers={"Authorization": "Bearer flag-token-01"})
        assert other.status_code == 404
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""


@pytest.mark.parametrize(("args", "message"), [
    (["--release", "n", "--db", "sqlite://"], "give at least one --token"),
    (["--release", "n2", "--db", "sqlite://", "--token", "a-token-1=p"], "no release 'n2'"),
    (["--release", "n", "--db", "sqlite://", "--token", "short=p"], "8 to 256"),
    (["--release", "n", "--db", "sqlite://", "--token", "no-equals-sign"], "TOKEN=PROJECT"),
    (["--release", "n", "--db", "none://", "--token", "a-token-1=p"], "give --transport"),
    (["--release", "n", "--db", "mysql://x", "--token", "a-token-1=p"], "no backend"),
    (["--release", "n", "--db", "sqlite://", "--token", "a-token-1=p", "--operator-token",
      "a-token-1"], "also a project's token"),
])
def test_bad_usage_exits_2_saying_why(args: list[str], message: str) -> None:
    done = run("api", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr


def test_the_api_command_serves_the_dashboard_to_the_operator_token(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*SOLUMLITE, "api", "--release", "n1", "--db", f"sqlite:///{tmp_path}/cli.db",
         "--port", str(port), "--token", "flag-token-01=globex", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SOLUMLITE_OPERATOR_TOKEN": "operator-token-01"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, process)
        page = httpx.get(f"{url}/dashboard")
        assert page.status_code == 200 and "<html" in page.text.lower()
        status = httpx.get(f"{url}/dashboard/status",
                           headers={"Authorization": "Bearer operator-token-01"})
        assert status.status_code == 200, status.text
        assert {"services", "pins", "migrations"} <= set(status.json())
        assert httpx.get(f"{url}/dashboard/status", headers={
            "Authorization": "Bearer flag-token-01"}).status_code == 403
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0
    assert f"operator dashboard: http://127.0.0.1:{port}/dashboard" in (
        process.stderr.read() if process.stderr else "")
