"""The distributed setup: a service without store access calls the
conductor, of the same release or of the other one, and the flows run
there in the call's unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from solum_support import (
    SQL_BACKENDS,
    Stores,
    add_app,
    add_pack,
    backend_url,
    new_app,
    open_stores,
)

from rollsafe.rpc import (
    Conductor,
    InProcessTransport,
    RemoteError,
    RemoteIndirection,
    same_request_id,
)
from rollsafe.storage.nostore import StoreAccessError
from solumlite import Release
from solumlite.domain import SourceSpec
from solumlite.errors import ReleaseNotBoundError
from solumlite.releases import n, n1

P = "acme"
N_PINS = n1.HISTORY.manifest("N")
SOURCE = SourceSpec("https://git.example/shop.git", "v2", True)


class Setup:
    """A conductor of one release (with the store) and a caller of another."""

    def __init__(self, stores: Stores, conductor: Release, caller: Release) -> None:
        self.stores = stores
        # A release-N service is live, so the fleet pins every write to N.
        self.store = stores.open(conductor, storage_versions=N_PINS)
        self.transport = InProcessTransport()
        self.conductor_release, self.caller = conductor, caller
        conductor.bind(self.store)
        self.conductor = Conductor(self.transport, conductor.registry, store=self.store,
                                   purge_interval=None).start()
        indirection = RemoteIndirection(self.transport, caller.registry, timeout=10)
        indirection.serializer.target = lambda: N_PINS  # what the fleet's pins would say
        caller.registry.indirection = indirection

    def close(self) -> None:
        self.caller.registry.indirection = None
        self.conductor_release.unbind()
        self.conductor.stop()
        self.transport.close()


@pytest.fixture(params=SQL_BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    with open_stores(backend_url(request.param, request, tmp_path)) as opened:
        yield opened


@pytest.fixture
def n_calls_n1(stores: Stores) -> Iterator[Setup]:
    setup = Setup(stores, conductor=n1.RELEASE, caller=n.RELEASE)
    yield setup
    setup.close()


def test_release_n_runs_its_flows_on_a_release_n1_conductor(n_calls_n1: Setup) -> None:
    add_pack(n.RELEASE, P)
    stored = n.RELEASE.create_app(P, new_app(n.RELEASE, P, source=SOURCE))
    app = stored["object"]
    assert isinstance(app, n.App) and app.source == "https://git.example/shop.git#v2"
    run = n.RELEASE.start_workflow(P, app.id)
    assert isinstance(run["workflow"]["object"], n.Workflow)
    assert run["workflow"]["object"].actions == ["unittest", "build", "deploy"]
    statuses = []
    while run["workflow"]["object"].status in ("queued", "running"):
        run = n.RELEASE.advance_workflow(P, run["workflow"]["object"].id)
        statuses.append(run["assembly"]["object"].status)
    assert statuses == ["unit_testing", "building", "deploying", "ready"]  # pinned: no verify
    # The conductor stored it at the versions release N reads.
    stored_app = n_calls_n1.stores.open(n.RELEASE).get(n.App, app.id)
    assert stored_app.status == "deployed" and stored_app.private_repo is True


def test_flow_errors_reach_the_caller_by_name(n_calls_n1: Setup) -> None:
    add_pack(n.RELEASE, P)
    app_id = add_app(n.RELEASE, P)
    with pytest.raises(RemoteError) as info:
        n.RELEASE.modify_app(P, app_id, 7, {"description": "stale"})
    assert info.value.exc_type == "StaleRevisionError"
    with pytest.raises(RemoteError) as info:
        n.RELEASE.fetch(n.App, "globex", app_id)
    assert info.value.exc_type == "NotFoundError"


def test_a_call_sent_again_with_its_request_id_runs_once(n_calls_n1: Setup) -> None:
    add_pack(n.RELEASE, P)
    app_id = add_app(n.RELEASE, P)
    request_id = uuid.uuid4().hex  # request records outlive the test on PostgreSQL
    with same_request_id(request_id):
        first = n.RELEASE.start_workflow(P, app_id)
    with same_request_id(request_id):
        again = n.RELEASE.start_workflow(P, app_id)
    assert again["workflow"]["object"].id == first["workflow"]["object"].id
    assert len(n.RELEASE.page(n.Workflow, P)["items"]) == 1


def test_release_n1_runs_its_flows_on_a_release_n_conductor(stores: Stores) -> None:
    setup = Setup(stores, conductor=n.RELEASE, caller=n1.RELEASE)
    try:
        add_pack(n1.RELEASE, P)
        stored = n1.RELEASE.create_app(P, new_app(n1.RELEASE, P, source=SOURCE))
        assert isinstance(stored["object"], n1.App)
        assert stored["object"].source == n1.Source(url="https://git.example/shop.git",
                                                     revision="v2", private=True)
        run = n1.RELEASE.start_workflow(P, stored["object"].id)
        assert run["workflow"]["object"].steps == ["unittest", "build", "deploy"]
    finally:
        setup.close()


def test_a_service_without_store_access_cannot_run_a_flow_itself(tmp_path: Path) -> None:
    with pytest.raises(ReleaseNotBoundError, match="has no store in this process"):
        n.RELEASE.fetch(n.App, P, "00000000-0000-0000-0000-000000000000")
    with n.RELEASE.bound(n.RELEASE.open_store("none://")), \
            pytest.raises(StoreAccessError, match="no store access"):
        n.RELEASE.fetch(n.App, P, "00000000-0000-0000-0000-000000000000")

