"""Persistence behind the objects: one narrow backend port, a SQL backend
(SQLite embedded, PostgreSQL in production) and a Redis backend.

The rest of a service never talks to the database: it declares how each
class is stored (:class:`Collection`) and calls a :class:`Store`, whose
operations run atomically on every backend. Backends are chosen by URL
(:func:`open_backend`) and import their drivers only when used.
"""

from rollsafe.storage.base import Backend, Page, Record, Transaction
from rollsafe.storage.collection import Collection
from rollsafe.storage.store import Store, UnitOfWork, open_backend, revision_of

__all__ = [
    "Backend",
    "Collection",
    "Page",
    "Record",
    "Store",
    "Transaction",
    "UnitOfWork",
    "open_backend",
    "revision_of",
]
