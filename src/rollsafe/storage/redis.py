"""Redis backend: a hash per record, secondary indexes in sorted sets.

Layout, with ``P`` the key prefix and ``C`` the collection name:

``P:C:<key>`` (hash)
    One record: ``_v`` the version it was written at, ``_r`` its revision,
    ``_p`` its project (collections with a project field only), and one
    hash field per data field, named as at ``_v``, holding the JSON of the
    field's primitive. The key is written as stored: a str as is, an int in
    decimal, a UUID in its canonical form. (The meta fields start with
    ``_`` because no field name may, so they never meet a data field.)
``P:C#all`` and ``P:C#project:<project>`` (sorted sets)
    Every key, and the keys of one project: listings with no index.
``P:C#ix:<field>`` and ``P:C#ix:<field>:<project>`` (sorted sets)
    One entry per record for each field in ``Collection(indexes=...)``;
    the second set holds one project's records, so a scoped listing reads
    only its own entries.

The index keys follow ``#``, not ``:``, so no record key can name one (a
record keyed ``all`` would otherwise be the index of every key).

Every sorted set has score 0 and is read with ``ZRANGEBYLEX``: a member is
``<value>\\x00<key>`` (a bare ``<key>`` in the key sets), both written so
that byte order is value order. Strings keep their own order (code points;
``\\x00`` and ``\\x01`` escaped), integers and datetimes (as UTC epoch
microseconds, so by instant whatever the offset) are fixed-width hex after
adding 2**63, floats use their IEEE-754 bits, and None sorts first
(PostgreSQL puts it last). Numeric scores would lose integers past 2**53
and could not resume a listing inside a run of equal values (Redis ranges
by score or by member, never by both); with one lexicographic order the
keyset position ``(value, key)`` is a single member, so every page is one
``ZRANGEBYLEX ... LIMIT`` from just after it.

Units of work (:meth:`RedisBackend.transaction`) hold one connection and
``WATCH`` each record key on it before first reading it, by ``get`` or to
check a write. Writes are checked at once against what is stored (plus the
unit's own earlier writes), so a stale revision, a missing record or an
existing key raises at the call, and are buffered. When the ``with`` block
ends, every buffered write and its index changes go in one
``MULTI``/``EXEC``: if a watched key changed meanwhile Redis applies none of
it and the unit raises :class:`ConflictError`; if the block raises, the
buffer is dropped. ``get`` sees the unit's own buffered writes (a flow
reads what it just wrote); ``query`` lists what is stored, not the unit's
buffered writes (SQL backends list them). Records only listed by ``query`` are not
watched (a unit never conflicts over a record it merely listed), and a
unit that wrote nothing commits nothing, so it never conflicts.

Queries: equality on an indexed field reads that index's range; ordering
needs an index (:class:`DefinitionError` otherwise); a listing with
neither reads the key set. A filter on a field that is not indexed (or
a second indexed one) is checked on each record the driving set yields,
read a batch at a time: memory stays bounded by the batch, but the time
grows with the records skipped, so index the fields users filter by. A
filter on the key field reads that one record.

Records written at an older version keep that version's field names;
filters and indexes follow renames back through the class history, so a
field is found under the name its record's version gives it. A field the
record's version lacks, or holds with another storage kind
(``Retyped``), counts as None until the record is rewritten at a newer
version. Old records move to the storage version in the background with
:func:`rollsafe.storage.rewrite.rewrite` (on every backend).

Connection errors (including a restart: pooled connections reconnect) are
retried ``max_retries`` times with a short back-off, then raise
:class:`RetryableStorageError`; sockets time out after ``socket_timeout``
seconds, so no call hangs. If a connection drops after ``EXEC`` was sent
the outcome is unknown (as with any database): the unit raises
:class:`RetryableStorageError`, and a retry may then see its own write as
a conflict. Redis does not roll back a ``MULTI`` in which one command fails
(a key of the wrong type, written by something else under the prefix):
keep the prefix to rollsafe.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
    WatchError,
)
from redis.retry import Retry

from rollsafe.errors import (
    ConflictError,
    DefinitionError,
    NotFoundError,
    RetryableStorageError,
    StorageError,
)
from rollsafe.objects.history import parse_version
from rollsafe.objects.types import (
    FieldType,
    IntType,
)
from rollsafe.storage.base import Backend, Query, Record, Transaction, unreadable_version
from rollsafe.storage.collection import Collection, scalar_kind

__all__ = ["RedisBackend"]

_VERSION, _REVISION, _PROJECT = "_v", "_r", "_p"
_INT_OFFSET = 2**63
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
#: Records read per round trip when a listing filters on a field it cannot
#: range over (at least the page size).
_SCAN_BATCH = 100

_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)
_RETRYABLE_ERRORS = (*_CONNECTION_ERRORS, ReadOnlyError, TryAgainError, ClusterDownError)
_NOT_RETRYABLE = (AuthenticationError, AuthorizationError)


def _kind(ftype: FieldType) -> str:
    """How a field's primitive sorts: str, int, float, bool, datetime, or
    other (not filterable)."""
    kind = scalar_kind(ftype)
    return "other" if kind is None else "str" if kind in ("str", "enum", "uuid") else kind


def _escape(text: str) -> str:
    # Order-preserving and free of \x00, the separator before the key.
    return text.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")


def _int_hex(value: int) -> str:
    return format(value + _INT_OFFSET, "016x")


def _sortable(kind: str, prim: Any) -> str:
    """A primitive as a string whose byte order is the values' order
    (None first). Raises TypeError / ValueError for a value of another kind."""
    if prim is None:
        return "0"
    if kind == "str":
        if type(prim) is not str:
            raise TypeError(f"expected a string, got {type(prim).__name__}")
        return "1" + _escape(prim)
    if kind == "bool":
        if type(prim) is not bool:
            raise TypeError(f"expected a bool, got {type(prim).__name__}")
        return "11" if prim else "10"
    if kind == "int":
        if type(prim) is not int or not -_INT_OFFSET <= prim < _INT_OFFSET:
            raise TypeError(f"expected a 64-bit int, got {prim!r}")
        return "1" + _int_hex(prim)
    if kind == "float":
        if type(prim) not in (int, float):
            raise TypeError(f"expected a number, got {type(prim).__name__}")
        # + 0.0 turns -0.0 into 0.0, which compare equal.
        bits: int = struct.unpack(">Q", struct.pack(">d", float(prim) + 0.0))[0]
        bits = bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | 1 << 63
        return "1" + format(bits, "016x")
    if kind == "datetime":
        if type(prim) is not str:
            raise TypeError(f"expected an ISO 8601 string, got {type(prim).__name__}")
        moment = dt.datetime.fromisoformat(prim)
        if moment.utcoffset() is None:
            raise ValueError(f"datetime without a UTC offset: {prim!r}")
        return "1" + _int_hex((moment - _EPOCH) // _MICROSECOND)
    raise TypeError("only str, int, float, bool, UUID, datetime and enum fields can be "
                    "filtered or ordered by")


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode()


def _hash(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str] | None:
    """A record hash as read (None when the key does not exist)."""
    return {_text(k): _text(v) for k, v in raw.items()} or None


class _Layout:
    """Where one collection's records and index entries live, and how a
    record hash maps to them."""

    def __init__(self, coll: Collection, prefix: str) -> None:
        info = coll.cls._rs_info
        self.coll = coll
        base = f"{prefix}:{coll.name}"
        self.record_prefix = base + ":"
        self.meta_prefix = base + "#"
        self.int_key = isinstance(info.fields[coll.key].ftype, IntType)
        self.kinds = {name: _kind(fld.ftype) for name, fld in info.fields.items()}
        # version key -> {current field name: its name at that version, or
        # None when that version lacks it or stores it as another kind}
        self.names: dict[tuple[int, int], dict[str, str | None]] = {}
        current: dict[str, str | None] = {name: name for name in info.fields}
        for version in reversed(info.history.versions):
            schema = info.schemas[version.key]
            bad = [n for n in schema if n.startswith("_")]
            if bad:
                raise DefinitionError(f"{info.name} {version.number}: field {bad[0]!r} starts "
                                      "with '_', which the Redis backend keeps for its own "
                                      "fields; rename it")
            self.names[version.key] = {
                cur: old if old is not None and old in schema
                and _kind(schema[old].ftype) == self.kinds[cur] else None
                for cur, old in current.items()}
            for change in reversed(version.changes):
                current = {cur: None if old is None else change.old_name(old)
                           for cur, old in current.items()}

    # -- key names --------------------------------------------------------
    def record_key(self, key: Any) -> str:
        return f"{self.record_prefix}{key}"

    def keys_key(self, project: Any) -> str:
        """The sorted set of every key (of one project when not None)."""
        return f"{self.meta_prefix}all" if project is None \
            else f"{self.meta_prefix}project:{project}"

    def index_key(self, fname: str, project: Any) -> str:
        """The sorted set indexing ``fname`` (one project's when not None)."""
        return f"{self.meta_prefix}ix:{fname}" if project is None \
            else f"{self.meta_prefix}ix:{fname}:{project}"

    def match_patterns(self) -> list[str]:
        """SCAN patterns for every key of the collection."""
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in self.record_prefix[:-1])
        return [escaped + ":*", escaped + "#*"]

    # -- members ----------------------------------------------------------
    def key_member(self, key: Any) -> str:
        if self.int_key:
            if type(key) is not int or not -_INT_OFFSET <= key < _INT_OFFSET:
                raise ValueError(f"{self.coll.object_name} keys are 64-bit ints, got {key!r}")
            return _int_hex(key)
        return str(key)

    def key_from_member(self, member: str, with_value: bool) -> Any:
        text = member.split("\x00", 1)[1] if with_value else member
        return int(text, 16) - _INT_OFFSET if self.int_key else text

    def sortable(self, fname: str, prim: Any) -> str:
        """The sortable form of a value given for the current field ``fname``."""
        if fname not in self.kinds:
            raise DefinitionError(f"{self.coll.object_name} has no field {fname!r}")
        try:
            return _sortable(self.kinds[fname], prim)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.coll.object_name}.{fname}: {exc}") from None

    def _names_at(self, state: dict[str, str]) -> dict[str, str | None]:
        version = state[_VERSION]
        try:
            return self.names[parse_version(version)]
        except (KeyError, ValueError):
            raise unreadable_version(self.coll, self.key_of(state), version) from None

    def value_of(self, state: dict[str, str], fname: str) -> Any:
        """The primitive of current field ``fname`` in a record (None when
        its version lacks the field)."""
        stored = self._names_at(state).get(fname)
        raw = state.get(stored) if stored is not None else None
        return None if raw is None else orjson.loads(raw)

    def key_of(self, state: dict[str, str]) -> Any:
        return orjson.loads(state[self.coll.key])

    def position(self, state: dict[str, str], fname: str | None) -> str:
        """A record's member in the index of ``fname`` (None: in the key sets)."""
        key = self.key_member(self.key_of(state))
        if fname is None:
            return key
        value = self.value_of(state, fname)
        try:
            return _sortable(self.kinds[fname], value) + "\x00" + key
        except (TypeError, ValueError):  # stored by other code with another type
            return "0\x00" + key

    def members(self, state: dict[str, str] | None) -> dict[str, str]:
        """Sorted set -> member, for every set a record belongs to."""
        if state is None:
            return {}
        project = state.get(_PROJECT) if self.coll.project is not None else None
        projects = [None] if project is None else [None, project]
        found = {self.keys_key(p): self.key_member(self.key_of(state)) for p in projects}
        for fname in self.coll.indexes:
            member = self.position(state, fname)
            for p in projects:
                found[self.index_key(fname, p)] = member
        return found

    def in_project(self, state: dict[str, str], project: Any) -> bool:
        return project is None or self.coll.project is None or state.get(_PROJECT) == str(project)

    # -- records ----------------------------------------------------------
    def record(self, state: dict[str, str]) -> Record:
        self._names_at(state)  # refuses a version this code does not know
        data = {name: orjson.loads(raw) for name, raw in state.items()
                if not name.startswith("_")}
        project = data.get(self.coll.project) if self.coll.project is not None else None
        return Record(data[self.coll.key], project, state[_VERSION], int(state[_REVISION]),
                      data)

    def encode(self, values: dict[str, Any]) -> dict[str, str]:
        return {name: orjson.dumps(value).decode() for name, value in values.items()}


