"""Fingerprints: a hash of each class version's canonical schema.

The canonical schema is plain data (names, type descriptions, defaults,
nested versions, remote-method signatures) serialised as sorted, compact
JSON, so the hash is the same on every Python version and changes when any
of those change: ``list[str]`` vs ``list[int]``, nullable or not, a default,
an enum value, the version a nested object is sent at, a remote method's
parameters. Remote methods belong to the current version only (older
versions are derived from the history, which does not record them).

A fingerprint reads ``"1.1-<32 hex>"``. A fingerprint file records every
version of every class of a registry; :func:`check_fingerprints` compares a
registry with it and explains each difference.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from rollsafe.errors import FingerprintMismatchError
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.history import parse_version
from rollsafe.objects.registry import Registry

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "REMOTE_KEY",
    "FingerprintProblem",
    "assert_fingerprints",
    "canonical_schema",
    "check_fingerprints",
    "fingerprint",
    "fingerprints",
    "read_fingerprints",
    "write_fingerprints",
]


def canonical_schema(cls: type[VersionedObject], version: str | None = None) -> dict[str, Any]:
    """The schema of ``cls`` at ``version`` (default current) as plain data."""
    info = cls._rs_info
    info.build()
    found = info.current if version is None else info.history.resolve(version, info.name)
    embedded = info.child_versions[found.key]

    def version_of(child: type[VersionedObject]) -> str:
        return embedded[child]

    fields = []
    for name, fld in sorted(info.schemas[found.key].items()):
        fields.append({
            "name": name,
            "type": fld.ftype.canonical(version_of),
            "default": fld.canonical_default(),
            "read_only": fld.read_only,
        })
    schema: dict[str, Any] = {"name": info.name, "version": found.number, "fields": fields}
    if found is info.current:
        schema["remote_methods"] = [m.canonical() for _, m in sorted(info.remotes.items())]
    return schema


def fingerprint(cls: type[VersionedObject], version: str | None = None) -> str:
    """``"<version>-<hash>"`` of the canonical schema at ``version`` (for the
    current version, remote-method signatures included)."""
    schema = canonical_schema(cls, version)
    return f"{schema['version']}-{_digest(schema)}"


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


#: The key of a fingerprint-file entry that records remote-method signatures.
REMOTE_KEY = "remote_methods"


def fingerprints(registry: Registry) -> dict[str, dict[str, str]]:
    """What a fingerprint file records, for the newest class of every name:
    each version's field schema (``version -> fingerprint``, without remote
    methods, so recording a new version never changes an older entry) and,
    under ``"remote_methods"``, ``"<current version>-<hash>"`` of the remote
    methods' signatures."""
    out: dict[str, dict[str, str]] = {}
    for cls in registry.newest():
        entry = {}
        for number in cls.VERSIONS.numbers:
            schema = canonical_schema(cls, number)
            remotes = schema.pop(REMOTE_KEY, None)
            entry[number] = f"{number}-{_digest(schema)}"
        entry[REMOTE_KEY] = f"{cls.VERSIONS.current}-{_digest(remotes)}"
        out[cls._rs_info.name] = entry
    return out


class FingerprintProblem(str):
    """One difference found by :func:`check_fingerprints`: a sentence saying
    what to do. ``recordable`` is True for expected growth (a new version or
    object) that recording the file accepts, False for a change that a
    recorded file would only hide."""

    recordable: bool

    def __new__(cls, text: str, *, recordable: bool = False) -> FingerprintProblem:
        problem = super().__new__(cls, text)
        problem.recordable = recordable
        return problem


def check_fingerprints(registry: Registry,
                       expected: dict[str, dict[str, str]]) -> list[FingerprintProblem]:
    """Every difference between ``registry`` and ``expected`` (as read from a
    fingerprint file), each a sentence saying what to do. Empty when equal."""
    actual = fingerprints(registry)
    problems: list[FingerprintProblem] = []
    add = problems.append
    P = FingerprintProblem
    for name in sorted(expected.keys() - actual.keys()):
        add(P(f"{name}: in the fingerprint file but no longer registered; removing an object "
              "breaks every older service that sends it"))
    for name in sorted(actual):
        now = dict(actual[name])
        before = dict(expected.get(name) or {})
        if not before:
            add(P(f"{name}: new object ({', '.join(v for v in now if v != REMOTE_KEY)}); "
                  "record it with --write", recordable=True))
            continue
        remote_now, remote_before = now.pop(REMOTE_KEY), before.pop(REMOTE_KEY, None)
        current = max(now, key=parse_version)
        for version in sorted(before.keys() | now.keys(), key=parse_version):
            old, new = before.get(version), now.get(version)
            if old == new:
                continue
            if new is None:
                add(P(f"{name} {version}: recorded but gone from the history; a version once "
                      "released must stay in the history"))
            elif old is None:
                add(P(f"{name} {version}: new version ({new}); record it with --write",
                      recordable=True))
            elif version == current:
                add(P(f"{name} {version}: schema changed without a version bump ({old} -> "
                      f"{new}); add Version(...) after {version} in {name}.VERSIONS "
                      "describing the change"))
            else:
                add(P(f"{name} {version}: the history no longer derives the schema released as "
                      f"{version} ({old} -> {new}); fix the history so that {version} is what "
                      "was released"))
        if remote_before != remote_now and current in before:
            if remote_before is not None and remote_before.startswith(f"{current}-"):
                add(P(f"{name} {current}: remote method signatures changed without a version "
                      f"bump; add Version(...) after {current} in {name}.VERSIONS"))
            else:
                add(P(f"{name} {current}: remote methods not recorded for this version; record "
                      "them with --write", recordable=True))
    return problems


def read_fingerprints(path: str | Path) -> dict[str, dict[str, str]]:
    """Load a fingerprint file."""
    from pathlib import Path

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a rollsafe fingerprint file (expected a JSON object)")
    for name, entry in data.items():
        if not isinstance(entry, dict) or not all(isinstance(x, str) for x in entry.values()):
            raise ValueError(f"entry {name!r} is not a map of versions to fingerprints")
        for key in entry:
            if key == REMOTE_KEY:
                continue
            try:
                parse_version(key)
            except ValueError:
                raise ValueError(f"entry {name!r} has {key!r}, which is not a version") from None
    return data


def write_fingerprints(registry: Registry, path: str | Path) -> dict[str, dict[str, str]]:
    """Record the fingerprints of ``registry`` in ``path``; return them."""
    from pathlib import Path

    data = fingerprints(registry)
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return data


def assert_fingerprints(registry: Registry, path: str | Path) -> None:
    """Raise :class:`FingerprintMismatchError` listing every difference
    between ``registry`` and the file at ``path``."""
    problems = check_fingerprints(registry, read_fingerprints(path))
    if problems:
        raise FingerprintMismatchError(
            f"object fingerprints differ from {path}:\n" + "\n".join(f"  - {p}" for p in problems))
