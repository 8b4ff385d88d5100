"""The coarse flows of both releases on every backend: each all-or-nothing,
scoped to one project, refusing what the domain does not allow."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from solum_support import BACKENDS, RELEASES, add_app, add_pack, backend_url, new_app, open_stores

from rollsafe import NotFoundError, ValidationError
from rollsafe.storage import Store
from solumlite import Release
from solumlite.domain import SourceSpec, language_pack_id
from solumlite.errors import (
    IllegalTransitionError,
    LanguagePackInUseError,
    NameTakenError,
    StaleRevisionError,
    UnknownLanguagePackError,
)

P, Q = "acme", "globex"


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request.param, request, tmp_path)


@pytest.fixture(params=sorted(RELEASES))
def release(request: pytest.FixtureRequest, url: str) -> Iterator[Release]:
    """A release bound to a fresh store on the test's backend."""
    chosen = RELEASES[request.param]
    with open_stores(url) as stores, chosen.bound(stores.open(chosen)):
        yield chosen


def count(release: Release, cls: type, project: str = P) -> int:
    return len(release.page(cls, project, limit=100)["items"])


def everything_under(release: Release, project: str = P) -> dict[str, int]:
    return {name: count(release, cls, project) for name, cls in release.classes.items()}


def test_create_app_needs_its_language_pack(release: Release) -> None:
    with pytest.raises(UnknownLanguagePackError, match="no language pack 'python'"):
        add_app(release, P)
    assert count(release, release.app) == 0
    add_pack(release, P)
    app_id = add_app(release, P)
    stored = release.fetch(release.app, P, app_id)
    assert stored["revision"] == 1 and stored["object"].status == "registered"
    assert release.app_source(stored["object"]) == SourceSpec(
        "https://git.example/shop.git", "v1", True)


def test_an_app_is_checked_beyond_its_field_types(release: Release) -> None:
    add_pack(release, P)
    bad_url = new_app(release, P, source=SourceSpec("ftp://x/y.git"))
    with pytest.raises(ValidationError, match=r"App\.source\.url"):
        release.create_app(P, bad_url)
    bad_name = new_app(release, P, name="Not_A_Label")
    with pytest.raises(ValidationError, match=r"App\.name"):
        release.create_app(P, bad_name)
    with pytest.raises(ValidationError, match="caller's project"):
        release.create_app(Q, new_app(release, P))
    assert count(release, release.app) == 0


def test_a_language_pack_name_is_taken_once_per_project(release: Release) -> None:
    add_pack(release, P)
    with pytest.raises(NameTakenError):
        add_pack(release, P)
    add_pack(release, Q)  # another project may use the name
    assert count(release, release.language_pack, P) == 1


def test_starting_a_workflow_creates_its_workflow_assembly_and_unit(release: Release) -> None:
    add_pack(release, P)
    app_id = add_app(release, P)
    run = release.start_workflow(P, app_id)
    workflow, assembly = run["workflow"]["object"], run["assembly"]["object"]
    assert workflow.status == "queued" and assembly.status == "queued"
    assert workflow.assembly_id == assembly.id and assembly.workflow_id == workflow.id
    unit = release.fetch(release.deployment_unit, P, workflow.unit_id)["object"]
    assert unit.status == "queued" and unit.app_id == app_id
    assert release.fetch(release.app, P, app_id)["object"].status == "deploying"
    expected = ["unittest", "build", "deploy"] + (["verify"] if release.key == "n1" else [])
    assert release.workflow_steps(workflow) == expected


def test_a_workflow_that_cannot_start_leaves_nothing_behind(release: Release) -> None:
    pack_id = add_pack(release, P)
    app_id = add_app(release, P)
    store: Store = release.store
    store.delete(store.get(release.language_pack, pack_id))  # gone behind the app's back
    with pytest.raises(UnknownLanguagePackError):
        release.start_workflow(P, app_id)
    assert everything_under(release) == {"LanguagePack": 0, "App": 1, "Workflow": 0,
                                         "Assembly": 0, "Component": 0, "DeploymentUnit": 0}
    app = release.fetch(release.app, P, app_id)
    assert app["revision"] == 1 and app["object"].status == "registered"


def advance_to_end(release: Release, workflow_id: uuid.UUID) -> list[str]:
    seen = []
    while True:
        run = release.advance_workflow(P, workflow_id)
        seen.append(run["assembly"]["object"].status)
        if run["workflow"]["object"].status != "running":
            return seen


def test_a_workflow_advances_through_its_steps_to_ready(release: Release) -> None:
    add_pack(release, P)
    app_id = add_app(release, P)
    workflow = release.start_workflow(P, app_id)["workflow"]["object"]
    seen = advance_to_end(release, workflow.id)
    middle = ["verifying"] if release.key == "n1" else []
    assert seen == ["unit_testing", "building", "deploying", *middle, "ready"]
    assembly = release.fetch(release.assembly, P, workflow.assembly_id)["object"]
    assert assembly.url is not None and assembly.name in assembly.url
    unit = release.fetch(release.deployment_unit, P, workflow.unit_id)["object"]
    assert unit.status == "deployed" and unit.image is not None
    kinds = sorted(s["object"].kind for s in
                   release.page(release.component, P, app_id=app_id)["items"])
    assert kinds == ["artifact", "stack"]
    assert release.fetch(release.app, P, app_id)["object"].status == "deployed"
    with pytest.raises(IllegalTransitionError, match="has finished"):
        release.advance_workflow(P, workflow.id)