class RedisBackend(Backend):
    """Records in Redis hashes, with sorted-set indexes (see the module).

    ``url``: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS)
    or ``unix:///path/to/socket?db=0``. ``key_prefix`` starts every key
    this backend writes, so several stores can share one database; prefixes
    must not nest (``rs`` and ``rs:app`` may see each other's keys).
    ``max_retries``: attempts after a connection error or time-out before
    :class:`RetryableStorageError`; ``socket_timeout``: seconds a connect or
    a reply may take."""

    name = "redis"

    def __init__(self, url: str, *, key_prefix: str = "rs", max_retries: int = 2,
                 socket_timeout: float = 5.0) -> None:
        if not isinstance(key_prefix, str) or not key_prefix or key_prefix != key_prefix.strip():
            raise ValueError("key_prefix must be a non-empty string without outer spaces")
        if type(max_retries) is not int or max_retries < 0:
            raise ValueError("max_retries must be an int >= 0")
        self.key_prefix = key_prefix
        retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), max_retries)
        #: The redis-py client; units of work take connections from its pool.
        self.client: redis.Redis = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout, retry=retry)
        self._layouts: dict[Collection, _Layout] = {}

    def layout(self, coll: Collection) -> _Layout:
        """The key layout of a collection (built on first use)."""
        found = self._layouts.get(coll)
        if found is None:
            found = self._layouts[coll] = _Layout(coll, self.key_prefix)
        return found

    def ensure_schema(self, collections: Sequence[Collection]) -> None:
        """Nothing to create: Redis makes keys on first write. Checks that
        each collection can be laid out."""
        for coll in collections:
            self.layout(coll)

    def drop_all(self, collections: Sequence[Collection]) -> None:
        """Delete every key of the collections (``SCAN``, never ``KEYS``)."""
        with self._guard():
            for coll in collections:
                for pattern in self.layout(coll).match_patterns():
                    batch: list[str] = []
                    for key in self.client.scan_iter(match=pattern, count=500):
                        batch.append(_text(key))
                        if len(batch) >= 500:
                            self.client.unlink(*batch)
                            batch.clear()
                    if batch:
                        self.client.unlink(*batch)

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Transaction]:
        with self._guard():
            tx = _RedisTransaction(self)
            try:
                yield tx
                tx.commit()
            finally:
                tx.release()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except WatchError as exc:
            # redis-py turns a connection lost while watching into a WatchError.
            if isinstance(exc.__context__, _CONNECTION_ERRORS):
                raise RetryableStorageError(f"redis: {exc.__context__}") from exc
            raise ConflictError("a record this unit of work read or wrote changed before it "
                                "committed; nothing was written: reload and retry") from None
        except _NOT_RETRYABLE as exc:
            raise StorageError(f"redis: {exc}") from exc
        except _RETRYABLE_ERRORS as exc:
            raise RetryableStorageError(f"redis: {exc}") from exc
        except RedisError as exc:
            raise StorageError(f"redis: {exc}") from exc

    def close(self) -> None:
        self.client.close()
        self.client.connection_pool.disconnect()


