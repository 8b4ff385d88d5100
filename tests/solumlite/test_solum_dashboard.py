"""The operator dashboard: its JSON status over real HTTP (operator token
only, rollsafe's fleet status unchanged, from the store or from the
conductor), and its page rendered by Debian's headless Chromium.

The fleet: a release-N API and a release-N+1 conductor recorded in a
SQLite store holding apps written by release N. While the N service is
live the pins hold every object at N, so the online migrations have
nothing to move yet; once it leaves, the pins rise and the old records are
left to migrate.

Chromium comes from ``ROLLSAFE_TEST_CHROMIUM`` (scripts/test installs it,
``scripts/servers browser``) or the PATH; without it the browser tests
skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from solum_support import Stores, add_app, add_pack

from conftest import running_in_ci
from rollsafe.rpc import InProcessTransport
from rollsafe.rpc.fleet import Fleet
from rollsafe.upgrade.status import fleet_status
from solumlite.api import TokenMap, create_api
from solumlite.api.server import ApiServer
from solumlite.releases import n, n1
from solumlite.status import ReleaseStatus, RemoteStatus, serve_status

TOKENS = {"token-acme-0001": "acme"}
PROJECT_TOKEN = "token-acme-0001"
OPERATOR = "operator-token-0001"
API_ID, CONDUCTOR_ID = "solumlite-api@host-a", "solumlite-conductor@host-b"
MIGRATIONS = ["app-source-object", "workflow-steps", "assembly-status"]


class FleetSetup:
    """A store after expand, with release N's records, and the fleet in it."""

    def __init__(self, stores: Stores) -> None:
        self.store = stores.open(n1.RELEASE)
        with n.RELEASE.bound(stores.open(n.RELEASE)):
            add_pack(n.RELEASE, "acme")
            app_id = add_app(n.RELEASE, "acme", "shop")
            add_app(n.RELEASE, "acme", "blog")
            n.RELEASE.start_workflow("acme", app_id)
        self.fleet: Fleet = n1.SERVICE.fleet(self.store)
        self.api = self.fleet.join("solumlite-api", "host-a", "N", n.RELEASE.manifest)
        self.conductor = self.fleet.join("solumlite-conductor", "host-b", "N+1",
                                         n1.RELEASE.manifest)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[FleetSetup]:
    stores = Stores(f"sqlite:///{tmp_path}/solum.db")
    try:
        stores.create_schema()
        yield FleetSetup(stores)
    finally:
        stores.close()


@pytest.fixture
def served(setup: FleetSetup) -> Iterator[ApiServer]:
    """Release N+1's API, embedded on the setup's store, with the dashboard."""
    with n1.RELEASE.bound(setup.store):
        server = ApiServer(create_api(n1.RELEASE, TokenMap(TOKENS),
                                      operator_token=OPERATOR)).start()
        try:
            yield server
        finally:
            server.stop()


