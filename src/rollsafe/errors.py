"""Every exception rollsafe raises, in one place.

Each message says what went wrong and, where there is one, what to do about
it. Errors about a value carry ``path``: the object and field path of the bad
value, for example ``Application.components[3].ports[0]``.

The families:

- :class:`DefinitionError`: a class or version history is declared wrongly;
  raised when the class is defined or first used, never at run time later.
- :class:`ValidationError`: a value given to an object is not allowed.
- :class:`DecodeError`: a payload could not be decoded. Decoding untrusted
  bytes raises only this family (including :class:`PayloadVersionError`),
  never anything else, and changes nothing.
- :class:`IncompatibleVersionError`: a version was asked for that the class
  does not know, or data cannot be expressed at an older version.
- :class:`UnknownObjectError`: a registry lookup of a name it does not hold.
"""

from __future__ import annotations

__all__ = [
    "DecodeError",
    "DefinitionError",
    "DowngradeError",
    "EncodeError",
    "FingerprintMismatchError",
    "IncompatibleVersionError",
    "LimitExceededError",
    "MigrationError",
    "MissingFieldError",
    "PayloadVersionError",
    "ReadOnlyFieldError",
    "RollsafeError",
    "RoundTripError",
    "SnapshotError",
    "UnknownObjectError",
    "UnknownVersionError",
    "ValidationError",
    "VersionTooNewError",
    "field_path",
    "short_repr",
]


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, safe for any value a
    payload can hold (a huge int's repr raises ValueError)."""
    try:
        text = repr(value)
    except ValueError:
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field_path(path: str, name: str) -> str:
    """``path.name``, with a very long (hostile) name cut short."""
    return f"{path}.{name if len(name) <= 60 else name[:57] + '...'}"


class RollsafeError(Exception):
    """Base class of every rollsafe error."""


class DefinitionError(RollsafeError, TypeError):
    """An object class or its version history is declared wrongly."""


class _PathError(RollsafeError):
    """An error about one value, located by its object and field path."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class ValidationError(_PathError, ValueError):
    """A value given to an object field is not allowed (wrong type, too long,
    not an enum member, naive datetime, ...). Nothing was changed."""


class MissingFieldError(ValidationError):
    """A field with no default was not given when the object was built."""


class ReadOnlyFieldError(ValidationError, AttributeError):
    """A read-only field was assigned after construction."""


class DecodeError(_PathError, ValueError):
    """A payload is malformed: not the envelope, a wrong type, a missing or
    unknown field, a bad value. ``path`` names the object and field."""


class LimitExceededError(DecodeError):
    """A payload is over a decoding limit (size, nesting depth, collection
    length). Raise the limit in :class:`rollsafe.DecodeLimits` if the payload
    is legitimate."""


class EncodeError(RollsafeError, ValueError):
    """A codec could not write an object's primitive as bytes (for example a
    string holding a lone surrogate, which is not valid Unicode)."""


class IncompatibleVersionError(RollsafeError):
    """A version was asked for that a class cannot produce or read."""


class VersionTooNewError(IncompatibleVersionError):
    """The version asked for is newer than the newest the class knows."""


class UnknownVersionError(IncompatibleVersionError):
    """The version is not in the class's history (and is not newer than it)."""


class PayloadVersionError(DecodeError, IncompatibleVersionError):
    """A payload carries a version this side cannot read: newer than the
    class knows, or absent from its history. The sender should be asked for a
    backport (see :func:`rollsafe.version_manifest`)."""

    def __init__(self, path: str, problem: str, *, name: str, version: str,
                 known: str) -> None:
        self.name = name
        self.version = version
        self.known = known
        super().__init__(path, problem)


class DowngradeError(_PathError, IncompatibleVersionError):
    """A value cannot be expressed at the older version asked for (for
    example an enum value that version does not have, with no fallback
    declared in the history)."""


class UnknownObjectError(RollsafeError, LookupError):
    """A registry was asked for an object name (or version) it does not hold."""


class StorageError(RollsafeError):
    """Base of the errors a store raises."""


class NotFoundError(StorageError, LookupError):
    """No stored object has that key (in that project: another project's
    objects are not found, as if they did not exist)."""


class ConflictError(StorageError):
    """A write lost a race: the stored object changed since it was read
    (stale revision), or an object with that key already exists. Nothing
    was written; reload and try again."""


class RetryableStorageError(StorageError):
    """The store could not be reached or dropped the connection (a restart,
    a failover). Nothing was committed; the same call may succeed later."""


class ContractBlockedError(StorageError):
    """Contract would remove what the running fleet still needs: a live
    service reads an object version older than a collection's ``oldest``,
    or an online migration has records left (or could not count them).
    ``blockers`` holds one sentence per cause, each saying what to do."""

    def __init__(self, blockers: list[str]) -> None:
        self.blockers = list(blockers)
        super().__init__("contract is not safe yet: " + "; ".join(self.blockers))


class MigrationError(RollsafeError):
    """An online data migration broke its contract: it reported counts that
    cannot be true (more migrated than found, more than its limit) or
    returned something other than a ``Batch``. Fix the migration; the
    runner records this as the migration's error and runs the others."""


class FingerprintMismatchError(RollsafeError):
    """Object schemas changed without a version bump. ``diff`` holds the
    readable report."""

    def __init__(self, diff: str) -> None:
        self.diff = diff
        super().__init__(diff)


class SnapshotError(RollsafeError, ValueError):
    """A compatibility snapshot or golden-corpus file is missing, unreadable
    or not in the expected format (write them with ``rollsafe compat
    snapshot`` and :func:`rollsafe.testing.corpus.capture_corpus`)."""


class RoundTripError(RollsafeError, AssertionError):
    """Payloads did not survive their round trips through the version
    history (the testing helpers' round trips or golden corpus). The
    message lists each payload and what came back."""
