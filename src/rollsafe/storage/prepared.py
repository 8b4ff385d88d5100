"""SQL statements compiled once and run on the driver's cursor.

SQLAlchemy's per-execution machinery (execution context, parameter
processing, result metadata, row objects) costs several times what SQLite
takes to run a small statement, and the SQL backend's hot statements (get by
key, insert, the executemany of ``update_many``, keyset pages) run with
nothing for that machinery to do: the statement is fixed, its parameters
plain. A :class:`PreparedStatement` keeps what SQLAlchemy would do and drops
the rest: the SQL text is SQLAlchemy's own compilation for the engine's
dialect, and every parameter and result value goes through the type
processors SQLAlchemy would apply, so the same values are written and read.
One exception: JSON kept as text (SQLite) is written and read with orjson,
as the Redis backend does (the same JSON values, written compact), falling
back to SQLAlchemy's processors for what orjson does not handle exactly as
the json module. Errors are translated into SQLAlchemy's exception classes
(a lost connection invalidates it, as SQLAlchemy does), so callers handle
one kind.

On an engine that is observed (``echo``, or ``before_cursor_execute`` /
``after_cursor_execute`` listeners), statements go through
``Connection.exec_driver_sql`` instead, so logging and instrumentation see
every statement, with the same text and parameters.
"""

from __future__ import annotations

import itertools
import json
import linecache
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

__all__ = ["PreparedStatement", "is_observed", "result_processors"]

Row = tuple[Any, ...]
_Processor = Callable[[Any], Any]


def is_observed(conn: Connection) -> bool:
    """Whether ``conn``'s engine logs or instruments its statements (then
    they must go through SQLAlchemy's execution)."""
    engine = conn.engine
    dispatch = engine.dispatch
    return bool(engine.echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute
                or engine.logger.isEnabledFor(logging.INFO))


class PreparedStatement:
    """One Core statement compiled for ``dialect``; ``names`` are its bind
    parameters in the order callers give their values (as a tuple)."""

    def __init__(self, stmt: Any, dialect: Dialect, names: Sequence[str]) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        if "POSTCOMPILE" in self.sql:  # pragma: no cover - never built so
            raise ValueError("a prepared statement cannot have expanding parameters")
        self.dialect = dialect
        self.names = tuple(names)
        binds = compiled.binds
        if compiled.positional:
            order: list[str] = list(compiled.positiontup or ())
        else:
            order = [compiled.bind_names[bind] for bind in compiled.bind_names]
        position = {name: i for i, name in enumerate(self.names)}
        missing = [name for name in self.names if name not in order]
        if missing:
            raise ValueError(f"statement has no parameters {missing}: {self.sql}")
        # Parameters the statement holds itself (an OFFSET SQLAlchemy adds
        # to a LIMIT, say) keep their values.
        constants = {name: binds[name].effective_value for name in order
                     if name not in position}
        #: Callers' values -> the driver's parameters (None: as they are).
        self._arrange = None if compiled.positional and order == list(self.names) and \
            all(_bind_processor(binds[name].type, dialect) is None for name in self.names) \
            else _arranger(order, position, constants, binds, dialect, compiled.positional)

    # -- parameters ---------------------------------------------------------
    def parameters(self, values: Row) -> Any:
        """The driver's parameters for a run with ``values`` (each converted
        by its type's bind processor, in the statement's order)."""
        if self._arrange is None:
            return values
        try:
            return self._arrange(values)
        except Exception as exc:  # what SQLAlchemy raises for a bind processor's failure
            raise sa.exc.StatementError(f"({type(exc).__name__}) {exc}", self.sql, None,
                                        exc) from exc

    # -- running --------------------------------------------------------------
    def _run(self, conn: Connection, params: Any, many: bool, direct: bool) -> Any:
        """The driver cursor (or SQLAlchemy result) after running the statement."""
        if not direct:
            return conn.exec_driver_sql(self.sql, params)
        cursor = conn.connection.cursor()
        try:
            if many:
                cursor.executemany(self.sql, params)
            else:
                cursor.execute(self.sql, params)
        except Exception as exc:  # the driver's, or a value it could not adapt
            cursor.close()
            raise self._translated(conn, exc, params, many) from exc
        return cursor

    def _translated(self, conn: Connection, exc: Exception, params: Any,
                    many: bool) -> BaseException:
        """What SQLAlchemy raises for ``exc``: a ``DBAPIError`` subclass for
        the driver's errors (a lost connection invalidated), else a
        ``StatementError``."""
        dbapi = self.dialect.loaded_dbapi
        invalidated = False
        if isinstance(exc, dbapi.Error) and not conn.invalidated:
            try:
                invalidated = self.dialect.is_disconnect(exc, conn.connection.dbapi_connection,
                                                         None)
            except Exception:  # pragma: no cover - a dialect that cannot tell
                invalidated = False
            if invalidated:
                conn.invalidate(exc)
        return sa.exc.DBAPIError.instance(self.sql, params, exc, dbapi.Error,
                                          connection_invalidated=invalidated,
                                          dialect=self.dialect, ismulti=many)

    def execute(self, conn: Connection, values: Row, *, direct: bool = True) -> int:
        """Run once with ``values``; the driver's row count."""
        cursor = self._run(conn, self.parameters(values), False, direct)
        try:
            count: int = cursor.rowcount
        finally:
            cursor.close()
        return count

    def executemany(self, conn: Connection, parameters: Sequence[Any], *,
                    direct: bool = True) -> int:
        """Run once per item of ``parameters`` (each made by
        :meth:`parameters`) in one driver call; the total row count."""
        cursor = self._run(conn, parameters, True, direct)
        try:
            count: int = cursor.rowcount
        finally:
            cursor.close()
        return count

    def fetch(self, conn: Connection, values: Row, *, direct: bool = True
              ) -> tuple[list[Row], Any]:
        """The result rows of a run with ``values``, as the driver gives
        them, and the driver's description of their columns (turn values
        into Python ones with :func:`result_processors`)."""
        cursor = self._run(conn, self.parameters(values), False, direct)
        try:
            description = cursor.description if direct else cursor.cursor.description
            rows: list[Row] = cursor.fetchall()
        except Exception as exc:
            raise self._translated(conn, exc, values, False) from exc
        finally:
            cursor.close()
        return rows, description


