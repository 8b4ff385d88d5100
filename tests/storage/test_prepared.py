"""The SQL backend's compiled statements run on the driver's cursor
(rollsafe.storage.prepared), on SQLite and PostgreSQL: what they write and
read is what SQLAlchemy's own execution gives, an engine that logs or
instruments its statements still sees every one, and failures come out as
the backend's errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from rollsafe.errors import PayloadVersionError, StorageError
from rollsafe.storage import Record, Store
from rollsafe.storage.rewrite import count_outdated
from rollsafe.storage.sql import SqlBackend
from rollsafe.storage.store import revision_of
from rollsafe.upgrade import OnlineMigrations

from .conftest import SQL_BACKENDS, url_of
from .domain import APP_CURRENT, APP_OLDEST, App, collections, new_app

OpenStore = Callable[..., Store]


@pytest.fixture(params=SQL_BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Overrides conftest.py's: SQLite (a file) and PostgreSQL only."""
    return url_of(request.param, request, tmp_path)


def app_table(store: Store) -> sa.Table:
    backend = store.backend
    assert isinstance(backend, SqlBackend)
    return backend.table_map(store.collection(App)).table


def raw_rows(store: Store) -> list[dict[str, Any]]:
    """Every App row as SQLAlchemy Core reads it (its own execution path)."""
    backend = store.backend
    assert isinstance(backend, SqlBackend)
    table = app_table(store)
    with backend.engine.connect() as conn:
        return [dict(row) for row in conn.execute(
            sa.select(table).order_by(table.c.name)).mappings()]


def test_rows_written_read_back_through_sqlalchemy_as_written(store: Store) -> None:
    apps = [new_app(name=f"app-{i}", counter=i, note=None if i % 2 else "n") for i in range(3)]
    with store.unit_of_work() as uow:
        for app in apps:
            uow.create(app)
    apps[1].labels["new"] = "yes"
    apps[2].note = "changed"
    with store.unit_of_work() as uow:
        uow.update_many(apps)

    rows = raw_rows(store)
    assert [(r["name"], r["counter"], r["note"], r["rs_version"], r["rs_revision"])
            for r in rows] == [("app-0", 0, "n", APP_CURRENT, 1),
                               ("app-1", 1, None, APP_CURRENT, 2),
                               ("app-2", 2, "changed", APP_CURRENT, 2)]
    assert rows[1]["labels"] == {**new_app().labels, "new": "yes"}
    assert [uuid.UUID(r["id"]) for r in rows] == [a.id for a in apps]
    assert rows[0]["created_at"] == apps[0].created_at  # the instant, in UTC
    assert rows[0]["created_at__utcoffset"] == 330  # and the offset, in minutes
    # and what the store reads is what was written
    assert [store.get(App, a.id) for a in apps] == apps


@pytest.fixture
def observed(backend_url: str, open_store: OpenStore) -> Iterator[tuple[Store, list[str]]]:
    """A store whose engine has a ``before_cursor_execute`` listener, and
    the statements it saw."""
    store = open_store()
    backend = store.backend
    assert isinstance(backend, SqlBackend)
    backend.drop_all(store.collections)
    store.ensure_schema()
    seen: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    sa.event.listen(backend.engine, "before_cursor_execute", listen)
    yield store, seen
    sa.event.remove(backend.engine, "before_cursor_execute", listen)


def test_an_instrumented_engine_sees_every_statement(observed: tuple[Store, list[str]]
                                                     ) -> None:
    store, seen = observed
    apps = [store.create(new_app(name=f"app-{i}")) for i in range(3)]
    for app in apps:
        app.counter += 10
    with store.unit_of_work() as uow:
        uow.update_many(apps)
    listed = store.query(App, project="p1", order_by="name")
    got = store.get(App, apps[0].id)
    got.note = "single"
    store.update(got)

    assert seen.count("INSERT") == 3
    assert seen.count("UPDATE") == 2  # one executemany, one update
    assert seen.count("SELECT") >= 2  # the get and the page
    assert [a.name for a in listed.items] == ["app-0", "app-1", "app-2"]
    assert [revision_of(a) for a in listed.items] == [2, 2, 2]
    assert store.get(App, got.id).note == "single"


def test_a_value_the_database_cannot_take_is_a_storage_error(store: Store) -> None:
    app = store.create(new_app())
    coll = store.collection(App)
    with store.backend.transaction() as tx:
        record = tx.get(coll, str(app.id), None)
    assert record is not None
    record.data["labels"] = {"not json": object()}
    with pytest.raises(StorageError, match="cannot store a value"), \
            store.backend.transaction() as tx:
        tx.update(coll, record.key, None, 1, record.version, {"labels": record.data["labels"]},
                  False)
    assert store.get(App, app.id) == app  # nothing written


def test_a_record_newer_than_the_code_is_refused_clearly_by_reads_and_counts(
        store: Store) -> None:
    apps = [store.create(new_app(name=f"app-{i}")) for i in range(3)]
    table = app_table(store)
    backend = store.backend
    assert isinstance(backend, SqlBackend)
    with backend.engine.begin() as conn:  # as a newer release would have written it
        conn.execute(table.update().where(table.c.id == str(apps[1].id))
                     .values(rs_version="9.0"))
    migrations = OnlineMigrations("t")
    migrations.rewrite(App)

    with pytest.raises(PayloadVersionError, match=r"stored at version 9\.0, newer than"):
        store.get(App, apps[1].id)
    with pytest.raises(PayloadVersionError, match=str(apps[1].id)):
        count_outdated(store, App)  # counted by the database, refused all the same
    with pytest.raises(PayloadVersionError):
        migrations.pending(store)
    assert store.get(App, apps[0].id) == apps[0]


def test_old_records_count_as_outdated_by_version(store: Store, open_store: OpenStore) -> None:
    old = open_store(storage_versions={"App": APP_OLDEST})
    for i in range(4):
        old.create(new_app(name=f"old-{i}", project="p2" if i % 2 else "p1"))
    store.create(new_app(name="new"))
    assert count_outdated(store, App) == (4, 0)
    assert count_outdated(store, App, project="p2") == (2, 0)
    assert count_outdated(old, App) == (0, 1)


def test_json_text_reads_as_the_json_module_reads_it(tmp_path: Path) -> None:
    """On SQLite, JSON text is read with orjson except where orjson would
    read it differently: integers past 64 bits (orjson makes them floats),
    NaN, lone surrogates."""
    store = Store(SqlBackend(f"sqlite:///{tmp_path}/j.db"), collections())
    store.ensure_schema()
    app = store.create(new_app())
    table = app_table(store)
    backend = store.backend
    assert isinstance(backend, SqlBackend)
    texts = ['{"big": 18446744073709551616, "f": NaN}', '{"s": "\\ud800"}',
             '{"digits": "123456789012345678901234"}', '{"small": -9223372036854775808}']
    coll = store.collection(App)
    as_text = table.update().where(table.c.id == str(app.id)).values(
        labels=sa.bindparam("text", type_=sa.Text()))
    for text in texts:
        with backend.engine.begin() as conn:
            conn.execute(as_text, {"text": text})
        with store.backend.transaction() as tx:
            record = tx.get(coll, str(app.id), None)
        assert isinstance(record, Record)
        got, want = record.data["labels"], json.loads(text)
        assert repr(got) == repr(want)  # ints stay ints, NaN stays NaN
    store.close()
