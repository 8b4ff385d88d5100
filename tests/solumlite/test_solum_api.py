"""The HTTP API over real HTTP: uvicorn serving it on 127.0.0.1, httpx
calling it. Auth, project isolation, pagination, bad input, stale writes,
the workflow lifecycle, both releases on one store, and the API in front
of a conductor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from solum_support import RELEASES, Stores

from rollsafe.rpc import Conductor, InProcessTransport, RemoteIndirection
from solumlite import Release
from solumlite.api import TokenMap, create_api
from solumlite.api.server import ApiServer
from solumlite.releases import n, n1

TOKENS = {"token-acme-0001": "acme", "token-globex-01": "globex", "token-pager-001": "pager"}
ACME, GLOBEX, PAGER = (f"Bearer {token}" for token in TOKENS)


class Api:
    """One served release: its URL and a client per project."""

    def __init__(self, release: Release, server: ApiServer) -> None:
        self.release = release
        self.server = server
        self.acme = httpx.Client(base_url=server.url, headers={"Authorization": ACME})
        self.globex = httpx.Client(base_url=server.url, headers={"Authorization": GLOBEX})
        self.anonymous = httpx.Client(base_url=server.url)

    def close(self) -> None:
        for client in (self.acme, self.globex, self.anonymous):
            client.close()
        self.server.stop()


def serve(release: Release) -> ApiServer:
    return ApiServer(create_api(release, TokenMap(TOKENS))).start()


@pytest.fixture(scope="module", params=sorted(RELEASES))
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Api]:
    """A release's API, embedded on a SQLite store of its own."""
    release = RELEASES[request.param]
    stores = Stores(f"sqlite:///{tmp_path_factory.mktemp('api')}/api.db")
    stores.create_schema()
    release.bind(stores.open(release))
    served = Api(release, serve(release))
    yield served
    served.close()
    release.unbind()
    stores.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def app_body(pack: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": unique("shop"), "language_pack": pack, "run_cmd": "python app.py",
        "source": {"url": "https://git.example/shop.git", "revision": "v1", "private": True},
        "test_cmd": "pytest", "ports": [8080]}
    body.update(changes)
    return body


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def pack_and_app(client: httpx.Client) -> tuple[str, dict[str, Any]]:
    pack = unique("python")
    created(client.post("/v1/languagepacks", json={"name": pack, "base_image": "python:3"}))
    return pack, created(client.post("/v1/apps", json=app_body(pack)))


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "problems"} and body["message"]
    return body


# -- the service --------------------------------------------------------------------


def test_health_needs_no_token_and_names_the_release(api: Api) -> None:
    response = api.anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "release": api.release.name,
                               "versions": api.release.manifest}


def test_the_openapi_document_describes_the_resources_and_the_bearer_scheme(api: Api) -> None:
    doc = api.anonymous.get("/openapi.json").json()
    assert doc["info"]["version"] == api.release.name
    for path in ("/v1/apps", "/v1/apps/{app_id}", "/v1/apps/{app_id}/workflows",
                 "/v1/workflows/{workflow_id}/advance", "/v1/assemblies",
                 "/v1/languagepacks"):
        assert path in doc["paths"]
    schemes = doc["components"]["securitySchemes"]
    assert any(s.get("scheme", "").lower() == "bearer" for s in schemes.values())
    assert "AppIn" in doc["components"]["schemas"]


# -- auth and projects ---------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer not-a-token-at-all", "Basic dXNlcjpwdw==",
                                    "Bearer"])