def get_status(server: ApiServer, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{server.url}/dashboard/status", headers=headers, timeout=10)


# --- the JSON status over HTTP ---------------------------------------------------------

def test_the_status_needs_the_operator_token_and_refuses_a_projects(served: ApiServer
                                                                    ) -> None:
    for token in (None, "not-a-known-token"):
        response = get_status(served, token)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    refused = get_status(served, PROJECT_TOKEN)
    assert refused.status_code == 403
    assert refused.json() == {"error": "forbidden", "problems": [], "message":
                              "this is a project's token; the fleet status needs the "
                              "operator token"}
    # The project's token is a valid one, for the project's routes.
    apps = httpx.get(f"{served.url}/v1/apps", timeout=10,
                     headers={"Authorization": f"Bearer {PROJECT_TOKEN}"})
    assert apps.status_code == 200 and len(apps.json()["items"]) == 2
    # ...and the operator's token is none of the project's.
    mine = httpx.get(f"{served.url}/v1/apps", timeout=10,
                     headers={"Authorization": f"Bearer {OPERATOR}"})
    assert mine.status_code == 401


def test_the_status_is_rollsafes_fleet_status_as_json(served: ApiServer, setup: FleetSetup
                                                      ) -> None:
    response = get_status(served, OPERATOR)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    direct = fleet_status(n1.SERVICE, setup.store).to_dict()
    assert body.keys() == direct.keys()
    for key in ("service", "stale_after", "release", "pins", "migrations"):
        assert body[key] == direct[key], key
    assert [(s["id"], s["release"], s["manifest"], s["live"]) for s in body["services"]] == [
        (API_ID, "N", n.RELEASE.manifest, True),
        (CONDUCTOR_ID, "N+1", n1.RELEASE.manifest, True)]
    assert body["release"] == "N+1"
    app_pin = next(p for p in body["pins"] if p["object"] == "App")
    assert app_pin == {"object": "App", "pinned": "1.0", "expected": "1.1", "behind": True,
                       "held_back_by": [API_ID]}
    # Pinned to N: nothing may move yet.
    assert body["migrations"] == [{"name": name, "remaining": 0, "error": None}
                                  for name in MIGRATIONS]


def test_once_the_old_service_leaves_the_pins_rise_and_records_are_left(
        served: ApiServer, setup: FleetSetup) -> None:
    setup.fleet.leave(setup.api)
    body = get_status(served, OPERATOR).json()
    assert [s["id"] for s in body["services"]] == [CONDUCTOR_ID]
    assert all(not p["behind"] for p in body["pins"])
    assert {m["name"]: m["remaining"] for m in body["migrations"]} == {
        "app-source-object": 2, "workflow-steps": 1, "assembly-status": 1}


def test_the_page_is_self_contained_and_locked_to_its_own_script(served: ApiServer) -> None:
    response = httpx.get(f"{served.url}/dashboard", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    page = response.text
    assert f'<script nonce="{nonce}">' in page and f'<style nonce="{nonce}">' in page
    for outside in (" src=", "<link", "http://", "https://", "@import"):
        assert outside not in page, outside
    again = httpx.get(f"{served.url}/dashboard", timeout=10)
    assert nonce not in again.headers["content-security-policy"]     # one nonce per page


def test_the_api_without_an_operator_token_serves_no_dashboard(setup: FleetSetup) -> None:
    with n1.RELEASE.bound(setup.store):
        server = ApiServer(create_api(n1.RELEASE, TokenMap(TOKENS))).start()
        try:
            for path in ("/dashboard", "/dashboard/status"):
                response = httpx.get(f"{server.url}{path}", timeout=10,
                                     headers={"Authorization": f"Bearer {OPERATOR}"})
                assert response.status_code == 404, path
        finally:
            server.stop()


@pytest.mark.parametrize(("operator", "source", "message"), [
    ("token-acme-0001", None, "also a project's token"),
    ("short", None, "operator token: a token must be 8 to 256"),
    ("has a space in it", None, "operator token: a token must be"),
    (None, lambda: {}, "give an operator token too"),
])
def test_a_bad_operator_configuration_is_refused(operator: str | None, source: Any,
                                                 message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_api(n1.RELEASE, TokenMap(TOKENS), operator_token=operator,
                   status_source=source)


def test_an_api_without_store_access_asks_the_conductor(setup: FleetSetup) -> None:
    transport = InProcessTransport()
    with n1.RELEASE.bound(setup.store):     # the conductor's store
        status_server = serve_status(transport, ReleaseStatus(n1.RELEASE))
        # Release N's API, no store here (none://).
        with n.RELEASE.bound(n.RELEASE.open_store("none://")):
            server = ApiServer(create_api(
                n.RELEASE, TokenMap(TOKENS), operator_token=OPERATOR,
                status_source=RemoteStatus(transport, timeout=5))).start()
            local = ApiServer(create_api(n.RELEASE, TokenMap(TOKENS),
                                         operator_token=OPERATOR)).start()
            try:
                body = get_status(server, OPERATOR).json()
                assert [s["id"] for s in body["services"]] == [API_ID, CONDUCTOR_ID]
                assert body["release"] == "N+1"   # the conductor's release history
                assert [m["name"] for m in body["migrations"]] == MIGRATIONS

                # Without a source that reaches the store: 503, saying why.
                alone = get_status(local, OPERATOR)
                assert alone.status_code == 503
                assert "cannot read the fleet status" in alone.json()["message"]

                status_server.stop()              # the conductor is gone
                gone = get_status(server, OPERATOR)
                assert gone.status_code == 503 and gone.json()["error"] == "unavailable"
                assert gone.headers["retry-after"] == "1"
            finally:
                server.stop()
                local.stop()
                transport.close()


# --- the page in headless Chromium -----------------------------------------------------

CHROMIUM_VAR = "ROLLSAFE_TEST_CHROMIUM"
#: Flags for headless Chromium on a closed network (no background connections).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's chromium: skips without it (fails under CI)."""
    path = os.environ.get(CHROMIUM_VAR, "").strip() or shutil.which("chromium")
    if path and Path(path).is_file():
        return path
    message = (f"no chromium: set {CHROMIUM_VAR} or install it (./scripts/test does, with "
               "./scripts/servers browser)")
    if running_in_ci():
        pytest.fail(f"{message} (CI must run the browser tests)", pytrace=False)
    pytest.skip(message)


class Dom(HTMLParser):
    """The rendered DOM's table rows, by their data attribute, and the text
    of the elements with an id."""

    KEYS = ("data-service", "data-pin", "data-migration")
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, dict[str, str]]] = {key: {} for key in self.KEYS}
        self.texts: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        self._row: dict[str, str] | None = None
        self._col: str | None = None
        self._stack: list[str | None] = []   # ids of the open elements, innermost last
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        for key in self.KEYS:
            if tag == "tr" and key in found:
                self._row = self.rows[key].setdefault(found[key], {})
        if self._row is not None and "data-col" in found:
            self._col = found["data-col"]
            # A progress cell holds a bar: its share done is an attribute.
            self._row[self._col] = found.get("data-done", "")
        if "id" in found:
            self.texts[found["id"]] = ""
            self.classes[found["id"]] = found.get("class", "")
        if tag not in self.VOID:
            self._stack.append(found.get("id"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID or not self._stack:
            return
        self._stack.pop()
        if tag == "td":
            self._col = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._col is not None:
            self._row[self._col] += data
        for open_id in self._stack:
            if open_id is not None:
                self.texts[open_id] += data


def render(chromium: str, url: str, profile: Path) -> Dom:
    """``url`` as Chromium renders it after its script ran (bounded in time)."""
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         "--virtual-time-budget=8000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "</html>" in done.stdout, done.stderr[-2000:]
    return Dom(done.stdout)


def test_the_fleet_services_serve_the_dashboard_through_the_conductor(tmp_path: Path) -> None:
    from solumlite.demo.services import (
        ApiService,
        ConductorService,
        FleetOptions,
        remote_calls,
    )

    stores = Stores(f"sqlite:///{tmp_path}/fleet.db")
    stores.create_schema()
    transport = InProcessTransport()
    options = FleetOptions(stores.url, transport, host="dash")
    conductor = ConductorService(n1.RELEASE, "conductor", options).start()
    remote_calls(n.RELEASE, transport)  # release N's API: no store, calls the conductor
    api = ApiService(n.RELEASE, "api-1", options, tokens=TOKENS,
                     operator_token=OPERATOR).start()
    try:
        status = httpx.get(f"{api.url}/dashboard/status", timeout=10,
                           headers={"Authorization": f"Bearer {OPERATOR}"})
        assert status.status_code == 200, status.text
        body = status.json()
        assert sorted((s["name"], s["release"], s["live"]) for s in body["services"]) == [
            ("api", "N", True), ("conductor", "N+1", True)]
        assert body["release"] == "N+1"
    finally:
        api.stop()
        conductor.stop()
        n.REGISTRY.indirection = None
        transport.close()
        stores.close()



def test_chromium_shows_the_fleet_and_follows_it_when_a_service_leaves(
        chromium: str, served: ApiServer, setup: FleetSetup, tmp_path: Path) -> None:
    page = f"{served.url}/dashboard#token={OPERATOR}"
    dom = render(chromium, page, tmp_path / "profile-1")
    assert dom.texts["problem"] == ""
    assert dom.texts["release"] == "N+1" and dom.texts["service"] == "solumlite"
    assert dom.texts["counts"] == "2 live, 0 stale"
    services = dom.rows["data-service"]
    assert sorted(services) == [API_ID, CONDUCTOR_ID]
    assert services[API_ID]["release"] == "N" and services[API_ID]["host"] == "host-a"
    assert services[CONDUCTOR_ID]["release"] == "N+1"
    assert "App 1.1" in services[CONDUCTOR_ID]["versions"]
    assert "App 1.0" in services[API_ID]["versions"]
    assert {s["state"] for s in services.values()} == {"live"}
    pins = dom.rows["data-pin"]
    assert pins["App"] == {"object": "App", "pinned": "1.0", "expected": "1.1",
                           "held": API_ID}
    migrations = dom.rows["data-migration"]
    assert list(migrations) == MIGRATIONS
    for name in MIGRATIONS:   # nothing may move while pinned to N
        assert (migrations[name]["left"], migrations[name]["state"],
                migrations[name]["progress"]) == ("0", "waiting for the pins", "0.000")

    setup.fleet.leave(setup.api)
    dom = render(chromium, page, tmp_path / "profile-2")
    assert dom.texts["problem"] == ""
    assert list(dom.rows["data-service"]) == [CONDUCTOR_ID]
    assert dom.texts["counts"] == "1 live, 0 stale"
    assert dom.rows["data-pin"]["App"]["pinned"] == "1.1"
    assert dom.rows["data-pin"]["App"]["held"] == ""
    left = {name: row["left"] for name, row in dom.rows["data-migration"].items()}
    assert left == {"app-source-object": "2", "workflow-steps": "1", "assembly-status": "1"}
    assert {(row["state"], row["progress"]) for row in dom.rows["data-migration"].values()
            } == {("pending", "0.000")}

    assert n1.MIGRATIONS.run(setup.store).exit_code == 0
    dom = render(chromium, page, tmp_path / "profile-3")
    assert {name: (row["left"], row["state"], row["progress"])
            for name, row in dom.rows["data-migration"].items()} == {
        name: ("0", "done", "1.000") for name in MIGRATIONS}


def test_chromium_asks_for_the_operator_token_and_refuses_a_projects(
        chromium: str, served: ApiServer, tmp_path: Path) -> None:
    asked = render(chromium, f"{served.url}/dashboard", tmp_path / "profile-1")
    assert "shown" in asked.classes["login"].split()
    assert asked.rows["data-service"] == {}
    refused = render(chromium, f"{served.url}/dashboard#token={PROJECT_TOKEN}",
                     tmp_path / "profile-2")
    assert refused.texts["problem"] == ("this is a project's token; the fleet status needs "
                                        "the operator token")
    assert refused.rows["data-service"] == {}
