"""solumlite's releases pass rollsafe's compatibility lint: release N+1
against the snapshot committed when N was released, and N against it too
(N's code still is what was released)."""

from __future__ import annotations

from pathlib import Path

import pytest

import solumlite
from rollsafe.testing.roundtrips import check_round_trips
from rollsafe.upgrade.compat import check_compat
from rollsafe.upgrade.snapshot import read_snapshots, take_snapshot
from solumlite.releases import n, n1

SNAPSHOTS = Path(solumlite.__file__).parent / "releases" / "snapshots"


def test_the_committed_snapshot_of_n_is_what_release_n_declares() -> None:
    (snapshot,) = read_snapshots(SNAPSHOTS)
    assert snapshot.release == "N"
    assert take_snapshot(n.REGISTRY, "N") == snapshot


@pytest.mark.parametrize("release", [n, n1], ids=["N", "N+1"])
def test_each_release_is_compatible_with_every_snapshot(release: object) -> None:
    findings = check_compat(release.REGISTRY, read_snapshots(SNAPSHOTS))  # type: ignore[attr-defined]
    assert [f"{f.rule} {f.object}.{f.field}: {f.problem}" for f in findings] == []


def test_every_version_pair_of_n_plus_1_round_trips() -> None:
    assert check_round_trips(n1.REGISTRY, max_examples=10) == []
