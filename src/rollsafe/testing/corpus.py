"""The golden corpus: payloads captured per release, replayed on today's code.

At each release, capture what it writes::

    corpus/<release>/<Object>-<version>.json    # a JSON list of envelopes

one file per object and per version of its history (a release writes older
versions too, while it is pinned to them). Commit the folder. From then on
:func:`check_corpus` reads every captured payload with the current code and
sends it again at its own version: it must come back identical (fields a
later ``Removed`` entry dropped aside, since the history declares them lost).
A payload that no longer decodes, or comes back different, means today's
code would misread what that release wrote to the store or the bus.

The payloads are the objects you give (``examples``) or, for objects you do
not, the deterministic samples of :mod:`rollsafe.upgrade.samples`, so
capturing twice writes the same files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollsafe.errors import DowngradeError, RoundTripError, SnapshotError
from rollsafe.objects.api import to_primitive
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.history import parse_version
from rollsafe.objects.registry import Registry
from rollsafe.upgrade.roundtrip import round_trip
from rollsafe.upgrade.samples import sample_objects

__all__ = ["CorpusProblem", "assert_corpus", "capture_corpus", "check_corpus"]


@dataclass(frozen=True)
class CorpusProblem:
    """A captured payload that today's code misreads: where it is
    (``release``, ``file``, ``index`` in the file), which ``object`` and
    ``version``, the ``field`` when one is to blame, and what happened."""

    release: str
    file: str
    index: int
    object: str
    version: str
    field: str | None
    text: str

    def __str__(self) -> str:
        return f"{self.release}/{self.file}[{self.index}]: {self.text}"


def capture_corpus(registry: Registry, release: str, root: str | Path, *,
                   examples: Iterable[VersionedObject] = ()) -> list[Path]:
    """Write ``root/release/<Object>-<version>.json`` for every object of
    ``registry`` and every version of its history: the ``examples`` of that
    class (else its deterministic samples), each sent at that version
    (objects a version cannot express are left out). Files already in
    ``root/release`` are replaced. Returns the files written."""
    if not release or release in (".", "..") or any(c in release for c in "/\\"):
        raise SnapshotError(f"release name {release!r} cannot name a corpus folder")
    given: dict[str, list[VersionedObject]] = {}
    for obj in examples:
        given.setdefault(type(obj)._rs_info.name, []).append(obj)
    unknown = sorted(set(given) - set(registry.names()))
    if unknown:
        raise SnapshotError(f"examples of objects {registry.namespace} does not hold: {unknown}")
    folder = Path(root) / release
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    written = []
    for cls in registry.newest():
        name = cls._rs_info.name
        objects: list[VersionedObject] = list(given.get(name) or sample_objects(cls))
        for number in cls.VERSIONS.numbers:
            payloads = []
            for obj in objects:
                try:
                    payloads.append(to_primitive(obj, number))
                except DowngradeError:
                    continue
            if payloads:
                path = folder / f"{name}-{number}.json"
                path.write_text(json.dumps(payloads, indent=1, sort_keys=True,
                                           ensure_ascii=False) + "\n", encoding="utf-8")
                written.append(path)
    return written


def check_corpus(registry: Registry, root: str | Path) -> list[CorpusProblem]:
    """Every captured payload under ``root`` that today's ``registry``
    misreads (empty: all decode and re-encode identically). Raises
    :class:`~rollsafe.errors.SnapshotError` when ``root`` holds no corpus
    or a file is not one."""
    folder = Path(root)
    releases = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    files = [(release, path) for release in releases for path in sorted(release.glob("*.json"))]
    if not files:
        raise SnapshotError(f"no golden corpus in {root}: capture one per release with "
                            "capture_corpus() or pytest --rollsafe-capture-corpus=RELEASE")
    problems = []
    for release, path in files:
        for index, payload, name, version in _payloads(release, path, registry):
            where = (release.name, path.name, index, name, version)
            if name not in registry:
                problems.append(CorpusProblem(*where, None, (
                    f"{name} is no longer registered: what release {release.name} wrote "
                    "cannot be read")))
                continue
            for problem in round_trip(registry.get(name), payload, via=version):
                problems.append(CorpusProblem(*where, problem.field, problem.text))
    return problems


def assert_corpus(registry: Registry, root: str | Path) -> None:
    """Raise :class:`~rollsafe.errors.RoundTripError` listing every captured payload
    under ``root`` that today's ``registry`` misreads."""
    problems = check_corpus(registry, root)
    if problems:
        raise RoundTripError(f"the golden corpus in {root} no longer round-trips:\n"
                             + "\n".join(f"  - {p}" for p in problems))


def _payloads(release: Path, path: Path, registry: Registry
              ) -> Iterable[tuple[int, dict[str, Any], str, str]]:
    name, _, version = path.stem.rpartition("-")
    where = f"{release.name}/{path.name}"
    try:
        parse_version(version)
    except ValueError:
        raise SnapshotError(f"{where}: corpus files are named <Object>-<version>.json") from None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{where}: cannot read it: {exc}") from None
    if not isinstance(data, list):
        raise SnapshotError(f"{where}: a corpus file holds a JSON list of envelopes")
    for index, payload in enumerate(data):
        if not isinstance(payload, dict) or payload.get(registry.key_name) != name \
                or payload.get(registry.key_version) != version:
            raise SnapshotError(f"{where}[{index}]: not a {name} {version} envelope (of "
                                f"namespace {registry.namespace})")
        yield index, payload, name, version
