"""Expand and contract (rollsafe.storage.migrate and ``rollsafe db``) across
a real release boundary, on SQLite and PostgreSQL.

Release N and release N+1 of one service are declared in two registries of
the same namespace, as two processes of a rolling upgrade would have them.
N+1's ``App`` 1.1 renames ``owner`` to ``team``, retypes ``repo`` from a URL
string to a ``Repo`` object, adds ``tier`` and adds the enum value
``stopped`` to ``state``. The tests walk the whole procedure: expand for N on
an empty database, expand for N+1 while N keeps serving, N+1 writing at N's
versions, the contract gate refusing while rows are stored at 1.0, the
online rewrite, contract, and the same steps through the CLI.

The domain is one module source (``DOMAIN_SOURCE``): imported here, and
written next to the CLI subprocess so ``--collections`` can name it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa

from rollsafe.storage import Store
from rollsafe.storage.migrate import (
    ContractRefusedError,
    SchemaPlan,
    UnsafeExpandError,
    check_expand,
    contract,
    expand,
    plan,
    stale_rows,
)
from rollsafe.storage.sql import SqlBackend

DOMAIN_SOURCE = textwrap.dedent('''
    """Release N and release N+1 of one service (rollsafe migrate tests)."""

    from __future__ import annotations

    import datetime as dt
    from types import SimpleNamespace
    from typing import Literal

    from rollsafe import (Added, EnumValuesAdded, History, Registry, Renamed, Retyped,
                          Version, VersionedObject, field)
    from rollsafe.storage import Collection

    TABLE = "mig_app"
    V_N, V_N1 = "1.0", "1.1"
    INDEXES_N = ("name", "owner", "state")
    INDEXES_N1 = ("name", "team", "state", "tier")


    def _release_n():
        reg = Registry("mig")

        class App(VersionedObject, registry=reg):
            id: str = field(read_only=True)
            project: str = field(read_only=True)
            name: str
            owner: str = "core"
            repo: str = ""
            state: Literal["queued", "running"] = "queued"
            count: int = 0
            created_at: dt.datetime | None = None

        return SimpleNamespace(registry=reg, App=App)


    def _release_n1():
        reg = Registry("mig")

        class Repo(VersionedObject, registry=reg):
            url: str
            private: bool = False

        class App(VersionedObject, registry=reg):
            VERSIONS = History(
                Version("1.0", "Initial version"),
                Version("1.1", "Teams, repository objects, tiers, stopped apps",
                        Renamed("owner", "team"),
                        Retyped("repo", str, upgrade=lambda url: Repo(url=url),
                                downgrade=lambda repo: repo.url),
                        Added("tier", default="legacy"),
                        EnumValuesAdded("state", ["stopped"], fallback={"stopped": "running"})),
            )
            id: str = field(read_only=True)
            project: str = field(read_only=True)
            name: str
            team: str = "core"
            repo: Repo
            tier: str = "standard"
            state: Literal["queued", "running", "stopped"] = "queued"
            count: int = 0
            created_at: dt.datetime | None = None

        return SimpleNamespace(registry=reg, App=App, Repo=Repo)


    N = _release_n()
    N1 = _release_n1()


    def collection_n():
        return Collection(N.App, key="id", project="project", indexes=INDEXES_N, name=TABLE)


    def collection_n1(oldest=None):
        return Collection(N1.App, key="id", project="project", indexes=INDEXES_N1, name=TABLE,
                          oldest=oldest)


    # What --collections names in the CLI tests.
    release_n = [collection_n()]
    release_n1 = [collection_n1()]
    release_n1_contract = [collection_n1(oldest=V_N1)]
    not_collections = "mig_app"
''')

DOMAIN_MODULE = "rollsafe_migrate_domain"


def _load_domain() -> ModuleType:
    module = ModuleType(DOMAIN_MODULE)
    module.__file__ = f"<{DOMAIN_MODULE}>"
    sys.modules[DOMAIN_MODULE] = module
    exec(compile(DOMAIN_SOURCE, module.__file__, "exec"), module.__dict__)
    return module


dom = _load_domain()
N, N1 = dom.N, dom.N1
TABLE, V_N, V_N1 = dom.TABLE, dom.V_N, dom.V_N1
PIN_N = {"App": V_N}

#: The columns release N's table has, and what N+1's expand adds.
COLUMNS_N = {"id", "project", "name", "owner", "repo", "state", "count", "created_at",
             "created_at__utcoffset", "rs_version", "rs_revision"}
#: A renamed field keeps its column (``team`` lives in ``owner``); a field
#: retyped to another storage kind gets a new one.
ADDED_BY_N1 = {"repo__v1_1", "tier"}
#: What contract drops once oldest is 1.1: repo (retyped away from text).
DROPPED_BY_CONTRACT = {"repo"}
INDEXES_N = {f"ix_{TABLE}_project": ["project"], f"ix_{TABLE}_name": ["project", "name"],
             f"ix_{TABLE}_owner": ["project", "owner"], f"ix_{TABLE}_state": ["project", "state"]}
INDEXES_ADDED_BY_N1 = {f"ix_{TABLE}_tier": ["project", "tier"]}


# --- The database: SQLite file or a fresh PostgreSQL schema ------------------

@dataclass
class Db:
    """One test's database: backends opened on it are closed at teardown
    (each release / store in the tests gets its own backend, as separate
    processes would)."""

    url: str
    backends: list[SqlBackend] = field(default_factory=list)

    def backend(self) -> SqlBackend:
        backend = SqlBackend(self.url)
        self.backends.append(backend)
        return backend

    def _inspect(self) -> Any:
        """A fresh inspector (a cached one would not see the changes)."""
        return sa.inspect(self.backend().engine)

    def columns(self, table: str = TABLE) -> dict[str, dict[str, Any]]:
        """Column name -> reflected column (type, nullable, ...)."""
        inspector = self._inspect()
        return {c["name"]: c for c in inspector.get_columns(table)}

    def indexes(self, table: str = TABLE) -> dict[str, list[str]]:
        inspector = self._inspect()
        return {i["name"]: list(i["column_names"]) for i in inspector.get_indexes(table)}

    def tables(self) -> set[str]:
        inspector = self._inspect()
        return set(inspector.get_table_names())

    def versions(self, table: str = TABLE) -> dict[str, int]:
        """rs_version -> row count."""
        backend = self.backend()
        with backend.engine.connect() as conn:
            rows = conn.execute(sa.text(
                f"SELECT rs_version, COUNT(*) FROM {table} GROUP BY rs_version")).all()
        return {v: int(n) for v, n in rows}

    def close(self) -> None:
        for backend in self.backends:
            backend.close()


def _with_query(url: str, param: str) -> str:
    return url + ("&" if "?" in url else "?") + param


def _admin_engine(url: str) -> sa.Engine:
    return sa.create_engine("postgresql+psycopg://" + url.split("://", 1)[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """An empty database; on PostgreSQL a schema of its own (the search path
    of every connection), dropped afterwards, so runs never meet."""
    if request.param == "sqlite":
        database = Db(f"sqlite:///{tmp_path / 'mig.db'}")
        try:
            yield database
        finally:
            database.close()
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    database = Db(_with_query(base, f"options=-csearch_path%3D{schema}"))
    try:
        yield database
    finally:
        database.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


# --- Helpers ------------------------------------------------------------------

def kinds(ops: list[Any]) -> list[str]:
    return [op[0] if isinstance(op, tuple) else "modify" for op in ops]


def op_names(schema_plan: SchemaPlan) -> dict[str, set[str]]:
    """The expand and contract operations as 'kind name' strings."""
    def name(op: tuple[Any, ...]) -> str:
        kind = op[0]
        if kind in ("add_column", "remove_column"):
            return f"{kind} {op[2]}.{op[3].name}"
        if kind in ("add_index", "remove_index", "add_table", "remove_table"):
            return f"{kind} {op[1].name}"
        return repr(op)

    return {"expand": {name(op) for op in schema_plan.expand},
            "contract": {name(op) for op in schema_plan.contract}}


def is_empty(schema_plan: SchemaPlan) -> bool:
    return not (schema_plan.expand or schema_plan.contract or schema_plan.other)


def new_n(key: str, **values: Any) -> Any:
    defaults: dict[str, Any] = {"id": key, "project": "p1", "name": f"app-{key}",
                                "owner": "ops", "repo": f"https://git.example/{key}.git",
                                "state": "running", "count": 1}
    defaults.update(values)
    return N.App(**defaults)


def new_n1(key: str, **values: Any) -> Any:
    defaults: dict[str, Any] = {"id": key, "project": "p1", "name": f"app-{key}",
                                "team": "ops",
                                "repo": N1.Repo(url=f"https://git.example/{key}.git",
                                                private=True),
                                "tier": "gold", "state": "queued", "count": 1}
    defaults.update(values)
    return N1.App(**defaults)


def expand_n(db: Db) -> SqlBackend:
    """Release N's schema, expanded on the empty database; N's backend."""
    backend = db.backend()
    expand(backend, [dom.collection_n()])
    return backend


def at_n1(db: Db, n_keys: tuple[str, ...] = ("a1", "a2", "a3")) -> tuple[Store, Store]:
    """N's schema with N's rows ``n_keys``, then expanded for N+1: (N's
    store, N+1's unpinned store)."""
    store_n = Store(expand_n(db), [dom.collection_n()])
    for key in n_keys:
        store_n.create(new_n(key))
    backend_n1 = db.backend()
    expand(backend_n1, [dom.collection_n1()])
    return store_n, Store(backend_n1, [dom.collection_n1()])


def rewrite_all(store: Store) -> int:
    """The online migration: load every App, change it, update it (an
    unpinned store writes it at the current version)."""
    done = 0
    for app in list(store.stream(N1.App, batch=2)):
        app.count += 100
        store.update(app)
        done += 1
    return done


# --- 1. Expand on an empty database -------------------------------------------

def test_expand_on_empty_database_creates_table_and_indexes(db: Db) -> None:
    backend = db.backend()
    colls = [dom.collection_n()]
    before = plan(backend, colls)
    assert op_names(before) == {
        "expand": {f"add_table {TABLE}", *(f"add_index {name}" for name in INDEXES_N)},
        "contract": set()}
    assert before.other == []
    assert all(line.startswith("expand: ") for line in before.describe())

    applied = expand(backend, colls)
    assert op_names(applied) == op_names(before)
    assert TABLE in db.tables()
    assert set(db.columns()) == COLUMNS_N
    assert db.indexes() == INDEXES_N
    columns = db.columns()
    assert not columns["rs_version"]["nullable"] and not columns["rs_revision"]["nullable"]
    assert all(columns[name]["nullable"] for name in COLUMNS_N
               if name not in ("id", "rs_version", "rs_revision"))

    after = plan(db.backend(), [dom.collection_n()])
    assert is_empty(after), after.describe()
    assert after.describe() == []
    assert is_empty(expand(db.backend(), [dom.collection_n()]))  # idempotent


# --- 2. Expand for N+1 on N's database ----------------------------------------

def test_expand_for_next_release_only_adds_and_old_release_keeps_serving(db: Db) -> None:
    store_n = Store(expand_n(db), [dom.collection_n()])
    store_n.create(new_n("a1"))
    store_n.create(new_n("a2", owner="web", state="queued"))
    columns_before = db.columns()

    backend_n1 = db.backend()
    colls_n1 = [dom.collection_n1()]
    pending = plan(backend_n1, colls_n1)
    assert op_names(pending) == {
        "expand": {*(f"add_column {TABLE}.{name}" for name in ADDED_BY_N1),
                   *(f"add_index {name}" for name in INDEXES_ADDED_BY_N1)},
        "contract": set()}
    assert pending.other == []
    assert set(kinds(pending.expand)) == {"add_column", "add_index"}
    check_expand(pending.expand)  # only adds: passes
    lines = pending.describe()
    assert not any(".team " in line for line in lines)  # the rename reuses owner's column
    assert any(line.startswith(f"expand: add_column {TABLE}.repo__v1_1 ") for line in lines)
    assert f"expand: add_index ix_{TABLE}_tier on {TABLE}" in lines

    expand(backend_n1, colls_n1)
    columns = db.columns()
    assert set(columns) == COLUMNS_N | ADDED_BY_N1
    for name, column in columns_before.items():  # nothing dropped, retyped or tightened
        assert str(columns[name]["type"]) == str(column["type"])
        assert columns[name]["nullable"] == column["nullable"]
    assert all(columns[name]["nullable"] for name in ADDED_BY_N1)
    assert db.indexes() == {**INDEXES_N, **INDEXES_ADDED_BY_N1}
    assert is_empty(plan(db.backend(), colls_n1))

    # Release N (the backend it opened before the expand) keeps serving.
    again = store_n.get(N.App, "a1")
    assert (again.owner, again.repo, again.state) == ("ops", "https://git.example/a1.git",
                                                      "running")
    again.owner = "platform"
    again.count = 2
    store_n.update(again)
    store_n.create(new_n("a3", owner="platform"))
    assert store_n.get(N.App, "a1").owner == "platform"
    assert [a.id for a in store_n.query(N.App, project="p1", where={"owner": "platform"})
            .items] == ["a1", "a3"]
    assert [a.id for a in store_n.query(N.App, where={"state": "queued"}).items] == ["a2"]
    assert [a.name for a in store_n.query(N.App, project="p1", order_by="name").items] == \
        ["app-a1", "app-a2", "app-a3"]

    # N+1 pinned to N's versions writes records N reads, while N is running.
    pinned = Store(backend_n1, colls_n1, storage_versions=PIN_N)
    pinned.create(new_n1("b1", state="stopped"))
    from_n1 = pinned.get(N1.App, "a2")
    from_n1.team = "sre"
    from_n1.repo = N1.Repo(url="https://git.example/moved.git")
    pinned.update(from_n1)
    assert db.versions() == {V_N: 4}
    b1 = store_n.get(N.App, "b1")
    assert (b1.owner, b1.repo, b1.state, b1.count) == (
        "ops", "https://git.example/b1.git", "running", 1)  # stopped falls back to running
    a2 = store_n.get(N.App, "a2")
    assert (a2.owner, a2.repo) == ("sre", "https://git.example/moved.git")
    b1.count = 5
    store_n.update(b1)  # and N can still update it

    # N+1 unpinned reads N's records upgraded, and queries by the renamed field.
    current = Store(db.backend(), [dom.collection_n1()])
    a1 = current.get(N1.App, "a1")
    assert (a1.team, a1.repo, a1.tier, a1.state, a1.count) == (
        "platform", N1.Repo(url="https://git.example/a1.git"), "legacy", "running", 2)
    assert current.get(N1.App, "b1").state == "running"
    assert [a.id for a in current.query(N1.App, project="p1", where={"team": "ops"}).items] \
        == ["b1"]
    assert [a.id for a in current.query(N1.App, where={"team": "platform"}).items] == \
        ["a1", "a3"]
    current.create(new_n1("c1", team="platform"))
    assert [a.id for a in current.query(N1.App, where={"team": "platform"}).items] == \
        ["a1", "a3", "c1"]
    assert db.versions() == {V_N: 4, V_N1: 1}


# --- 3. Contract ----------------------------------------------------------------

def test_contract_refused_while_old_rows_remain_then_drops_only_old_columns(db: Db) -> None:
    _store_n, current = at_n1(db)
    backend_c = db.backend()
    final = [dom.collection_n1(oldest=V_N1)]
    pending = plan(backend_c, final)
    assert op_names(pending) == {
        "expand": set(),
        "contract": {f"remove_column {TABLE}.{name}" for name in DROPPED_BY_CONTRACT}}
    assert pending.other == []
    assert stale_rows(backend_c, final) == {f"App (table {TABLE})": 3}

    columns_before = db.columns()
    with pytest.raises(ContractRefusedError) as refused:
        contract(backend_c, final)
    message = str(refused.value)
    assert f"App (table {TABLE}): 3" in message
    assert "force" in message and "migrat" in message
    assert db.columns().keys() == columns_before.keys()  # refused: nothing dropped

    # One row left at 1.0 still blocks it.
    migrated = [a for a in current.stream(N1.App) if a.id != "a3"]
    for app in migrated:
        app.count += 1
        current.update(app)
    with pytest.raises(ContractRefusedError, match=re.escape(f"App (table {TABLE}): 1")):
        contract(backend_c, final)

    assert rewrite_all(current) == 3
    assert db.versions() == {V_N1: 3}
    assert stale_rows(backend_c, final) == {}

    dry = contract(backend_c, final, dry_run=True)
    assert op_names(dry) == op_names(pending)
    assert set(db.columns()) == COLUMNS_N | ADDED_BY_N1  # dry run: nothing dropped

    done = contract(backend_c, final)
    assert op_names(done) == op_names(pending)
    assert set(db.columns()) == (COLUMNS_N | ADDED_BY_N1) - DROPPED_BY_CONTRACT
    assert db.indexes() == {**INDEXES_N, **INDEXES_ADDED_BY_N1}  # owner's serves team
    assert is_empty(plan(db.backend(), final))

    # The N+1 store (its collection's oldest raised to 1.1) still works.
    after = Store(db.backend(), [dom.collection_n1(oldest=V_N1)])
    a1 = after.get(N1.App, "a1")
    assert (a1.team, a1.repo, a1.tier, a1.count) == (
        "ops", N1.Repo(url="https://git.example/a1.git"), "legacy", 102)
    a1.tier = "gold"
    a1.state = "stopped"
    after.update(a1)
    after.create(new_n1("d1", team="sre", created_at=None))
    assert [a.id for a in after.query(N1.App, project="p1", where={"team": "ops"}).items] == \
        ["a1", "a2", "a3"]
    assert [a.id for a in after.query(N1.App, order_by="team", descending=True).items] == \
        ["d1", "a3", "a2", "a1"]  # one column per field now: order by it works
    assert after.get(N1.App, "a1").state == "stopped"
    assert is_empty(contract(db.backend(), final))  # nothing left to contract


def test_contract_force_drops_despite_stale_rows(db: Db) -> None:
    _store_n, current = at_n1(db, ("a1", "a2"))
    current.create(new_n1("c1"))
    backend_c = db.backend()
    final = [dom.collection_n1(oldest=V_N1)]
    with pytest.raises(ContractRefusedError, match=re.escape(f"App (table {TABLE}): 2")):
        contract(backend_c, final)

    forced = contract(backend_c, final, force=True)
    assert {f"remove_column {TABLE}.{name}" for name in DROPPED_BY_CONTRACT} <= \
        op_names(forced)["contract"]
    assert set(db.columns()) == (COLUMNS_N | ADDED_BY_N1) - DROPPED_BY_CONTRACT
    assert is_empty(plan(db.backend(), final))
    assert db.versions() == {V_N: 2, V_N1: 1}  # the rows stay, stranded

    after = Store(db.backend(), final)
    assert after.get(N1.App, "c1").repo == N1.Repo(url="https://git.example/c1.git",
                                                   private=True)
    from rollsafe.errors import StorageError

    with pytest.raises(StorageError, match="migrate it first"):
        after.get(N1.App, "a1")


def test_contract_keeps_columns_no_version_of_the_history_used(db: Db) -> None:
    """Contract drops what only versions *older than oldest* used. Release
    N's contract (a rollback, or N's pipeline running after N+1's expand)
    knows no version that used team / tier / repo__v1_1: they are N+1's, and
    N+1 (pinned, so every row is still at 1.0 and the gate sees nothing
    stale) is running on them. Contract must leave them."""
    _store_n, current = at_n1(db, ("a1",))
    pinned = Store(db.backend(), [dom.collection_n1()], storage_versions=PIN_N)
    pinned.create(new_n1("b1"))
    colls_n = [dom.collection_n()]
    assert stale_rows(db.backend(), colls_n) == {}

    contract(db.backend(), colls_n)
    assert set(db.columns()) == COLUMNS_N | ADDED_BY_N1, \
        "release N's contract dropped columns only release N+1 uses"
    assert db.indexes() == {**INDEXES_N, **INDEXES_ADDED_BY_N1}
    assert current.get(N1.App, "b1").team == "ops"
    assert plan(db.backend(), colls_n).contract == []


def test_contract_keeps_columns_and_indexes_added_by_hand(db: Db) -> None:
    """A column and an index an operator added by hand were used by no
    version of the history: the real contract (oldest 1.1, every row
    migrated) drops exactly owner, repo and ix_mig_app_owner, nothing else."""
    _store_n, current = at_n1(db, ("a1",))
    with db.backend().engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {TABLE} ADD COLUMN ops_note TEXT")
        conn.exec_driver_sql(f"CREATE INDEX ix_ops_by_hand ON {TABLE} (name, count)")
    rewrite_all(current)
    final = [dom.collection_n1(oldest=V_N1)]

    done = contract(db.backend(), final)
    assert set(db.columns()) == ((COLUMNS_N | ADDED_BY_N1) - DROPPED_BY_CONTRACT) | \
        {"ops_note"}, f"contract dropped more than the old columns: {done.describe()}"
    assert "ix_ops_by_hand" in db.indexes()
    assert f"ix_{TABLE}_owner" in db.indexes()  # still serves the renamed field


def test_store_still_on_old_oldest_after_contract_fails_without_claiming_retry(
        db: Db) -> None:
    """A store whose collection still reads 1.0 (oldest not raised) after a
    contract selects dropped columns. That can never succeed, so it must not
    be reported as RetryableStorageError ("nothing committed, safe to
    retry")."""
    from rollsafe.errors import RetryableStorageError

    _store_n, current = at_n1(db, ("a1",))
    rewrite_all(current)
    contract(db.backend(), [dom.collection_n1(oldest=V_N1)])
    stale_store = Store(db.backend(), [dom.collection_n1()])
    with pytest.raises(Exception) as failed:  # which class is what is checked below
        stale_store.get(N1.App, "a1")
    assert "repo" in str(failed.value)
    assert not isinstance(failed.value, RetryableStorageError), \
        f"a missing column is reported as retryable: {failed.value!r}"


def _reused_name_releases() -> tuple[Any, Any]:
    """App at 1.0 has ``owner``; 1.1 renames it to ``team``; 1.2 adds a new,
    unrelated ``owner`` field (same name, same storage kind)."""
    from rollsafe import Added, History, Registry, Renamed, Version, VersionedObject
    from rollsafe import field as rs_field

    old_reg, new_reg = Registry("mig"), Registry("mig")

    class App(VersionedObject, registry=old_reg):
        id: str = rs_field(read_only=True)
        owner: str = "core"

    old = App

    class App(VersionedObject, registry=new_reg):  # release N+2's App
        VERSIONS = History(
            Version("1.0", "Initial version"),
            Version("1.1", "The owner is a team", Renamed("owner", "team")),
            Version("1.2", "A new owner: a person", Added("owner", default="nobody")),
        )
        id: str = rs_field(read_only=True)
        team: str = "core"
        owner: str = "nobody"

    return old, App


def test_field_name_reused_after_rename_does_not_match_old_rows(db: Db) -> None:
    """The column of 1.0's ``owner`` (now ``team``) must not serve 1.2's new
    ``owner``: a query on the new field would match old rows by the old
    field's value."""
    from rollsafe.storage import Collection

    old_app, new_app = _reused_name_releases()
    old_backend, old_colls = db.backend(), [Collection(old_app, indexes=("owner",),
                                                       name="mig_reuse")]
    expand(old_backend, old_colls)
    Store(old_backend, old_colls).create(old_app(id="old", owner="ops"))
    new_backend, colls = db.backend(), [Collection(new_app, indexes=("owner", "team"),
                                                   name="mig_reuse")]
    expand(new_backend, colls)
    new_store = Store(new_backend, colls)
    new_store.create(new_app(id="new", team="ops", owner="alice"))

    assert new_store.get(new_app, "old").owner == "nobody"
    matched = new_store.query(new_app, where={"owner": "ops"}).items
    assert [(a.id, a.owner) for a in matched] == [], \
        "where owner == 'ops' returned objects whose owner is not 'ops'"
    assert [a.id for a in new_store.query(new_app, where={"team": "ops"}).items] == \
        ["new", "old"]


# --- 4. check_expand and hand-made changes ------------------------------------

T = "mig_t"
_T_TABLE = sa.Table(T, sa.MetaData(), sa.Column("x", sa.Integer(), nullable=True))

UNSAFE_OPS: dict[str, list[Any]] = {
    "remove_column": [("remove_column", None, T, sa.Column("x", sa.Integer(), nullable=True))],
    "remove_index": [("remove_index", sa.Index("ix_mig_t_x", _T_TABLE.c.x))],
    "modify_nullable": [[("modify_nullable", None, T, "x",
                          {"existing_type": sa.Integer(), "existing_server_default": False,
                           "existing_comment": None}, True, False)]],
    "modify_type": [[("modify_type", None, T, "x",
                      {"existing_nullable": True, "existing_server_default": False,
                       "existing_comment": None}, sa.Integer(), sa.Text())]],
    "not_null_add_column": [("add_column", None, T, sa.Column("x", sa.Integer(),
                                                              nullable=False))],
    "unsafe_after_safe": [("add_column", None, T, sa.Column("y", sa.Text(), nullable=True)),
                          ("remove_column", None, T, sa.Column("x", sa.Integer()))],
}


@pytest.mark.parametrize("name", list(UNSAFE_OPS))
def test_check_expand_rejects_anything_but_adding(name: str) -> None:
    with pytest.raises(UnsafeExpandError) as rejected:
        check_expand(UNSAFE_OPS[name])
    message = str(rejected.value)
    assert f"{T}.x" in message or "ix_mig_t_x" in message, message
    assert "contract" in message, f"the message should say to do it in contract: {message}"


def test_check_expand_accepts_additions() -> None:
    table = sa.Table(T, sa.MetaData(), sa.Column("k", sa.Integer(), primary_key=True),
                     sa.Column("x", sa.Integer(), nullable=True))
    check_expand([
        ("add_table", table),
        ("add_column", None, T, sa.Column("y", sa.Text(), nullable=True)),
        ("add_column", None, T, sa.Column("z", sa.Integer(), nullable=False,
                                          server_default="0")),
        ("add_index", sa.Index("ix_mig_t_x", table.c.x)),
    ])
    check_expand([])


def _tamper(db: Db) -> None:
    """By hand, as an operator might: make N's ``name`` NOT NULL and retype
    ``count`` to text (a batch rebuild on SQLite, ALTERs on PostgreSQL)."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    backend = db.backend()
    with backend.engine.begin() as conn:
        ops = Operations(MigrationContext.configure(conn))
        with ops.batch_alter_table(TABLE) as batch:
            batch.alter_column("name", existing_type=sa.Text(), nullable=False)
            batch.alter_column("count", existing_type=sa.BigInteger(), type_=sa.Text(),
                               postgresql_using="count::text")


def test_hand_made_tightening_and_retyping_are_reported_as_manual(db: Db) -> None:
    store_n = Store(expand_n(db), [dom.collection_n()])
    store_n.create(new_n("a1"))
    _tamper(db)
    tampered = db.columns()
    assert not tampered["name"]["nullable"]
    assert "CHAR" in str(tampered["count"]["type"]).upper() or \
        "TEXT" in str(tampered["count"]["type"]).upper()

    # Against N's own objects: nothing to expand, the two changes are manual.
    own = plan(db.backend(), [dom.collection_n()])
    assert own.expand == [] and own.contract == []
    manual = " | ".join(line for line in own.describe() if line.startswith("manual: "))
    assert f"{TABLE}.name" in manual and f"{TABLE}.count" in manual, own.describe()
    assert "modify_nullable" in manual and "modify_type" in manual

    # Expand for N+1 adds its columns and leaves the hand-made changes alone.
    backend_n1 = db.backend()
    result = expand(backend_n1, [dom.collection_n1()])
    assert op_names(result)["expand"] == {
        *(f"add_column {TABLE}.{name}" for name in ADDED_BY_N1),
        *(f"add_index {name}" for name in INDEXES_ADDED_BY_N1)}
    assert result.other, "the hand-made changes should be reported under other (manual)"
    manual = " | ".join(line for line in result.describe() if line.startswith("manual: "))
    assert f"{TABLE}.name" in manual and f"{TABLE}.count" in manual, result.describe()
    columns = db.columns()
    assert set(columns) == COLUMNS_N | ADDED_BY_N1
    assert not columns["name"]["nullable"]  # not undone
    assert str(columns["count"]["type"]) == str(tampered["count"]["type"])
    later = plan(db.backend(), [dom.collection_n1()])
    assert later.expand == [] and later.contract == [] and len(later.other) == \
        len(result.other)


# --- 5. The CLI ------------------------------------------------------------------

ROLLSAFE = Path(sys.executable).with_name("rollsafe")


@dataclass
class Cli:
    cwd: Path
    url: str

    def __call__(self, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
        env.pop("ROLLSAFE_DB_URL", None)
        command = [str(ROLLSAFE), "db", *args]
        if url is not None or "--url" not in args:
            command += ["--url", url or self.url]
        return subprocess.run(command, cwd=self.cwd, env=env, capture_output=True,
                              text=True, timeout=120, check=False)


def _cli_workdir(tmp_path: Path) -> Path:
    work = tmp_path / "cli"
    work.mkdir()
    (work / "migdomain.py").write_text(DOMAIN_SOURCE)
    return work


@pytest.fixture
def cli(db: Db, tmp_path: Path) -> Cli:
    """``rollsafe db ...`` on ``db``, in a folder holding migdomain.py."""
    return Cli(_cli_workdir(tmp_path), db.url)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_cli_plan_expand_contract(db: Db, cli: Cli) -> None:
    n, n1, final = ("-c", "migdomain:release_n"), ("-c", "migdomain:release_n1"), \
        ("-c", "migdomain:release_n1_contract")

    planned = cli("plan", *n)
    assert planned.returncode == 1, _output(planned)
    assert f"expand: add_table {TABLE}" in planned.stdout
    assert f"expand: add_index ix_{TABLE}_owner on {TABLE}" in planned.stdout

    dry = cli("expand", *n, "--dry-run")
    assert dry.returncode == 0, _output(dry)
    assert "dry run" in dry.stdout and f"add_table {TABLE}" in dry.stdout
    assert TABLE not in db.tables()  # dry run: nothing applied

    done = cli("expand", *n)
    assert done.returncode == 0, _output(done)
    assert "expand done" in done.stdout
    clean = cli("plan", *n)
    assert clean.returncode == 0, _output(clean)
    assert "nothing to do" in clean.stdout

    store_n = Store(db.backend(), [dom.collection_n()])
    for key in ("a1", "a2"):
        store_n.create(new_n(key))

    planned = cli("plan", *n1)
    assert planned.returncode == 1, _output(planned)
    for name in ADDED_BY_N1:
        assert f"expand: add_column {TABLE}.{name} " in planned.stdout
    assert "contract:" not in planned.stdout and "manual:" not in planned.stdout
    done = cli("expand", *n1)
    assert done.returncode == 0, _output(done)
    assert set(db.columns()) == COLUMNS_N | ADDED_BY_N1

    refused = cli("contract", *final)
    assert refused.returncode == 1, _output(refused)
    assert "refused" in refused.stderr and f"App (table {TABLE}): 2" in refused.stderr
    forced_dry = cli("contract", *final, "--force", "--dry-run")
    assert forced_dry.returncode == 0, _output(forced_dry)
    assert "--force" in forced_dry.stderr and "lost" in forced_dry.stderr  # the loud warning
    assert "dry run" in forced_dry.stdout
    assert f"contract: remove_column {TABLE}.repo" in forced_dry.stdout
    assert set(db.columns()) == COLUMNS_N | ADDED_BY_N1

    assert rewrite_all(Store(db.backend(), [dom.collection_n1()])) == 2

    dry = cli("contract", *final, "--dry-run")
    assert dry.returncode == 0, _output(dry)
    assert f"contract: remove_column {TABLE}.repo " in dry.stdout and "dry run" in dry.stdout
    assert "--force" not in dry.stderr
    assert set(db.columns()) == COLUMNS_N | ADDED_BY_N1

    done = cli("contract", *final)
    assert done.returncode == 0, _output(done)
    assert "contract done" in done.stdout
    assert set(db.columns()) == (COLUMNS_N | ADDED_BY_N1) - DROPPED_BY_CONTRACT
    clean = cli("plan", *final)
    assert clean.returncode == 0, _output(clean)


def test_cli_force_contract_warns_and_drops(db: Db, cli: Cli) -> None:
    _store_n, _current = at_n1(db, ("a1",))
    forced = cli("contract", "-c", "migdomain:release_n1_contract", "--force")
    assert forced.returncode == 0, _output(forced)
    assert "--force" in forced.stderr and "lost" in forced.stderr
    assert "contract done" in forced.stdout
    assert set(db.columns()) == (COLUMNS_N | ADDED_BY_N1) - DROPPED_BY_CONTRACT


@pytest.mark.parametrize(("command", "spec", "url", "expected"), [
    ("plan", "migdomain", None, "expected MODULE:NAME"),
    ("expand", "no_such_module_xyz:colls", None, "no_such_module_xyz"),
    ("contract", "migdomain:missing", None, "missing"),
    ("plan", "migdomain:not_collections", None, "must name a Collection"),
    ("contract", "migdomain:release_n", "redis://127.0.0.1:1/0", "SQL --url"),
    ("expand", "migdomain:release_n", "redis://127.0.0.1:1/0", "SQL --url"),
])
def test_cli_bad_usage_exits_2(tmp_path: Path, command: str, spec: str, url: str | None,
                               expected: str) -> None:
    cli = Cli(_cli_workdir(tmp_path), f"sqlite:///{tmp_path / 'mig.db'}")
    result = cli(command, "-c", spec, url=url)
    assert result.returncode == 2, _output(result)
    assert "error" in result.stderr and expected in result.stderr, result.stderr
    assert not (tmp_path / "mig.db").exists()  # nothing touched
