"""Release N and release N+1 side by side: their histories, the objects each
reads of the other's through one store, the two-release enum rule, the
online migration of App's source, and expand / contract of its columns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from solum_support import (
    BACKENDS,
    SQL_BACKENDS,
    Stores,
    add_app,
    add_pack,
    backend_url,
    open_stores,
)

import rollsafe
from rollsafe import DowngradeError, IncompatibleVersionError
from rollsafe.storage import migrate
from solumlite.domain import SourceSpec, utcnow
from solumlite.releases import n, n1

P = "acme"
N_PINS = n1.HISTORY.manifest("N")


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request.param, request, tmp_path)


@pytest.fixture
def stores(url: str) -> Iterator[Stores]:
    with open_stores(url) as opened:
        yield opened


def test_each_release_history_records_the_versions_its_code_reads() -> None:
    assert n.HISTORY.check(n.REGISTRY) == []
    assert n1.HISTORY.check(n1.REGISTRY) == []
    assert n1.HISTORY.manifest("N") == n.REGISTRY.manifest()
    assert n1.HISTORY.names == ["N", "N+1"]


def test_each_release_is_a_service_definition_of_its_own() -> None:
    assert n.SERVICE.registry is n.REGISTRY and n1.SERVICE.registry is n1.REGISTRY
    assert n1.SERVICE.migrations is n1.MIGRATIONS
    assert n1.MIGRATIONS.names == ["app-source-object", "workflow-steps", "assembly-status"]
    assert [c.name for c in n.SERVICE.collections] == [c.name for c in n1.SERVICE.collections]


def test_an_app_crosses_between_the_releases_without_loss() -> None:
    app = n1.App(id=uuid.uuid4(), project=P, name="shop", language_pack="python",
                 source=n1.Source(url="https://git.example/shop.git", revision="v2",
                                  private=True),
                 run_cmd="python app.py", created_at=utcnow(), updated_at=utcnow())
    old = rollsafe.from_primitive(rollsafe.to_primitive(app, manifest=N_PINS), n.REGISTRY)
    assert isinstance(old, n.App)
    assert (old.source, old.private_repo) == ("https://git.example/shop.git#v2", True)
    back = rollsafe.from_primitive(rollsafe.to_primitive(old), n1.REGISTRY)
    assert back == app


def test_the_renamed_workflow_field_crosses_under_its_old_name() -> None:
    now = utcnow()
    workflow = n1.Workflow(id=uuid.uuid4(), project=P, app_id=uuid.uuid4(),
                           assembly_id=uuid.uuid4(), unit_id=uuid.uuid4(),
                           steps=["build", "deploy"], created_at=now, updated_at=now)
    data = rollsafe.to_primitive(workflow, manifest=N_PINS)["versioned_object.data"]
    assert data["actions"] == ["build", "deploy"] and "steps" not in data


def test_an_assembly_verifying_cannot_be_sent_to_release_n() -> None:
    now = utcnow()
    assembly = n1.Assembly(id=uuid.uuid4(), project=P, app_id=uuid.uuid4(),
                           workflow_id=uuid.uuid4(), name="shop-1", status="verifying",
                           created_at=now, updated_at=now)
    with pytest.raises(DowngradeError, match="status"):
        rollsafe.to_primitive(assembly, manifest=N_PINS)


def test_both_releases_read_what_the_other_stored(stores: Stores) -> None:
    old_store = stores.open(n.RELEASE)
    new_store = stores.open(n1.RELEASE, storage_versions=N_PINS)  # N still runs: pinned
    with n.RELEASE.bound(old_store):
        add_pack(n.RELEASE, P)
        from_n = add_app(n.RELEASE, P, "from-n",
                         source=SourceSpec("https://git.example/a.git", "main", True))
        workflow = n.RELEASE.start_workflow(P, from_n)["workflow"]["object"]
    with n1.RELEASE.bound(new_store):
        app = n1.RELEASE.fetch(n1.App, P, from_n)["object"]
        assert app.source == n1.Source(url="https://git.example/a.git", revision="main",
                                       private=True)
        seen = n1.RELEASE.fetch(n1.Workflow, P, workflow.id)["object"]
        assert seen.steps == ["unittest", "build", "deploy"]
        n1.RELEASE.advance_workflow(P, workflow.id)
        from_n1 = add_app(n1.RELEASE, P, "from-n1",
                          source=SourceSpec("https://git.example/b.git", "v3", False))
    with n.RELEASE.bound(old_store):
        old = n.RELEASE.fetch(n.App, P, from_n1)["object"]
        assert (old.source, old.private_repo) == ("https://git.example/b.git#v3", False)
        run = n.RELEASE.advance_workflow(P, workflow.id)  # N+1 began it, N goes on
        assert run["assembly"]["object"].status == "building"


def test_a_pinned_release_n1_writer_changes_the_source_without_loss(stores: Stores) -> None:
    # N+1 changes only `source`; at 1.0 that is two fields (the string and
    # private_repo): both must be written, or release N reads a stale flag.
    with n1.RELEASE.bound(stores.open(n1.RELEASE, storage_versions=N_PINS)):
        add_pack(n1.RELEASE, P)
        app_id = add_app(n1.RELEASE, P,
                         source=SourceSpec("https://git.example/a.git", "v1", True))
        n1.RELEASE.modify_app(P, app_id, 1, {"source": {"url": "https://git.example/b.git"}})
    with n.RELEASE.bound(stores.open(n.RELEASE)):
        old = n.RELEASE.fetch(n.App, P, app_id)["object"]
        assert (old.source, old.private_repo) == ("https://git.example/b.git", False)


def test_a_record_newer_than_a_release_reads_is_refused_clearly(stores: Stores) -> None:
    with n1.RELEASE.bound(stores.open(n1.RELEASE)):  # unpinned: writes App 1.1
        add_pack(n1.RELEASE, P)
        app_id = add_app(n1.RELEASE, P)
    # Redis decodes the record and finds a version it does not know; SQL
    # finds no columns for it. Both name the version and change nothing.
    with n.RELEASE.bound(stores.open(n.RELEASE)), \
            pytest.raises(IncompatibleVersionError, match=r"1\.1"):
        n.RELEASE.fetch(n.App, P, app_id)


def statuses_of_a_workflow(app_id: uuid.UUID) -> list[str]:
    workflow = n1.RELEASE.start_workflow(P, app_id)["workflow"]["object"]
    seen = []
    while True:
        run = n1.RELEASE.advance_workflow(P, workflow.id)
        seen.append(run["assembly"]["object"].status)
        if run["workflow"]["object"].status != "running":
            return seen


def test_verifying_is_written_only_once_the_pin_allows_it(stores: Stores) -> None:
    with n1.RELEASE.bound(stores.open(n1.RELEASE, storage_versions=N_PINS)):
        add_pack(n1.RELEASE, P)
        app_id = add_app(n1.RELEASE, P, test_cmd=None)
        workflow = n1.RELEASE.start_workflow(P, app_id)["workflow"]["object"]
        assert workflow.steps == ["build", "deploy"]
        assert statuses_of_a_workflow(app_id) == ["building", "deploying", "ready"]
    with n1.RELEASE.bound(stores.open(n1.RELEASE)):  # every service reads Assembly 1.1
        assert statuses_of_a_workflow(app_id) == ["building", "deploying", "verifying",
                                                  "ready"]


def test_the_online_migrations_move_release_n_records_forward(stores: Stores) -> None:
    with n.RELEASE.bound(stores.open(n.RELEASE)):
        add_pack(n.RELEASE, P)
        apps = [add_app(n.RELEASE, P, f"app-{i}",
                        source=SourceSpec(f"https://git.example/{i}.git", f"r{i}", i % 2 == 0))
                for i in range(4)]
        for app_id in apps:
            n.RELEASE.start_workflow(P, app_id)
    pinned = stores.open(n1.RELEASE, storage_versions=N_PINS)
    assert n1.MIGRATIONS.pending(pinned) == dict.fromkeys(n1.MIGRATIONS.names, 0)
    free = stores.open(n1.RELEASE)
    assert n1.MIGRATIONS.pending(free) == dict.fromkeys(n1.MIGRATIONS.names, 4)
    with n1.RELEASE.bound(free):
        before = [n1.RELEASE.fetch(n1.App, P, app_id)["object"] for app_id in apps]
    report = n1.MIGRATIONS.run(free, batch_size=3)
    assert report.exit_code == 0 and report.done == 12
    assert n1.MIGRATIONS.pending(free) == dict.fromkeys(n1.MIGRATIONS.names, 0)
    assert n1.MIGRATIONS.run(free).found == 0  # idempotent
    with n1.RELEASE.bound(free):
        after = [n1.RELEASE.fetch(n1.App, P, app_id)["object"] for app_id in apps]
    assert after == before
    assert [a.source.private for a in after] == [True, False, True, False]
    with n.RELEASE.bound(stores.open(n.RELEASE)), \
            pytest.raises(IncompatibleVersionError, match=r"1\.1"):
        n.RELEASE.fetch(n.App, P, apps[0])  # moved to 1.1: release N is gone by now


@pytest.mark.parametrize("kind", SQL_BACKENDS)
def test_expand_adds_the_source_column_and_contract_drops_the_retired_ones(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    stores = Stores(backend_url(kind, request, tmp_path))
    try:
        stores.open(n1.RELEASE).backend.drop_all(n1.RELEASE.collections())
        old_store = stores.open(n.RELEASE)
        old_store.ensure_schema()  # the database as release N created it
        with n.RELEASE.bound(old_store):
            add_pack(n.RELEASE, P)
            app_id = add_app(n.RELEASE, P)
        new_store = stores.open(n1.RELEASE, storage_versions=N_PINS)
        assert migrate.expand(new_store.backend, new_store.collections).describe() == [
            "expand: add_column solum_app.source__v1_1 (JSON)"]
        with n.RELEASE.bound(old_store):  # release N runs on the expanded schema
            add_app(n.RELEASE, P, "second")
        contracted = stores.open(n1.RELEASE, contracted=True)
        with pytest.raises(migrate.ContractRefusedError, match="online migrations"):
            migrate.contract(contracted.backend, contracted.collections)
        assert n1.MIGRATIONS.run(stores.open(n1.RELEASE)).exit_code == 0  # pins lifted
        done = migrate.contract(contracted.backend, contracted.collections).describe()
        assert sorted(line.split(" (")[0] for line in done) == [
            "contract: remove_column solum_app.private_repo",
            "contract: remove_column solum_app.source"]
        with n1.RELEASE.bound(contracted):
            app = n1.RELEASE.fetch(n1.App, P, app_id)["object"]
            assert app.source == n1.Source(url="https://git.example/shop.git", revision="v1",
                                           private=True)
            assert len(n1.RELEASE.page(n1.App, P)["items"]) == 2
    finally:
        stores.close()


def test_on_redis_the_migrated_records_are_read_by_the_contracted_release(
        redis_url: str) -> None:
    with open_stores(redis_url) as stores:
        with n.RELEASE.bound(stores.open(n.RELEASE)):
            add_pack(n.RELEASE, P)
            app_id = add_app(n.RELEASE, P)
        assert n1.MIGRATIONS.run(stores.open(n1.RELEASE)).exit_code == 0
        with n1.RELEASE.bound(stores.open(n1.RELEASE, contracted=True)):
            assert n1.RELEASE.fetch(n1.App, P, app_id)["object"].source.revision == "v1"
