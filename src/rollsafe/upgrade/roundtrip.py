"""Round trips of payloads through the version history.

One definition serves the compatibility lint (:mod:`rollsafe.upgrade.compat`,
on deterministic samples), the Hypothesis round-trip helper and the golden
corpus (:mod:`rollsafe.testing`):

- **up and back**: a payload at version ``a``, read by the current code,
  sent at ``via`` (``via`` at least ``a``), read again and sent at ``a``
  comes back equal, field by field, and its ``.changes`` list keeps every
  name it had (it may gain some: a converter that builds a nested object
  marks it changed, which only costs a write). Fields the history declares
  lost on the way are not compared: those a :class:`~rollsafe.Removed`
  entry after ``a`` drops (the current code no longer holds them; older
  readers get the declared default).
- **down and stable**: for ``via`` older than ``a``, the ``via`` payload is
  stable: read and sent at ``via`` again, it is unchanged. (What ``a``
  holds beyond ``via`` is lost by design: enum fallbacks, added fields.)
  An object ``via`` cannot express at all raises
  :class:`~rollsafe.DowngradeError`, which is no defect of the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollsafe.errors import DecodeError, DowngradeError, IncompatibleVersionError, short_repr
from rollsafe.objects.api import from_primitive, to_primitive
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.history import Removed, Renamed

__all__ = ["RoundTripProblem", "round_trip", "trace_fields"]


@dataclass(frozen=True)
class RoundTripProblem:
    """One way a payload failed its round trip. ``field`` is the field's name
    at the payload's version when the problem is about one field."""

    field: str | None
    text: str

    def __str__(self) -> str:
        return self.text


def trace_fields(cls: type[VersionedObject], version: str) -> dict[str, str | None]:
    """Each field of ``cls`` at ``version`` -> its name in the current
    version, following :class:`~rollsafe.Renamed` entries; None for a field a
    later :class:`~rollsafe.Removed` entry dropped."""
    info = cls._rs_info
    info.build()
    start = info.history.resolve(version, info.name)
    names: dict[str, str | None] = {name: name for name in info.schemas[start.key]}
    for newer in info.history.versions[info.history.index(start) + 1:]:
        for change in newer.changes:
            if isinstance(change, Renamed):
                names = {k: change.new if v == change.old else v for k, v in names.items()}
            elif isinstance(change, Removed):
                names = {k: None if v == change.name else v for k, v in names.items()}
    return names


def round_trip(cls: type[VersionedObject], payload: dict[str, Any],
               via: str | None = None) -> list[RoundTripProblem]:
    """Send ``payload`` (an envelope of ``cls`` at some version ``a``)
    through the current code and out at ``via`` (default: current), as the
    module docstring says; return what did not survive (empty: all did).

    Raises :class:`~rollsafe.DowngradeError` only when ``via`` is older than
    ``a`` and the object cannot be expressed at ``via``."""
    info = cls._rs_info
    info.build()
    reg = info.registry
    a = payload.get(reg.key_version)
    name = info.name
    try:
        start = info.history.resolve(a, name) if isinstance(a, str) else None
        end = info.current if via is None else info.history.resolve(via, name)
    except IncompatibleVersionError as exc:
        return [RoundTripProblem(None, f"{name} {a}: {exc}")]
    if start is None:
        return [RoundTripProblem(None, f"{name}: the payload has no version string")]
    current = info.current.number
    route = f"{name} {a} -> {current} -> {end.number}"
    try:
        obj = from_primitive(payload, cls)
    except DecodeError as exc:
        return [RoundTripProblem(_field_of(exc, name), f"{name} {a} payload cannot be read "
                                                       f"by {current}: {exc}")]
    if end.key < start.key:
        sent = to_primitive(obj, end.number)  # DowngradeError: ``via`` cannot hold it
        try:
            again = to_primitive(from_primitive(sent, cls), end.number)
        except (DecodeError, DowngradeError) as exc:
            return [RoundTripProblem(None, f"{route}: the {end.number} payload cannot be read "
                                           f"and sent again: {exc}")]
        return _compare(reg, sent, again, frozenset(), f"{route} -> {current} -> {end.number}")
    try:
        back = to_primitive(from_primitive(to_primitive(obj, end.number), cls), start.number)
    except (DecodeError, DowngradeError) as exc:
        return [RoundTripProblem(_field_of(exc, name), f"{route} -> {a}: failed: {exc}")]
    dropped = frozenset(k for k, v in trace_fields(cls, start.number).items() if v is None)
    return _compare(reg, payload, back, dropped, f"{route} -> {a}")


def _field_of(exc: BaseException, name: str) -> str | None:
    """The top-level field an error's path names (``App.tags[2]`` -> ``tags``),
    looking through the errors it was raised from (an upgrade wraps a
    converter's error in a DecodeError about the whole object)."""
    seen: BaseException | None = exc
    while seen is not None:
        path = getattr(seen, "path", None)
        if isinstance(path, str) and path.startswith(f"{name}."):
            rest = path[len(name) + 1:]
            for stop in ".[":
                rest = rest.split(stop, 1)[0]
            return rest or None
        seen = seen.__cause__ or seen.__context__
    return None


def _compare(reg: Any, before: dict[str, Any], after: dict[str, Any], dropped: frozenset[str],
             route: str) -> list[RoundTripProblem]:
    problems = []
    old, new = before.get(reg.key_data, {}), after.get(reg.key_data, {})
    for key in sorted(old.keys() | new.keys()):
        if key in dropped:
            continue
        if key not in new or key not in old or old[key] != new[key]:
            problems.append(RoundTripProblem(key, (
                f"{route}: field {key!r} was {short_repr(old.get(key, '<absent>'), 80)}, came "
                f"back {short_repr(new.get(key, '<absent>'), 80)}")))
    # More names in .changes only cost writes; a name lost loses an update.
    lost = set(before.get(reg.key_changes, ())) - set(after.get(reg.key_changes, ())) - dropped
    if lost:
        problems.append(RoundTripProblem(None, (
            f"{route}: the changes list lost {sorted(lost)}: a reader would not write "
            "those updates")))
    return problems
