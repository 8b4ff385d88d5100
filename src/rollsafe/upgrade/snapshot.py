"""Compatibility snapshots: what one release of a service declared.

A snapshot records, for every object of a registry, its current version,
the canonical schema of every version of its history
(:func:`rollsafe.canonical_schema`, the data fingerprints hash) and the
signatures of its remote methods. It is written once per release
(:func:`take_snapshot`, ``rollsafe compat snapshot``), committed, and read
by the compatibility lint (:mod:`rollsafe.upgrade.compat`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollsafe.errors import IncompatibleVersionError, SnapshotError
from rollsafe.objects.fingerprint import REMOTE_KEY, canonical_schema
from rollsafe.objects.history import parse_version
from rollsafe.objects.registry import Registry

__all__ = [
    "SNAPSHOT_FORMAT",
    "ObjectRecord",
    "Snapshot",
    "read_snapshot",
    "read_snapshots",
    "take_snapshot",
    "write_snapshot",
]

#: The ``format`` key of a snapshot file.
SNAPSHOT_FORMAT = "rollsafe-compat-snapshot"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ObjectRecord:
    """What a snapshot records about one object: its ``current`` version,
    the canonical schema of every version up to it, and its remote methods'
    signatures (None when unknown: a snapshot derived for an older version)."""

    current: str
    versions: dict[str, dict[str, Any]]
    remote_methods: list[dict[str, Any]] | None


@dataclass(frozen=True)
class Snapshot:
    """The objects one release of a service declared (see the module doc)."""

    release: str
    namespace: str
    objects: dict[str, ObjectRecord]

    def to_json(self) -> dict[str, Any]:
        """The snapshot as the plain data a snapshot file holds."""
        return {
            "format": SNAPSHOT_FORMAT,
            "format_version": _FORMAT_VERSION,
            "release": self.release,
            "namespace": self.namespace,
            "objects": {name: {"current": rec.current, "versions": rec.versions,
                               REMOTE_KEY: rec.remote_methods}
                        for name, rec in sorted(self.objects.items())},
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "snapshot") -> Snapshot:
        """Read the plain data of a snapshot file; :class:`SnapshotError`
        (naming ``source``) when it is not one."""
        def bad(problem: str) -> SnapshotError:
            return SnapshotError(f"{source}: {problem}; write snapshots with "
                                 "'rollsafe compat snapshot'")

        if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
            raise bad("not a rollsafe compatibility snapshot")
        if data.get("format_version") != _FORMAT_VERSION:
            raise bad(f"format version {data.get('format_version')!r} is not "
                      f"{_FORMAT_VERSION}, the one this rollsafe reads")
        release, namespace, objects = data.get("release"), data.get("namespace"), \
            data.get("objects")
        if not isinstance(release, str) or not release or not isinstance(namespace, str):
            raise bad("release and namespace must be strings")
        if not isinstance(objects, dict):
            raise bad("objects must be a map")
        records = {}
        for name, entry in objects.items():
            if not isinstance(entry, dict):
                raise bad(f"object {name!r} is not a map")
            current, versions, remotes = (entry.get("current"), entry.get("versions"),
                                          entry.get(REMOTE_KEY))
            if not isinstance(current, str) or not isinstance(versions, dict) \
                    or current not in versions:
                raise bad(f"object {name!r} must record its current version's schema")
            for number, schema in versions.items():
                try:
                    parse_version(number)
                except ValueError as exc:
                    raise bad(f"object {name!r}: {exc}") from None
                if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list) \
                        or not all(isinstance(f, dict) and {"name", "type", "default"} <= f.keys()
                                   for f in schema["fields"]):
                    raise bad(f"object {name!r} {number}: not a canonical schema")
            if remotes is not None and not (isinstance(remotes, list) and all(
                    isinstance(m, dict) and {"name", "kind", "params"} <= m.keys()
                    for m in remotes)):
                raise bad(f"object {name!r}: remote methods must be a list of signatures")
            records[name] = ObjectRecord(current, versions, remotes)
        return cls(release, namespace, records)


def take_snapshot(registry: Registry, release: str, *,
                  manifest: Mapping[str, str] | None = None) -> Snapshot:
    """The snapshot of ``registry`` as release ``release``.

    ``manifest`` (object name -> version, e.g. a :class:`ReleaseHistory`
    entry) derives the snapshot an older release would have recorded, from
    today's histories: each named object is recorded up to that version,
    the others are left out. Such a snapshot trusts today's histories and
    knows remote methods only for objects at their current version; record
    real snapshots from then on."""
    if not isinstance(release, str) or not release.strip():
        raise SnapshotError("a snapshot needs a release name (e.g. the version being released)")
    unknown = sorted(set(manifest or ()) - set(registry.names()))
    if unknown:
        raise SnapshotError(f"release {release} names objects {registry.namespace} no longer "
                            f"registers: {unknown}; its snapshot cannot be derived from today's "
                            "histories")
    objects = {}
    for cls in registry.newest():
        info = cls._rs_info
        info.build()
        if manifest is None:
            pinned = info.current
        elif info.name not in manifest:
            continue
        else:
            try:
                pinned = info.history.resolve(manifest[info.name], info.name)
            except IncompatibleVersionError as exc:
                raise SnapshotError(f"release {release}: {exc}") from None
        versions = {}
        for version in info.history.versions[:info.history.index(pinned) + 1]:
            schema = canonical_schema(cls, version.number)
            schema.pop(REMOTE_KEY, None)
            versions[version.number] = schema
        remotes = (canonical_schema(cls)[REMOTE_KEY] if pinned is info.current else None)
        objects[info.name] = ObjectRecord(pinned.number, versions, remotes)
    return Snapshot(release, registry.namespace, objects)


def write_snapshot(snapshot: Snapshot, path: str | Path) -> Path:
    """Write ``snapshot`` to ``path`` (a file), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(snapshot.to_json(), indent=2, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_snapshot(path: str | Path) -> Snapshot:
    """Load one snapshot file; :class:`SnapshotError` when it cannot be read
    or is not a snapshot."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SnapshotError(f"{path} is not JSON: {exc}") from None
    return Snapshot.from_json(data, str(path))


def read_snapshots(directory: str | Path) -> list[Snapshot]:
    """Every ``*.json`` snapshot in ``directory``, by file name; release
    names must be unique."""
    folder = Path(directory)
    if not folder.is_dir():
        raise SnapshotError(f"{directory} is not a directory of snapshots")
    snapshots = [read_snapshot(path) for path in sorted(folder.glob("*.json"))]
    seen: set[str] = set()
    for snap in snapshots:
        if snap.release in seen:
            raise SnapshotError(f"{directory}: two snapshots of release {snap.release!r}")
        seen.add(snap.release)
    return snapshots
