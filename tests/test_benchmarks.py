"""The benchmarks still run (tiny counts, in-process only, nothing timed).

Benchmarks report speed and are not tests; these only keep them from
rotting when the API they use changes. No figure is asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Where the benchmarks look for the ovo side of the model by default
#: (``bench_objects.DEFAULT_ANCHOR``): the team's shared folder.
OVO_ANCHOR = ROOT.parent / "shared" / "bench" / "ovo_anchor.py"


def test_bench_rpc_runs_in_process_with_tiny_counts() -> None:
    """bench_rpc.py prints every table of the in-process run and, where the
    team's ovo anchor (``../shared/bench/ovo_anchor.py``, outside this
    repository) is at hand, the serializer comparison; it exits 0 (no
    broker: no ``--rabbit``)."""
    env = {key: value for key, value in os.environ.items() if key != "ROLLSAFE_BENCH_RABBIT_URL"}
    with_ovo = OVO_ANCHOR.exists()
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_rpc.py"), "--rounds", "1",
         "--seconds", "0.01", "--threads", "2", "--serializer-rounds", "1",
         *([] if with_ovo else ["--no-ovo"])],
        capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    expected = ["in-process transport", "class call, Application tree back",
                "instance call, object carrying the tree", "concurrent calls (2 client",
                "casts of the Application tree"]
    expected += (["VersionedObjectSerializer", "serialize pinned to 1.0 (ovo: version_manifest)"]
                 if with_ovo else ["serializer comparison with ovo left out (--no-ovo)"])
    for line in expected:
        assert line in result.stdout, f"{line!r} missing from:\n{result.stdout}"
    assert "RabbitMQ" not in result.stdout


def test_bench_migrate_runs_with_tiny_counts() -> None:
    """bench_migrate.py migrates every row three ways at three sizes and
    prints its table and verdict lines (it exits non-zero if a row was left)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_migrate.py"), "--rows", "40",
         "--batch", "7"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    for expected in ("rollsafe rewrite", "rollsafe each", "SQLAlchemy Core by hand",
                     "10 rows", "40 rows", "peak RSS"):
        assert expected in result.stdout, f"{expected!r} missing from:\n{result.stdout}"
