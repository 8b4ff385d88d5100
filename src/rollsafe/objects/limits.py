"""Limits that bound the work of decoding an untrusted payload."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "DecodeLimits"]


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds applied while decoding.

    ``max_bytes`` caps an encoded payload (checked by the codecs before
    parsing); ``max_depth`` caps nesting of objects and collections;
    ``max_items`` caps the length of any one list, set or dict. Going over
    any of them raises :class:`rollsafe.errors.LimitExceededError`."""

    max_bytes: int = 16 * 1024 * 1024
    max_depth: int = 32
    max_items: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_depth", "max_items"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"DecodeLimits.{name} must be a positive int, got {value!r}")


#: The limits used when none are given.
DEFAULT_LIMITS = DecodeLimits()