def test_a_failed_build_fails_the_workflow_unit_and_app(release: Release) -> None:
    add_pack(release, P)
    app_id = add_app(release, P, test_cmd=None)
    workflow = release.start_workflow(P, app_id)["workflow"]["object"]
    assert release.advance_workflow(P, workflow.id)["assembly"]["object"].status == "building"
    run = release.advance_workflow(P, workflow.id, succeeded=False)
    assert run["assembly"]["object"].status == "build_failed"
    assert run["workflow"]["object"].status == "failed"
    assert release.fetch(release.deployment_unit, P, workflow.unit_id)["object"].status == \
        "failed"
    assert release.fetch(release.app, P, app_id)["object"].status == "failed"
    assert count(release, release.component) == 0
    with pytest.raises(IllegalTransitionError):
        release.advance_workflow(P, workflow.id, succeeded=True)


def test_advancing_from_a_status_the_assembly_left_changes_nothing(release: Release) -> None:
    add_pack(release, P)
    workflow = release.start_workflow(P, add_app(release, P))["workflow"]["object"]
    release.advance_workflow(P, workflow.id, from_status="queued")
    with pytest.raises(IllegalTransitionError, match="cannot advance from queued"):
        release.advance_workflow(P, workflow.id, from_status="queued")
    stored = release.fetch(release.assembly, P, workflow.assembly_id)
    assert stored["object"].status == "unit_testing" and stored["revision"] == 2


def test_a_stale_revision_is_refused_and_changes_nothing(release: Release) -> None:
    add_pack(release, P)
    app_id = add_app(release, P)
    changed = release.modify_app(P, app_id, 1, {"description": "v2", "ports": [80, 443]})
    assert changed["revision"] == 2 and changed["object"].ports == [80, 443]
    with pytest.raises(StaleRevisionError, match="at revision 2, not 1"):
        release.modify_app(P, app_id, 1, {"description": "lost"})
    assert release.fetch(release.app, P, app_id)["object"].description == "v2"
    source = {"url": "git@git.example:shop.git", "revision": None, "private": False}
    again = release.modify_app(P, app_id, 2, {"source": source})
    assert release.app_source(again["object"]) == SourceSpec("git@git.example:shop.git")
    with pytest.raises(ValidationError, match="cannot change name"):
        release.modify_app(P, app_id, 3, {"name": "other"})
    with pytest.raises(UnknownLanguagePackError):
        release.modify_app(P, app_id, 3, {"language_pack": "ruby"})
    assert release.fetch(release.app, P, app_id)["revision"] == 3


def test_of_two_writers_of_one_revision_exactly_one_wins(release: Release) -> None:
    add_pack(release, P)
    app_id = add_app(release, P)
    gate = threading.Barrier(2)
    outcomes: list[str] = []

    def write(text: str) -> None:
        gate.wait()
        try:
            release.modify_app(P, app_id, 1, {"description": text})
            outcomes.append("ok")
        except StaleRevisionError:
            outcomes.append("stale")

    threads = [threading.Thread(target=write, args=(t,)) for t in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "stale"]
    assert release.fetch(release.app, P, app_id)["revision"] == 2


def test_deleting_an_app_deletes_everything_under_it_and_nothing_else(
        release: Release) -> None:
    pack_id = add_pack(release, P)
    doomed, kept = add_app(release, P, "doomed"), add_app(release, P, "kept")
    for app_id in (doomed, kept):
        workflow = release.start_workflow(P, app_id)["workflow"]["object"]
        advance_to_end(release, workflow.id)
    release.start_workflow(P, doomed)
    with pytest.raises(LanguagePackInUseError):
        release.delete_pack(P, pack_id)
    assert release.delete_app(P, doomed) == 1 + 2 + 2 + 2 + 2  # app, 2 of each kind
    assert everything_under(release) == {"LanguagePack": 1, "App": 1, "Workflow": 1,
                                         "Assembly": 1, "Component": 2, "DeploymentUnit": 1}
    with pytest.raises(NotFoundError):
        release.fetch(release.app, P, doomed)
    release.delete_app(P, kept)
    release.delete_pack(P, pack_id)
    assert set(everything_under(release).values()) == {0}


def test_a_project_never_sees_another_projects_objects(release: Release) -> None:
    add_pack(release, P)
    app_id = add_app(release, P)
    workflow = release.start_workflow(P, app_id)["workflow"]["object"]
    for cls, key in ((release.app, app_id), (release.workflow, workflow.id),
                     (release.assembly, workflow.assembly_id),
                     (release.language_pack, language_pack_id(P, "python"))):
        with pytest.raises(NotFoundError):
            release.fetch(cls, Q, key)
    assert set(everything_under(release, Q).values()) == {0}
    with pytest.raises(NotFoundError):
        release.advance_workflow(Q, workflow.id)
    with pytest.raises(NotFoundError):
        release.modify_app(Q, app_id, 1, {"description": "mine now"})
    with pytest.raises(NotFoundError):
        release.delete_app(Q, app_id)
    assert count(release, release.app) == 1


def test_pages_visit_every_object_once(release: Release) -> None:
    add_pack(release, P)
    made = {add_app(release, P, f"app-{i}") for i in range(7)}
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        found = release.page(release.app, P, limit=3, cursor=cursor)
        seen += [s["object"].id for s in found["items"]]
        cursor = found["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
