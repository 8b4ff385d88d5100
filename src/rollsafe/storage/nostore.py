"""The backend of a service that must not reach the store.

In the distributed setup only the conductor touches the database; workers
and API services send their remote calls to it. Giving them this backend
(``open_backend("none://")``) makes any accidental store use fail at once
with a message saying so, instead of silently opening a connection.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from rollsafe.errors import StorageError
from rollsafe.storage.base import Backend, Transaction
from rollsafe.storage.collection import Collection

__all__ = ["NoStoreBackend", "StoreAccessError"]


class StoreAccessError(StorageError):
    """A service without store access tried to use the store."""


class NoStoreBackend(Backend):
    """Refuses every use: this service reaches data through the conductor."""

    name = "none"

    def __init__(self, service: str = "this service") -> None:
        self.service = service

    def _refuse(self) -> NoReturn:
        raise StoreAccessError(
            f"{self.service} has no store access: call remotable methods (they go through "
            "the conductor) instead of using the store directly")

    def ensure_schema(self, collections: Sequence[Collection]) -> None:
        self._refuse()

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Transaction]:
        self._refuse()
        yield  # pragma: no cover - unreachable

    def close(self) -> None:
        """Nothing to release."""