def result_processors(types: Sequence[Any], dialect: Dialect, description: Any
                      ) -> list[_Processor | None]:
    """What SQLAlchemy applies to each column of a result (None: nothing),
    for columns of ``types`` as the driver described them."""
    return [_result_processor(type_, dialect, column[1])
            for type_, column in zip(types, description, strict=True)]


_generated = itertools.count(1)


def _arranger(order: Sequence[str], position: dict[str, int], constants: dict[str, Any],
              binds: Any, dialect: Dialect, positional: bool) -> Callable[[Row], Any]:
    """A function making the driver's parameters from callers' values: each
    converted by its bind processor, in the statement's order (a tuple) or
    by name (a dict), constants in place. Generated: it runs for every row
    written."""
    names: dict[str, Any] = {}
    items = []
    for name in order:
        proc = _bind_processor(binds[name].type, dialect)
        if name in position:
            expr = f"v[{position[name]}]"
        else:
            names[f"_c{len(names)}"] = constants[name]
            expr = f"_c{len(names) - 1}"
        if proc is not None:
            names[f"_p{len(names)}"] = proc
            expr = f"_p{len(names) - 1}({expr})"
        items.append(expr if positional else f"{name!r}: {expr}")
    body = "(" + "".join(f"{item}, " for item in items) + ")" if positional \
        else "{" + ", ".join(items) + "}"
    text = f"def arrange(v):\n    return {body}\n"
    filename = f"<rollsafe generated parameters {next(_generated)}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    exec(compile(text, filename, "exec"), names)
    arrange: Callable[[Row], Any] = names["arrange"]
    return arrange


def _bind_processor(type_: Any, dialect: Dialect) -> _Processor | None:
    impl = type_.dialect_impl(dialect)
    proc: _Processor | None = impl.bind_processor(dialect)
    if proc is not None and _plain_json_text(impl, dialect, "_json_serializer", json.dumps):
        return _json_text_dumps(proc)
    return proc


def _plain_json_text(impl: Any, dialect: Dialect, attribute: str, default: Any) -> bool:
    """Whether ``impl`` is a JSON column kept as text (SQLite) with the
    json module's defaults (no serializer of the engine's own)."""
    return isinstance(impl, sa.JSON) and dialect.name == "sqlite" and \
        getattr(dialect, attribute, None) in (None, default)


def _result_processor(type_: Any, dialect: Dialect, coltype: Any) -> _Processor | None:
    impl = type_.dialect_impl(dialect)
    proc: _Processor | None = impl.result_processor(dialect, coltype)
    if proc is not None and _plain_json_text(impl, dialect, "_json_deserializer", json.loads):
        return _json_text_loads(proc)
    return proc


def _json_text_dumps(fallback: _Processor) -> _Processor:
    """A JSON column's writer on SQLite: orjson, as the Redis backend
    writes JSON (compact, several times faster than the json module), and
    SQLAlchemy's own processor for what orjson refuses (integers past 64
    bits, lone surrogates, SQLAlchemy's NULL markers)."""
    dumps = orjson.dumps

    def process(value: Any) -> Any:
        try:
            return dumps(value).decode()
        except TypeError:  # orjson.JSONEncodeError included
            return fallback(value)

    return process


#: 20 digits in a row: maybe an integer orjson would read as a float.
_LONG_DIGITS = re.compile(r"\d{20}")


def _json_text_loads(fallback: _Processor) -> _Processor:
    """A JSON column's reader on SQLite: orjson (several times faster than
    the json module) for what it reads exactly as the json module does,
    SQLAlchemy's own processor for the rest (NaN, lone surrogates, and
    integers past 64 bits, which orjson would make floats), so the values
    read are those SQLAlchemy gives."""
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    long_digits = _LONG_DIGITS.search

    def process(value: Any) -> Any:
        if type(value) is str and (len(value) < 20 or long_digits(value) is None):
            try:
                return loads(value)
            except decode_error:
                pass
        return fallback(value)

    return process
