"""The golden corpus (rollsafe.testing.corpus): payloads captured at release
N replay identically on a release that evolved correctly, and a release
that breaks them is caught, naming the file, the payload and the field."""

import json
from pathlib import Path
from typing import Literal

import pytest

from rollsafe import (
    Added,
    History,
    NestedVersion,
    Registry,
    Removed,
    Renamed,
    Retyped,
    Version,
    VersionedObject,
    field,
)
from rollsafe.errors import RoundTripError, SnapshotError
from rollsafe.testing.corpus import assert_corpus, capture_corpus, check_corpus


def release_n() -> Registry:
    reg = Registry("corpus")

    class Disk(VersionedObject, registry=reg):
        size_gb: int
        kind: Literal["ssd", "hdd"] = "ssd"

    class Server(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0", "Initial version"),
                           Version("1.1", "Servers are named", Renamed("label", "name")))
        name: str = field(max_length=30)
        legacy: bool = False
        disks: list[Disk] = field(default_factory=list)

    return reg


def release_n1() -> Registry:
    """N+1 done right: a field added, one removed, one renamed, declared."""
    reg = Registry("corpus")

    class Disk(VersionedObject, registry=reg):
        size_gb: int
        kind: Literal["ssd", "hdd"] = "ssd"

    class Server(VersionedObject, registry=reg):
        VERSIONS = History(
            Version("1.0", "Initial version"),
            Version("1.1", "Servers are named", Renamed("label", "name")),
            Version("1.2", "Hostnames; no legacy flag", Renamed("name", "hostname"),
                    Added("zone"), Removed("legacy", bool, default=False)),
        )
        hostname: str = field(max_length=30)
        zone: str = "eu"
        disks: list[Disk] = field(default_factory=list)

    return reg


def release_broken() -> Registry:
    """N+1 done wrongly: Disk sizes go through converters that lose data."""
    reg = Registry("corpus")

    class Disk(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0", "Initial version"),
                           Version("1.1", "Sizes in TB",
                                   Retyped("size_gb", int, upgrade=lambda v: v // 1000,
                                           downgrade=lambda v: v * 1000)))
        size_gb: int
        kind: Literal["ssd", "hdd"] = "ssd"

    class Server(VersionedObject, registry=reg):
        VERSIONS = History(
            Version("1.0", "Initial version"),
            Version("1.1", "Servers are named", Renamed("label", "name")),
            Version("1.2", "Disks in TB", NestedVersion("disks", "1.1")))
        name: str = field(max_length=30)
        legacy: bool = False
        disks: list[Disk] = field(default_factory=list)

    return reg


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    capture_corpus(release_n(), "N", tmp_path)
    return tmp_path


def test_capture_writes_one_file_per_object_and_version(corpus: Path) -> None:
    assert sorted(p.name for p in (corpus / "N").iterdir()) == [
        "Disk-1.0.json", "Server-1.0.json", "Server-1.1.json"]


def test_capture_is_deterministic_and_replaces_the_release(tmp_path: Path) -> None:
    first = capture_corpus(release_n(), "N", tmp_path)
    before = {p.name: p.read_bytes() for p in first}
    (tmp_path / "N" / "Stale-1.0.json").write_text("[]", encoding="utf-8")
    again = capture_corpus(release_n(), "N", tmp_path)
    assert {p.name: p.read_bytes() for p in again} == before
    assert not (tmp_path / "N" / "Stale-1.0.json").exists()


def test_examples_given_are_the_payloads_captured(tmp_path: Path) -> None:
    reg = release_n()
    server = reg.get("Server")(name="db-1", disks=[reg.get("Disk")(size_gb=500)])
    capture_corpus(reg, "N", tmp_path, examples=[server])
    payloads = json.loads((tmp_path / "N" / "Server-1.0.json").read_text(encoding="utf-8"))
    assert [p["versioned_object.data"]["label"] for p in payloads] == ["db-1"]
    assert check_corpus(reg, tmp_path) == []


def test_the_corpus_replays_on_the_release_that_captured_it(corpus: Path) -> None:
    assert check_corpus(release_n(), corpus) == []


def test_the_corpus_replays_on_a_release_that_evolved_correctly(corpus: Path) -> None:
    reg = release_n1()
    assert check_corpus(reg, corpus) == []
    capture_corpus(reg, "N+1", corpus)
    assert check_corpus(reg, corpus) == []


def test_a_lossy_type_change_is_caught_naming_the_payload(corpus: Path) -> None:
    problems = check_corpus(release_broken(), corpus)
    assert problems
    assert {(p.release, p.file, p.object) for p in problems} == {
        ("N", "Disk-1.0.json", "Disk"), ("N", "Server-1.0.json", "Server"),
        ("N", "Server-1.1.json", "Server")}
    disk = next(p for p in problems if p.object == "Disk")
    assert disk.field == "size_gb"
    assert "field 'size_gb' was" in disk.text and str(disk).startswith("N/Disk-1.0.json[")
    with pytest.raises(RoundTripError, match="no longer round-trips"):
        assert_corpus(release_broken(), corpus)


def test_an_object_no_longer_registered_is_a_problem(corpus: Path) -> None:
    reg = Registry("corpus")

    class Disk(VersionedObject, registry=reg):
        size_gb: int
        kind: Literal["ssd", "hdd"] = "ssd"

    problems = check_corpus(reg, corpus)
    assert {p.object for p in problems} == {"Server"}
    assert "Server is no longer registered" in problems[0].text


def test_a_required_field_added_without_history_is_caught(corpus: Path) -> None:
    reg = Registry("corpus")

    class Disk(VersionedObject, registry=reg):
        size_gb: int
        kind: Literal["ssd", "hdd"] = "ssd"
        serial: str

    problems = [p for p in check_corpus(reg, corpus) if p.file == "Disk-1.0.json"]
    assert problems and all("required field missing" in p.text for p in problems)


def test_no_corpus_or_a_bad_file_is_a_snapshot_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no golden corpus in"):
        check_corpus(release_n(), tmp_path / "none")
    (tmp_path / "N").mkdir()
    (tmp_path / "N" / "Disk-1.0.json").write_text("{}", encoding="utf-8")
    with pytest.raises(SnapshotError, match="holds a JSON list of envelopes"):
        check_corpus(release_n(), tmp_path)
    (tmp_path / "N" / "Disk-1.0.json").write_text('[{"x": 1}]', encoding="utf-8")
    with pytest.raises(SnapshotError, match=r"N/Disk-1.0.json\[0\]: not a Disk 1.0 envelope"):
        check_corpus(release_n(), tmp_path)
    with pytest.raises(SnapshotError, match="cannot name a corpus folder"):
        capture_corpus(release_n(), "../up", tmp_path)
