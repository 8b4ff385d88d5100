"""rollsafe: versioned objects and tooling for services upgraded live.

The public names live here; the modules behind them are private detail.
Importing this package loads no database, messaging or web library.
"""

from rollsafe.errors import (
    ConflictError,
    DecodeError,
    DefinitionError,
    DowngradeError,
    EncodeError,
    FingerprintMismatchError,
    IncompatibleVersionError,
    LimitExceededError,
    MissingFieldError,
    NotFoundError,
    PayloadVersionError,
    ReadOnlyFieldError,
    RetryableStorageError,
    RollsafeError,
    StorageError,
    UnknownObjectError,
    UnknownVersionError,
    ValidationError,
    VersionTooNewError,
)
from rollsafe.objects.api import (
    fields_of,
    from_primitive,
    reset_changes,
    schema_of,
    to_primitive,
    version_manifest,
    version_of,
    what_changed,
)
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.fields import MISSING, Field, field
from rollsafe.objects.fingerprint import canonical_schema, fingerprint
from rollsafe.objects.history import (
    Added,
    Change,
    Custom,
    EnumValuesAdded,
    History,
    NestedVersion,
    Removed,
    Renamed,
    Retyped,
    Version,
)
from rollsafe.objects.limits import DEFAULT_LIMITS, DecodeLimits
from rollsafe.objects.registry import Registry
from rollsafe.objects.remote import Indirection, remotable, remotable_classmethod
from rollsafe.wire.codecs import Codec, JsonCodec, MsgpackCodec

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_LIMITS",
    "MISSING",
    "Added",
    "Change",
    "Codec",
    "ConflictError",
    "Custom",
    "DecodeError",
    "DecodeLimits",
    "DefinitionError",
    "DowngradeError",
    "EncodeError",
    "EnumValuesAdded",
    "Field",
    "FingerprintMismatchError",
    "History",
    "IncompatibleVersionError",
    "Indirection",
    "JsonCodec",
    "LimitExceededError",
    "MissingFieldError",
    "MsgpackCodec",
    "NestedVersion",
    "NotFoundError",
    "PayloadVersionError",
    "ReadOnlyFieldError",
    "Registry",
    "Removed",
    "Renamed",
    "RetryableStorageError",
    "Retyped",
    "RollsafeError",
    "StorageError",
    "UnknownObjectError",
    "UnknownVersionError",
    "ValidationError",
    "Version",
    "VersionTooNewError",
    "VersionedObject",
    "canonical_schema",
    "field",
    "fields_of",
    "fingerprint",
    "from_primitive",
    "remotable",
    "remotable_classmethod",
    "reset_changes",
    "schema_of",
    "to_primitive",
    "version_manifest",
    "version_of",
    "what_changed",
]
