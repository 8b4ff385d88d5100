"""Release history: which object versions each release of a service reads.

Like Nova's service-version history, but written as manifests: each entry
maps a release name to the versions its code reads (its registry's
manifest). The newest entry must match the code: :meth:`ReleaseHistory.check`
lists every object whose version changed without a release entry, so a test
fails until one is added. The history gives the pins of a named release (an
operator's hold: ``Fleet(manual_pins=releases.manifest("N"))``) and the
oldest versions still supported (``Fleet(oldest_supported=...)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rollsafe.errors import DefinitionError
from rollsafe.objects.history import parse_version
from rollsafe.objects.registry import Registry

__all__ = ["ReleaseHistory"]


class ReleaseHistory:
    """Releases, oldest first, each with the manifest its code reads."""

    def __init__(self, releases: Iterable[tuple[str, Mapping[str, str]]]) -> None:
        self._releases: list[tuple[str, dict[str, str]]] = []
        seen: set[str] = set()
        for name, manifest in releases:
            if not isinstance(name, str) or not name or name in seen:
                raise DefinitionError(f"release names must be unique strings, got {name!r}")
            for obj, version in manifest.items():
                try:
                    parse_version(version)
                except ValueError as exc:
                    raise DefinitionError(f"release {name}: {obj}: {exc}") from None
            if self._releases:
                _, before = self._releases[-1]
                older = [o for o, v in manifest.items()
                         if o in before and parse_version(v) < parse_version(before[o])]
                if older:
                    raise DefinitionError(f"release {name} reads older versions of "
                                          f"{', '.join(sorted(older))} than the release "
                                          "before it; releases only move forward")
            seen.add(name)
            self._releases.append((name, dict(manifest)))
        if not self._releases:
            raise DefinitionError("a release history needs at least one release")

    @property
    def names(self) -> list[str]:
        """Release names, oldest first."""
        return [name for name, _ in self._releases]

    @property
    def latest(self) -> str:
        """The newest release's name."""
        return self._releases[-1][0]

    def manifest(self, release: str) -> dict[str, str]:
        """The versions ``release`` reads; KeyError names the known ones."""
        for name, manifest in self._releases:
            if name == release:
                return dict(manifest)
        raise KeyError(f"no release {release!r}; known: {', '.join(self.names)}")

    def oldest_supported(self, keep: int = 2) -> dict[str, str]:
        """Per object, the oldest version the last ``keep`` releases read:
        what a joining service must at least read (``keep=2`` supports
        rolling from the previous release only)."""
        if keep < 1:
            raise ValueError("keep must be at least 1")
        window = self._releases[-keep:]
        out: dict[str, str] = {}
        for _, manifest in window:
            for obj, version in manifest.items():
                if obj not in out or parse_version(version) < parse_version(out[obj]):
                    out[obj] = version
        return out

    def check(self, registry: Registry) -> list[str]:
        """Every object whose version in ``registry`` (the code) differs
        from the newest release's entry, each with what to do."""
        recorded = self._releases[-1][1]
        current = registry.manifest()
        problems = []
        for obj in sorted(current.keys() | recorded.keys()):
            now, then = current.get(obj), recorded.get(obj)
            if now is None:
                problems.append(f"{obj}: recorded in release {self.latest} but no longer "
                                "registered")
            elif then is None or parse_version(now) != parse_version(then):
                problems.append(f"{obj} is at {now} but release {self.latest} records "
                                f"{then or 'nothing'}: add a release entry with the new "
                                "versions")
        return problems
