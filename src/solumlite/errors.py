"""The errors solumlite's flows raise, each saying what to do.

They cross the wire by name: a flow run on a conductor reaches the caller
as :class:`rollsafe.rpc.RemoteError` whose ``exc_type`` is the class name
here, which is how the HTTP API maps both (see ``solumlite.api.errors``).
None of them is a :class:`rollsafe.ConflictError`: retrying the same call
cannot succeed, so no layer retries them.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "IllegalTransitionError",
    "LanguagePackInUseError",
    "NameTakenError",
    "ReleaseNotBoundError",
    "SolumliteError",
    "StaleRevisionError",
    "UnknownLanguagePackError",
]


class SolumliteError(Exception):
    """Base of the errors solumlite's flows raise."""


class IllegalTransitionError(SolumliteError):
    """An assembly was asked to move to a status its state machine does not
    allow from where it is (a finished workflow advanced again, a report
    about a step that is not the running one). ``current`` is where it is,
    ``requested`` what was asked, ``allowed`` where it may go from here."""

    def __init__(self, what: str, current: str, requested: str,
                 allowed: Iterable[str]) -> None:
        self.current = current
        self.requested = requested
        self.allowed = sorted(allowed)
        where = f" (from {current} it may go to {', '.join(self.allowed)})" \
            if self.allowed else ""
        super().__init__(f"{what} is {current}: it cannot {requested}{where}")


class UnknownLanguagePackError(SolumliteError):
    """An app names a language pack its project does not have."""

    def __init__(self, name: str, project: str) -> None:
        self.name = name
        super().__init__(f"project {project} has no language pack {name!r}: create it first "
                         "(POST /v1/languagepacks) or name one it has")


class LanguagePackInUseError(SolumliteError):
    """A language pack still used by apps cannot be deleted."""

    def __init__(self, name: str, app: str) -> None:
        self.name = name
        super().__init__(f"language pack {name!r} is used by app {app!r} (and maybe others): "
                         "delete or move those apps first")


class NameTakenError(SolumliteError):
    """Another object of the same kind already has this name in the project."""

    def __init__(self, kind: str, name: str) -> None:
        self.name = name
        super().__init__(f"a {kind} named {name!r} already exists in this project; "
                         "pick another name")


class StaleRevisionError(SolumliteError):
    """A write named a revision that is no longer the stored one: someone
    changed the object since the writer read it. Nothing was written."""

    def __init__(self, what: str, given: int, stored: int) -> None:
        self.given = given
        self.stored = stored
        super().__init__(f"{what} is at revision {stored}, not {given}: it changed since you "
                         "read it; read it again and reapply your change")


class ReleaseNotBoundError(SolumliteError):
    """A flow ran in a process where its release has no store: only the
    conductor (or an embedded service) binds one; other services call the
    conductor (set ``registry.indirection``)."""

    def __init__(self, release: str) -> None:
        super().__init__(f"release {release} has no store in this process: bind one with "
                         "release.bind(store) where flows run (the conductor, or an embedded "
                         "service), or send the calls to a conductor with "
                         "registry.indirection = RemoteIndirection(...)")