class _RedisTransaction(Transaction):
    """One unit of work: watched reads, writes buffered until :meth:`commit`."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self._pipe = backend.client.pipeline(transaction=True)
        # Record key -> (layout, hash as stored when first watched).
        self._before: dict[str, tuple[_Layout, dict[str, str] | None]] = {}
        # Record key -> hash after this unit's writes (None: deleted).
        self._after: dict[str, dict[str, str] | None] = {}

    def _watched_read(self, layout: _Layout, rkey: str) -> dict[str, str] | None:
        self._pipe.watch(rkey)  # type: ignore[no-untyped-call]
        state = _hash(self._pipe.hgetall(rkey))
        self._before.setdefault(rkey, (layout, state))
        return state

    def _state(self, layout: _Layout, rkey: str) -> dict[str, str] | None:
        """A record as this unit of work will leave it so far."""
        if rkey in self._after:
            return self._after[rkey]
        if rkey in self._before:
            return self._before[rkey][1]
        return self._watched_read(layout, rkey)

    def get(self, collection: Collection, key: Any, project: Any) -> Record | None:
        layout = self.backend.layout(collection)
        # This unit's own writes first: a flow reads what it just wrote.
        state = self._state(layout, layout.record_key(key))
        if state is None or not layout.in_project(state, project):
            return None
        return layout.record(state)

    def insert(self, collection: Collection, record: Record) -> None:
        layout = self.backend.layout(collection)
        rkey = layout.record_key(record.key)
        if self._state(layout, rkey) is not None:
            raise ConflictError(f"{collection.object_name} {record.key} already exists")
        state = {_VERSION: record.version, _REVISION: "1"}
        if collection.project is not None:
            state[_PROJECT] = str(record.project)
        state.update(layout.encode(record.data))
        layout.members(state)  # refuses an unknown version before anything is buffered
        self._after[rkey] = state

    def _existing(self, layout: _Layout, key: Any, project: Any,
                  expected: int | None) -> tuple[str, dict[str, str]]:
        rkey = layout.record_key(key)
        state = self._state(layout, rkey)
        name = layout.coll.object_name
        if state is None or not layout.in_project(state, project):
            raise NotFoundError(f"no {name} {key}"
                                + ("" if project is None else f" in project {project}"))
        revision = int(state[_REVISION])
        if expected is not None and revision != expected:
            raise ConflictError(f"{name} {key} changed since it was read (revision "
                                f"{expected}, now {revision}); reload it and retry")
        return rkey, state

    def update(self, collection: Collection, key: Any, project: Any, expected_revision: int,
               version: str, values: dict[str, Any], full: bool) -> int:
        layout = self.backend.layout(collection)
        rkey, state = self._existing(layout, key, project, expected_revision)
        new = {n: v for n, v in state.items() if n.startswith("_")} if full else dict(state)
        new.update(layout.encode(values))
        new[_VERSION] = version
        new[_REVISION] = str(expected_revision + 1)
        layout.members(new)  # refuses an unknown version before anything is buffered
        self._after[rkey] = new
        return expected_revision + 1

    def delete(self, collection: Collection, key: Any, project: Any,
               expected_revision: int | None) -> None:
        layout = self.backend.layout(collection)
        rkey, _ = self._existing(layout, key, project, expected_revision)
        self._after[rkey] = None

    def query(self, collection: Collection, query: Query) -> list[Record]:
        return _Listing(self.backend, self.backend.layout(collection), query).run()

    def commit(self) -> None:
        """Apply every buffered write and index change in one MULTI/EXEC;
        a watched key that changed makes Redis apply none (WatchError)."""
        if not self._after:
            return
        pipe = self._pipe
        pipe.multi()
        for rkey, after in self._after.items():
            layout, before = self._before[rkey]
            if after is None:
                pipe.delete(rkey)
            else:
                stale = [name for name in before or () if name not in after]
                if stale:
                    pipe.hdel(rkey, *stale)
                changed: Mapping[Any, str] = {
                    n: v for n, v in after.items() if (before or {}).get(n) != v}
                if changed:
                    pipe.hset(rkey, mapping=changed)
            old, new = layout.members(before), layout.members(after)
            for zkey, member in old.items():
                if new.get(zkey) != member:
                    pipe.zrem(zkey, member)
            for zkey, member in new.items():
                if old.get(zkey) != member:
                    pipe.zadd(zkey, {member: 0})
        pipe.execute()
        self._after.clear()

    def release(self) -> None:
        """Drop the buffer, unwatch and give the connection back."""
        self._after.clear()
        self._pipe.reset()


class _Listing:
    """One page of a query: walk the driving sorted set from the keyset
    position, a batch at a time, keeping the records that match."""

    def __init__(self, backend: RedisBackend, layout: _Layout, query: Query) -> None:
        coll = layout.coll
        self.client = backend.client
        self.layout = layout
        self.query = query
        self.project = query.project if coll.project is not None else None
        if query.order_by is not None and query.order_by not in coll.indexes:
            raise DefinitionError(
                f"{coll.object_name} cannot be ordered by {query.order_by!r} on Redis: add it "
                f"to Collection({coll.object_name}, indexes=[...])")
        self.wanted = {name: layout.sortable(name, prim) for name, prim in query.where.items()}

    def run(self) -> list[Record]:
        if self.layout.coll.key in self.wanted:
            return self._by_key()
        return self._walk()

    def _matches(self, state: dict[str, str]) -> bool:
        layout = self.layout
        return layout.in_project(state, self.project) and all(
            layout.position(state, name).partition("\x00")[0] == value
            for name, value in self.wanted.items())

    def _mark(self, fname: str | None, value: Any) -> str | None:
        """The member of the keyset position to start after (None: start)."""
        after = self.query.after
        if after is None:
            return None
        key = self.layout.key_member(after[1])
        return key if fname is None else self.layout.sortable(fname, value) + "\x00" + key

    def _by_key(self) -> list[Record]:
        """``where`` names the key: one record at most, read directly."""
        layout, query = self.layout, self.query
        key = query.where[layout.coll.key]
        state = _hash(self.client.hgetall(layout.record_key(key)))
        if state is None or not self._matches(state):
            return []
        mark = self._mark(query.order_by, None if query.after is None else query.after[0])
        if mark is not None:
            pos = layout.position(state, query.order_by)
            if (pos >= mark) if query.descending else (pos <= mark):
                return []
        return [layout.record(state)]

    def _walk(self) -> list[Record]:
        layout, query, client = self.layout, self.query, self.client
        coll = layout.coll
        # The driving set: the order_by index, else the most selective
        # indexed equality filter (its range is in key order), else the keys.
        field = query.order_by
        eq: str | None = field if field in self.wanted else None
        if field is None:
            indexed = [name for name in self.wanted if name in coll.indexes]
            if len(indexed) > 1:
                indexed.sort(key=lambda name: client.zlexcount(
                    layout.index_key(name, self.project), *self._range(name)))
            field = eq = indexed[0] if indexed else None
        zkey = layout.keys_key(self.project) if field is None \
            else layout.index_key(field, self.project)
        lo, hi = self._range(eq) if eq is not None else ("-", "+")
        after_value = None
        if query.after is not None:
            if query.order_by is not None:
                after_value = query.after[0]
            elif eq is not None:  # the range of one value, in key order
                after_value = query.where[eq]
        mark = self._mark(field, after_value)
        if mark is not None:
            if query.descending:
                hi = min(hi, "(" + mark, key=_upper_order)
            else:
                lo = max(lo, "(" + mark, key=_lower_order)
        residual = any(name != eq for name in self.wanted)
        batch = max(query.limit, _SCAN_BATCH) if residual else query.limit
        found: list[Record] = []
        while True:
            if query.descending:
                members = client.zrevrangebylex(zkey, hi, lo, start=0, num=batch)
            else:
                members = client.zrangebylex(zkey, lo, hi, start=0, num=batch)
            if not members:
                return found
            texts = [_text(m) for m in members]
            with client.pipeline(transaction=False) as pipe:
                for member in texts:
                    pipe.hgetall(layout.record_key(
                        layout.key_from_member(member, field is not None)))
                hashes = pipe.execute()
            for member, raw in zip(texts, hashes, strict=True):
                state = _hash(raw)
                # Index and hash are read apart: skip a record deleted or
                # moved since, so a page never holds one out of order.
                if state is None or layout.position(state, field) != member:
                    continue
                if self._matches(state):
                    found.append(layout.record(state))
                    if len(found) == query.limit:
                        return found
            if len(texts) < batch:
                return found
            if query.descending:
                hi = "(" + texts[-1]
            else:
                lo = "(" + texts[-1]

    def _range(self, fname: str) -> tuple[str, str]:
        """ZRANGEBYLEX bounds of the members whose value is ``where[fname]``."""
        value = self.wanted[fname]
        return "[" + value + "\x00", "(" + value + "\x01"


def _lower_order(bound: str) -> tuple[int, str, int]:
    """Sort key of a ZRANGEBYLEX lower bound: the largest is the tightest."""
    if bound == "-":
        return (0, "", 0)
    if bound == "+":
        return (2, "", 0)
    return (1, bound[1:], bound[0] == "(")


def _upper_order(bound: str) -> tuple[int, str, int]:
    """Sort key of a ZRANGEBYLEX upper bound: the smallest is the tightest."""
    if bound == "-":
        return (0, "", 0)
    if bound == "+":
        return (2, "", 0)
    return (1, bound[1:], bound[0] == "[")
