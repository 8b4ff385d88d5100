"""``rollsafe compat snapshot`` and ``rollsafe compat check``, run for real
in subprocesses against object modules written into a temporary folder:
release N is snapshotted, the module is then rewritten as the next release.

Exit codes: 0 clean, 1 findings, 2 bad usage or an unreadable snapshot."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROLLSAFE = Path(sys.executable).with_name("rollsafe")

HEADER = """\
from typing import Literal

from rollsafe import (Added, EnumValuesAdded, History, Registry, Version, VersionedObject,
                      field, remotable)
from rollsafe.rpc.releases import ReleaseHistory

reg = Registry("clicompat")

"""

# Release N.
JOB_1_0 = """\
class Job(VersionedObject, registry=reg):
    name: str = field(max_length=20)
    state: Literal["queued", "done"] = "queued"

    @remotable
    def run(self, force: bool = False) -> None:
        pass
"""

# Release N+1 done wrongly: a new enum value, written by default at once;
# and a required field added.
JOB_UNSAFE = """\
class Job(VersionedObject, registry=reg):
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Jobs can be cancelled",
                               EnumValuesAdded("state", ["cancelled"])))
    name: str = field(max_length=20)
    state: Literal["queued", "done", "cancelled"] = "cancelled"
    owner: str

    @remotable
    def run(self, force: bool = False) -> None:
        pass
"""

# Release N+1 done as the findings say.
JOB_SAFE = """\
class Job(VersionedObject, registry=reg):
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Jobs can be cancelled; they have an owner",
                               EnumValuesAdded("state", ["cancelled"],
                                               fallback={"cancelled": "done"}),
                               Added("owner")))
    name: str = field(max_length=20)
    state: Literal["queued", "done", "cancelled"] = "queued"
    owner: str = "nobody"

    @remotable
    def run(self, force: bool = False) -> None:
        pass

RELEASES = ReleaseHistory([("N", {"Job": "1.0"}), ("N+1", {"Job": "1.1"})])
"""

SPEC = "objmod:reg"


def write_module(folder: Path, body: str) -> None:
    (folder / "objmod.py").write_text(HEADER + body, encoding="utf-8")


def rollsafe(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1",
           "TERM": "dumb"}
    return subprocess.run([str(ROLLSAFE), "compat", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def flat(text: str) -> str:
    """Output with rich's box drawing and line breaks folded away."""
    return re.sub(r"[\s│┃┆┊|]+", " ", text)


def released(tmp_path: Path) -> Path:
    """The folder after release N was snapshotted into snaps/ with its corpus."""
    write_module(tmp_path, JOB_1_0)
    done = rollsafe(tmp_path, "snapshot", "-r", SPEC, "--release", "N", "--dir", "snaps",
                    "--corpus", "corpus")
    assert done.returncode == 0, done.stderr
    assert "release N: 1 objects, 1 versions -> snaps/N.json" in flat(done.stdout)
    return tmp_path


def test_snapshot_writes_a_file_per_release_and_the_corpus(tmp_path: Path) -> None:
    folder = released(tmp_path)
    data = json.loads((folder / "snaps" / "N.json").read_text(encoding="utf-8"))
    assert data["release"] == "N" and data["namespace"] == "clicompat"
    assert data["objects"]["Job"]["current"] == "1.0"
    assert data["objects"]["Job"]["remote_methods"][0]["name"] == "run"
    assert (folder / "corpus" / "N" / "Job-1.0.json").is_file()


def test_check_of_the_unchanged_tree_exits_0(tmp_path: Path) -> None:
    folder = released(tmp_path)
    done = rollsafe(folder, "check", "-r", SPEC, "--snapshots", "snaps", "--corpus", "corpus")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "clicompat: compatible with N" in done.stdout


def test_unsafe_changes_exit_1_with_a_table_of_findings_and_fixes(tmp_path: Path) -> None:
    folder = released(tmp_path)
    write_module(folder, JOB_UNSAFE)
    done = rollsafe(folder, "check", "-r", SPEC, "--snapshots", "snaps", "--corpus", "corpus")
    assert done.returncode == 1, done.stdout + done.stderr
    text = flat(done.stdout)
    for expected in ("required-field", "value-too-early", "corpus",
                     "give 'owner' a default", "(vs N)"):
        assert expected in text, expected
    assert "3 finding(s)" in done.stdout  # two rules, and the corpus


def test_json_output_lists_each_finding(tmp_path: Path) -> None:
    folder = released(tmp_path)
    write_module(folder, JOB_UNSAFE)
    done = rollsafe(folder, "check", "-r", SPEC, "--snapshot", "snaps/N.json", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["clean"] is False and report["releases"] == ["N"]
    assert {(f["rule"], f["field"]) for f in report["findings"]} == {
        ("required-field", "owner"), ("value-too-early", "state")}
    assert all(f["fix"] and f["releases"] == ["N"] for f in report["findings"])


def test_the_fixed_release_exits_0_and_ignore_accepts_a_decision(tmp_path: Path) -> None:
    folder = released(tmp_path)
    write_module(folder, JOB_SAFE)
    done = rollsafe(folder, "check", "-r", SPEC, "--snapshots", "snaps", "--corpus", "corpus",
                    "--json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout) == {"namespace": "clicompat", "releases": ["N"],
                                       "clean": True, "findings": []}
    write_module(folder, JOB_UNSAFE)
    accepted = rollsafe(folder, "check", "-r", SPEC, "--snapshots", "snaps",
                        "--ignore", "required-field:Job.owner", "--ignore", "value-too-early:Job",
                        "--json")
    assert accepted.returncode == 0, accepted.stdout


def test_releases_of_a_release_history_are_snapshotted_and_checked_together(
        tmp_path: Path) -> None:
    write_module(tmp_path, JOB_SAFE)
    done = rollsafe(tmp_path, "snapshot", "-r", SPEC, "--releases", "objmod:RELEASES",
                    "--dir", "snaps")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == ["N+1.json", "N.json"]
    checked = rollsafe(tmp_path, "check", "-r", SPEC, "--snapshots", "snaps")
    assert checked.returncode == 0, checked.stdout
    assert "compatible with N+1, N" in checked.stdout  # in file-name order


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    folder = released(tmp_path)
    (folder / "empty").mkdir()
    (folder / "broken.json").write_text("{}", encoding="utf-8")
    cases = [
        (["check", "-r", SPEC], "give --snapshots DIR"),
        (["check", "-r", SPEC, "--snapshots", "empty"], "no snapshot in empty"),
        (["check", "-r", SPEC, "--snapshots", "missing"], "missing is not a directory"),
        (["check", "-r", SPEC, "--snapshot", "broken.json"], "not a rollsafe compatibility"),
        (["check", "-r", SPEC, "--snapshots", "snaps", "--ignore", "nope"], "unknown rule"),
        (["check", "-r", "nomodule:reg", "--snapshots", "snaps"], "importing 'nomodule'"),
        (["check", "-r", SPEC, "--snapshots", "snaps", "--corpus", "empty"],
         "no golden corpus in empty"),
        (["snapshot", "-r", SPEC, "--release", "N"], "give exactly one of --dir"),
        (["snapshot", "-r", SPEC, "--dir", "x"], "give exactly one of --release"),
    ]
    for args, message in cases:
        done = rollsafe(folder, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in flat(done.stderr), (args, done.stderr)


def test_rules_lists_every_rule(tmp_path: Path) -> None:
    from rollsafe.upgrade.compat import RULES

    done = rollsafe(tmp_path, "rules")
    assert done.returncode == 0
    for rule in RULES:
        assert rule in done.stdout