def test_a_request_without_a_known_bearer_token_is_401(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = api.anonymous.get("/v1/apps", headers=headers)
    assert error_of(response, 401)["error"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


def test_another_projects_objects_are_404_as_if_they_did_not_exist(api: Api) -> None:
    _, app = pack_and_app(api.acme)
    run = created(api.acme.post(f"/v1/apps/{app['id']}/workflows"))
    before = api.acme.get(f"/v1/apps/{app['id']}").json()
    for path in (f"/v1/apps/{app['id']}", f"/v1/workflows/{run['workflow']['id']}",
                 f"/v1/assemblies/{run['assembly']['id']}"):
        assert error_of(api.globex.get(path), 404)["error"] == "not_found"
    assert api.globex.patch(f"/v1/apps/{app['id']}",
                            json={"revision": 1, "description": "mine"}).status_code == 404
    assert api.globex.post(f"/v1/workflows/{run['workflow']['id']}/advance").status_code == 404
    assert api.globex.post(f"/v1/apps/{app['id']}/workflows").status_code == 404
    assert api.globex.delete(f"/v1/apps/{app['id']}").status_code == 404
    assert app["id"] not in {a["id"] for a in _all(api.globex, "/v1/apps")}
    assert api.acme.get(f"/v1/apps/{app['id']}").json() == before  # untouched by globex


def test_pages_follow_the_cursor_to_the_end(api: Api) -> None:
    pager = httpx.Client(base_url=api.server.url, headers={"Authorization": PAGER})
    names = {f"pack-{i}" for i in range(5)}
    for name in sorted(names):
        created(pager.post("/v1/languagepacks", json={"name": name, "base_image": "x"}))
    seen, sizes, cursor = [], [], None
    while True:
        params: dict[str, Any] = {"limit": 2} if cursor is None else {"limit": 2,
                                                                      "cursor": cursor}
        page = pager.get("/v1/languagepacks", params=params).json()
        seen += [item["name"] for item in page["items"]]
        sizes.append(len(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    pager.close()
    assert sorted(seen) == sorted(names) and sizes[:2] == [2, 2]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten"])
def test_a_bad_page_size_is_422(api: Api, query: str) -> None:
    assert error_of(api.acme.get(f"/v1/apps?{query}"), 422)["problems"][0]["field"] == \
        "query.limit"


def test_a_tampered_cursor_is_400(api: Api) -> None:
    assert error_of(api.acme.get("/v1/apps?cursor=bm90LWEtY3Vyc29y"), 400)["error"] == \
        "bad_request"


# -- bad input ------------------------------------------------------------------------------


def test_malformed_json_is_400(api: Api) -> None:
    response = api.acme.post("/v1/apps", content=b'{"name": "shop",',
                             headers={"Content-Type": "application/json"})
    assert error_of(response, 400)["error"] == "malformed_json"


@pytest.mark.parametrize(("change", "field"), [
    ({"colour": "blue"}, "body.colour"),                       # unknown field
    ({"name": 42}, "body.name"),                               # wrong type
    ({"ports": ["8080"]}, "body.ports.0"),                     # no coercion
    ({"ports": [0]}, "body.ports.0"),                          # out of range
    ({"run_cmd": None}, "body.run_cmd"),
    ({"name": "x" * 64}, "body.name"),                         # too long
    ({"name": "Shop_1"}, "body.name"),                         # not a DNS label
    ({"description": "d" * 1001}, "body.description"),
    ({"source": {"url": "https://git.example/" + "a" * 2000}}, "body.source.url"),
    ({"source": {"url": "ftp://git.example/a.git"}}, "body.source.url"),
    ({"source": {"url": "https://git.example/a.git", "private": "yes"}},
     "body.source.private"),
    ({"source": {"url": "https://git.example/a.git", "token": "s3cret"}},
     "body.source.token"),
])
def test_a_refused_field_is_422_naming_it(api: Api, change: dict[str, Any],
                                          field: str) -> None:
    body = error_of(api.acme.post("/v1/apps", json=app_body("python", **change)), 422)
    assert body["error"] == "invalid_request"
    assert field in [problem["field"] for problem in body["problems"]]


def test_a_body_that_is_not_an_object_is_422(api: Api) -> None:
    assert api.acme.post("/v1/apps", json=["shop"]).status_code == 422


def test_a_malformed_id_in_the_path_is_422(api: Api) -> None:
    assert error_of(api.acme.get("/v1/apps/not-an-id"), 422)["problems"][0]["field"] == \
        "path.app_id"


def test_an_oversized_body_is_413_whether_its_length_is_announced_or_not(api: Api) -> None:
    big = b'{"name": "' + b"x" * 70_000 + b'"}'
    announced = api.acme.post("/v1/apps", content=big,
                              headers={"Content-Type": "application/json"})
    assert error_of(announced, 413)["error"] == "too_large"
    chunked = api.acme.post("/v1/apps", content=iter([big[:40_000], big[40_000:]]),
                            headers={"Content-Type": "application/json"})
    assert error_of(chunked, 413)["error"] == "too_large"


def test_unknown_routes_and_methods_answer_in_the_error_shape(api: Api) -> None:
    assert error_of(api.acme.get("/v1/nothing"), 404)["error"] == "not_found"
    assert error_of(api.acme.put("/v1/apps"), 405)["error"] == "method_not_allowed"


def test_an_app_needs_an_existing_language_pack(api: Api) -> None:
    response = api.acme.post("/v1/apps", json=app_body(unique("ruby")))
    assert error_of(response, 422)["error"] == "unknown_language_pack"


def test_a_language_pack_name_is_taken_once(api: Api) -> None:
    name = unique("go")
    created(api.acme.post("/v1/languagepacks", json={"name": name, "base_image": "golang"}))
    again = api.acme.post("/v1/languagepacks", json={"name": name, "base_image": "golang"})
    assert error_of(again, 409)["error"] == "name_taken"


# -- writes ---------------------------------------------------------------------------------


def test_a_stale_write_is_409_and_changes_nothing(api: Api) -> None:
    _, app = pack_and_app(api.acme)
    path = f"/v1/apps/{app['id']}"
    first = api.acme.patch(path, json={"revision": 1, "description": "first",
                                       "source": {"url": "git@git.example:shop.git"}})
    assert first.status_code == 200, first.text
    assert first.json()["revision"] == 2
    assert first.json()["source"] == {"url": "git@git.example:shop.git", "revision": None,
                                      "private": False}
    stale = api.acme.patch(path, json={"revision": 1, "description": "second"})
    assert error_of(stale, 409)["error"] == "stale_revision"
    assert api.acme.get(path).json()["description"] == "first"


def test_a_workflow_runs_through_http_to_ready(api: Api) -> None:
    _, app = pack_and_app(api.acme)
    assert app["source"] == {"url": "https://git.example/shop.git", "revision": "v1",
                             "private": True}
    run = created(api.acme.post(f"/v1/apps/{app['id']}/workflows"))
    workflow_id = run["workflow"]["id"]
    assert run["assembly"]["status"] == "queued"
    advance = f"/v1/workflows/{workflow_id}/advance"
    statuses = []
    while run["workflow"]["status"] in ("queued", "running"):
        response = api.acme.post(advance)
        assert response.status_code == 200, response.text
        run = response.json()
        statuses.append(run["assembly"]["status"])
    middle = ["verifying"] if api.release.key == "n1" else []
    assert statuses == ["unit_testing", "building", "deploying", *middle, "ready"]
    assert error_of(api.acme.post(advance), 409)["error"] == "illegal_transition"
    by_app = {"app_id": app["id"]}
    assert len(api.acme.get("/v1/assemblies", params=by_app).json()["items"]) == 1
    kinds = {c["kind"] for c in api.acme.get("/v1/components", params=by_app).json()["items"]}
    assert kinds == {"artifact", "stack"}
    units = api.acme.get("/v1/deploymentunits", params=by_app).json()["items"]
    assert [u["status"] for u in units] == ["deployed"]
    assert api.acme.get(f"/v1/apps/{app['id']}").json()["status"] == "deployed"


def test_advancing_from_a_status_already_left_is_409(api: Api) -> None:
    _, app = pack_and_app(api.acme)
    run = created(api.acme.post(f"/v1/apps/{app['id']}/workflows"))
    advance = f"/v1/workflows/{run['workflow']['id']}/advance"
    assert api.acme.post(advance, json={"from_status": "queued"}).status_code == 200
    late = api.acme.post(advance, json={"from_status": "queued", "succeeded": True})
    assert error_of(late, 409)["error"] == "illegal_transition"
    assert api.acme.post(advance, json={"succeeded": "no"}).status_code == 422


def test_deleting_an_app_deletes_what_is_under_it(api: Api) -> None:
    pack, app = pack_and_app(api.acme)
    created(api.acme.post(f"/v1/apps/{app['id']}/workflows"))
    packs = {p["name"]: p["id"] for p in _all(api.acme, "/v1/languagepacks")}
    assert error_of(api.acme.delete(f"/v1/languagepacks/{packs[pack]}"), 409)["error"] == \
        "in_use"
    assert api.acme.delete(f"/v1/apps/{app['id']}").status_code == 204
    assert api.acme.get(f"/v1/apps/{app['id']}").status_code == 404
    assert api.acme.get("/v1/workflows", params={"app_id": app["id"]}).json()["items"] == []
    assert api.acme.delete(f"/v1/languagepacks/{packs[pack]}").status_code == 204


def _all(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        page = client.get(path, params={"limit": 100, **({"cursor": cursor} if cursor
                                                          else {})}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


# -- both releases, and a conductor behind the API -----------------------------------------


def test_both_releases_serve_the_same_objects_from_one_store(tmp_path: Path) -> None:
    stores = Stores(f"sqlite:///{tmp_path}/shared.db")
    stores.create_schema()
    pins = n1.HISTORY.manifest("N")  # release N still serves: N+1 writes what N reads
    n.RELEASE.bind(stores.open(n.RELEASE))
    n1.RELEASE.bind(stores.open(n1.RELEASE, storage_versions=pins))
    old, new = Api(n.RELEASE, serve(n.RELEASE)), Api(n1.RELEASE, serve(n1.RELEASE))
    try:
        _, app = pack_and_app(old.acme)
        assert new.acme.get(f"/v1/apps/{app['id']}").json() == app
        changed = new.acme.patch(f"/v1/apps/{app['id']}",
                                 json={"revision": 1, "source": {
                                     "url": "https://git.example/x.git", "revision": "v9"}})
        assert changed.status_code == 200, changed.text
        assert old.acme.get(f"/v1/apps/{app['id']}").json() == changed.json()
    finally:
        old.close()
        new.close()
        n.RELEASE.unbind()
        n1.RELEASE.unbind()
        stores.close()


@pytest.fixture
def n_behind_a_conductor(tmp_path: Path) -> Iterator[None]:
    """A conductor of release N+1 on a SQLite store, writing what N reads,
    and release N's flows sent to it: N's APIs have no store."""
    stores = Stores(f"sqlite:///{tmp_path}/conductor.db")
    stores.create_schema()
    store = stores.open(n1.RELEASE, storage_versions=n1.HISTORY.manifest("N"))
    n1.RELEASE.bind(store)
    transport = InProcessTransport()
    conductor = Conductor(transport, n1.REGISTRY, store=store, purge_interval=None).start()
    n.REGISTRY.indirection = RemoteIndirection(transport, n.REGISTRY, timeout=10)
    try:
        yield
    finally:
        n.REGISTRY.indirection = None
        conductor.stop()
        transport.close()
        n1.RELEASE.unbind()
        stores.close()


@pytest.mark.usefixtures("n_behind_a_conductor")
def test_an_api_without_store_access_serves_through_the_conductor() -> None:
    front = Api(n.RELEASE, serve(n.RELEASE))  # release N's API, nothing bound to it
    try:
        _, app = pack_and_app(front.acme)
        run = created(front.acme.post(f"/v1/apps/{app['id']}/workflows"))
        assert run["workflow"]["steps"] == ["unittest", "build", "deploy"]
        assert front.acme.post(f"/v1/workflows/{run['workflow']['id']}/advance").json()[
            "assembly"]["status"] == "unit_testing"
        assert error_of(front.globex.get(f"/v1/apps/{app['id']}"), 404)["error"] == \
            "not_found"
        stale = front.acme.patch(f"/v1/apps/{app['id']}",
                                 json={"revision": 1, "description": "late"})
        assert error_of(stale, 409)["error"] == "stale_revision"
    finally:
        front.close()


# -- idempotency keys -------------------------------------------------------------------


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def apps_named(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        page = client.get("/v1/apps", params={"limit": 100, **({"cursor": cursor} if cursor
                                                               else {})}).json()
        found += [app for app in page["items"] if app["name"] == name]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def test_a_create_sent_again_with_its_key_is_done_once(api: Api) -> None:
    pack, _ = pack_and_app(api.acme)
    key = uuid.uuid4().hex
    body = app_body(pack)
    first = created(api.acme.post("/v1/apps", json=body, headers=keyed(key)))
    # The answer was lost, say: the repeat (even with another body) gets the first answer.
    again = created(api.acme.post("/v1/apps", json={**body, "description": "other"},
                                  headers=keyed(key)))
    assert again == first
    assert len(apps_named(api.acme, body["name"])) == 1
    other = created(api.acme.post("/v1/apps", json=app_body(pack), headers=keyed(uuid4hex())))
    assert other["id"] != first["id"]


def uuid4hex() -> str:
    return uuid.uuid4().hex


def test_a_workflow_start_and_a_change_sent_again_are_done_once(api: Api) -> None:
    _, app = pack_and_app(api.acme)
    start = keyed(uuid4hex())
    run = created(api.acme.post(f"/v1/apps/{app['id']}/workflows", headers=start))
    assert created(api.acme.post(f"/v1/apps/{app['id']}/workflows", headers=start)) == run
    listed = api.acme.get("/v1/workflows", params={"app_id": app["id"]}).json()["items"]
    assert [w["id"] for w in listed] == [run["workflow"]["id"]]

    change = keyed(uuid4hex())
    body = {"revision": app["revision"] + 1, "description": "once"}  # the start wrote the app
    first = api.acme.patch(f"/v1/apps/{app['id']}", json=body, headers=change)
    assert first.status_code == 200, first.text
    # Without the key the repeat would be a stale write (409); with it, the first answer.
    again = api.acme.patch(f"/v1/apps/{app['id']}", json=body, headers=change)
    assert again.status_code == 200 and again.json() == first.json()
    assert api.acme.get(f"/v1/apps/{app['id']}").json()["revision"] == first.json()["revision"]
    assert api.acme.patch(f"/v1/apps/{app['id']}", json=body).status_code == 409


def test_a_delete_sent_again_with_its_key_answers_as_the_first(api: Api) -> None:
    _, app = pack_and_app(api.acme)
    key = keyed(uuid4hex())
    assert api.acme.delete(f"/v1/apps/{app['id']}", headers=key).status_code == 204
    assert api.acme.delete(f"/v1/apps/{app['id']}", headers=key).status_code == 204
    assert error_of(api.acme.delete(f"/v1/apps/{app['id']}"), 404)["error"] == "not_found"


def test_a_key_is_scoped_to_its_project_and_route(api: Api) -> None:
    key = keyed(uuid4hex())
    pack = unique("python")
    mine = created(api.acme.post("/v1/languagepacks", json={"name": pack, "base_image": "x"},
                                 headers=key))
    theirs = created(api.globex.post("/v1/languagepacks",
                                     json={"name": pack, "base_image": "x"}, headers=key))
    assert theirs["id"] != mine["id"]
    app = created(api.acme.post("/v1/apps", json=app_body(pack), headers=key))
    assert app["name"] != mine["name"] and app["language_pack"] == pack


@pytest.mark.parametrize("bad", ["", "a key", "k" * 256, "caf\u00e9"])
def test_a_malformed_key_is_422_and_changes_nothing(api: Api, bad: str) -> None:
    pack, _ = pack_and_app(api.acme)
    body = app_body(pack)
    response = api.acme.post("/v1/apps", json=body, headers={"Idempotency-Key": bad.encode()})
    problem = error_of(response, 422)
    assert problem["error"] == "invalid_request" and "Idempotency-Key" in problem["message"]
    assert apps_named(api.acme, body["name"]) == []


def test_a_key_sent_twice_at_once_creates_one_app(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    pack, _ = pack_and_app(api.acme)
    key, body = keyed(uuid4hex()), app_body(pack)

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=api.server.url, headers={"Authorization": ACME}) as own:
            return own.post("/v1/apps", json=body, headers=key)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(4)))
    assert {created(a)["id"] for a in answers} == {answers[0].json()["id"]}
    assert len(apps_named(api.acme, body["name"])) == 1


@pytest.mark.usefixtures("n_behind_a_conductor")
def test_a_repeat_through_another_api_instance_reaches_the_first_answer() -> None:
    # Two instances of release N's API with no store: every flow is a call to the conductor.
    one, two = Api(n.RELEASE, serve(n.RELEASE)), Api(n.RELEASE, serve(n.RELEASE))
    try:
        pack, _ = pack_and_app(one.acme)
        key, body = keyed(uuid4hex()), app_body(pack)
        first = created(one.acme.post("/v1/apps", json=body, headers=key))
        assert created(two.acme.post("/v1/apps", json=body, headers=key)) == first
        assert len(apps_named(two.acme, body["name"])) == 1
        start = keyed(uuid4hex())
        run = created(one.acme.post(f"/v1/apps/{first['id']}/workflows", headers=start))
        assert created(two.acme.post(f"/v1/apps/{first['id']}/workflows",
                                     headers=start)) == run
    finally:
        one.close()
        two.close()
