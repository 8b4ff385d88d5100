"""``UnitOfWork.update_many`` on every backend: many updates in few round
trips (one statement per set of written columns on SQL), all of them or,
when one is stale or missing, an error and a unit that cannot commit."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable

import pytest

from rollsafe.errors import ConflictError, NotFoundError, StorageError
from rollsafe.storage import Store
from rollsafe.storage.store import revision_of

from .domain import APP_CURRENT, APP_OLDEST, App, Build, new_app

OpenStore = Callable[..., Store]


def fill(store: Store, count: int) -> list[uuid.UUID]:
    with store.unit_of_work() as uow:
        return [uow.create(new_app(name=f"app-{i}", counter=i)).id for i in range(count)]


def test_every_update_is_written_with_its_own_values(store: Store) -> None:
    keys = fill(store, 6)
    apps = [store.get(App, key) for key in keys]
    for app in apps[:4]:
        app.counter += 100
    apps[1].note = None  # another set of columns in the same call
    apps[2].status = "stopped"

    with store.unit_of_work() as uow:
        assert uow.update_many(apps) == apps

    assert [revision_of(a) for a in apps] == [2, 2, 2, 2, 1, 1]  # unchanged ones: not written
    fresh = [store.get(App, key) for key in keys]
    assert [a.counter for a in fresh] == [100, 101, 102, 103, 4, 5]
    assert (fresh[1].note, fresh[2].status, fresh[0].status) == (None, "stopped", "running")
    assert [revision_of(a) for a in fresh] == [2, 2, 2, 2, 1, 1]


def test_records_of_an_older_version_are_written_whole_at_the_storage_version(
        store: Store, open_store: OpenStore) -> None:
    keys = fill(open_store(storage_versions={"App": APP_OLDEST}), 3)
    apps = [store.get(App, key) for key in keys]
    for app in apps:
        app.counter = -1
    with store.unit_of_work() as uow:
        uow.update_many(apps)
    fresh = [store.get(App, key) for key in keys]
    assert {(a._rs_meta[1], a.counter, a.tier) for a in fresh} == {(APP_CURRENT, -1, "legacy")}


@pytest.mark.parametrize("error", [ConflictError, NotFoundError])
def test_one_stale_or_missing_record_writes_nothing(store: Store, error: type) -> None:
    keys = fill(store, 4)
    apps = [store.get(App, key) for key in keys]
    if error is ConflictError:
        other = store.get(App, keys[2])
        other.note = "written meanwhile"
        store.update(other)
    else:
        store.delete(store.get(App, keys[2]))
    for app in apps:
        app.counter += 10

    with pytest.raises(StorageError), store.unit_of_work() as uow:
        uow.update_many(apps)

    assert [store.get(App, k).counter for k in keys if k != keys[2]] == [0, 1, 3]
    # The objects kept their changes and revisions: one by one, the others write.
    with store.unit_of_work() as uow:
        for app in apps[:2] + apps[3:]:
            uow.update(app)
    assert [store.get(App, k).counter for k in keys if k != keys[2]] == [10, 11, 13]


def test_a_unit_that_swallowed_the_error_cannot_commit(store: Store) -> None:
    keys = fill(store, 3)
    apps = [store.get(App, key) for key in keys]
    other = store.get(App, keys[0])
    other.note = "written meanwhile"
    store.update(other)
    for app in apps:
        app.counter += 10

    # Carrying on after the error would commit whatever part was applied.
    with pytest.raises(StorageError, match="cannot commit"), store.unit_of_work() as uow, \
            contextlib.suppress(ConflictError):
        uow.update_many(apps)

    assert [store.get(App, k).counter for k in keys] == [0, 1, 2]


def test_objects_of_several_classes_in_one_call(store: Store) -> None:
    app = store.create(new_app())
    build = store.create(Build(number=7, app_id=app.id))
    app.counter = 99
    build.log = "done"
    with store.unit_of_work() as uow:
        uow.update_many([app, build])
    assert (store.get(App, app.id).counter, store.get(Build, 7).log) == (99, "done")
