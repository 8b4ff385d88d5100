"""Limits that bound the work of decoding an untrusted payload."""

from __future__ import annotations

__all__ = ["DEFAULT_LIMITS", "MAX_DEPTH_CEILING", "DecodeLimits"]

#: The largest max_depth allowed.
MAX_DEPTH_CEILING = 200


class DecodeLimits:
    """Bounds applied while decoding.

    ``max_bytes`` caps an encoded payload (checked by the codecs before
    parsing); ``max_depth`` caps nesting of objects and collections;
    ``max_items`` caps the length of any one list, set or dict. Going over
    any of them raises :class:`rollsafe.errors.LimitExceededError`."""

    __slots__ = ("max_bytes", "max_depth", "max_items")

    def __init__(self, *, max_bytes: int = 16 * 1024 * 1024, max_depth: int = 32,
                 max_items: int = 100_000) -> None:
        for name, value in (("max_bytes", max_bytes), ("max_depth", max_depth),
                            ("max_items", max_items)):
            if type(value) is not int or value < 1:
                raise ValueError(f"DecodeLimits.{name} must be a positive int, got {value!r}")
        if max_depth > MAX_DEPTH_CEILING:
            raise ValueError(f"DecodeLimits.max_depth is at most {MAX_DEPTH_CEILING} (decoding "
                             f"recurses; deeper would exhaust the interpreter's stack)")
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.max_items = max_items

    def __repr__(self) -> str:
        return (f"DecodeLimits(max_bytes={self.max_bytes}, max_depth={self.max_depth}, "
                f"max_items={self.max_items})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DecodeLimits):
            return NotImplemented
        return (self.max_bytes, self.max_depth, self.max_items) == (
            other.max_bytes, other.max_depth, other.max_items)

    def __hash__(self) -> int:
        return hash((self.max_bytes, self.max_depth, self.max_items))


#: The limits used when none are given.
DEFAULT_LIMITS = DecodeLimits()
