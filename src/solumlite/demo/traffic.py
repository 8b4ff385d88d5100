"""Client traffic over real HTTP during a live upgrade, and the final check
that every acknowledged write is still there.

A few :class:`Client` threads each play one user: they register apps,
start workflows, read their objects back, change descriptions and page
through listings, checking every response (status code and content). Each
write the API acknowledged goes into the :class:`Ledger`; after the run
:func:`check_writes` reads every one back (lost: missing or different).

The clients reach the API through :class:`Endpoints`, the live set of API
URLs, as a load balancer would: an instance being replaced is first taken
out of the rotation, its requests in flight finish, and only then is it
stopped, so no request meets a closing server. An instance that dies
(``kill -9`` in the fault run) is found out by the connections that fail:
the client sends the request again elsewhere, with the write's idempotency
key, and the endpoint is left alone for a few seconds.
"""

from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from solumlite.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from solumlite.demo.timeline import RequestSample, Timeline

__all__ = ["AppRecord", "Client", "Endpoints", "Ledger", "WriteCheck", "check_writes",
           "unfinished_workflows"]

#: A response check: None when the body is right, else what is wrong.
Check = Callable[[Any], str | None]

#: How many times a client sends a request that fails at the connection.
ATTEMPTS = 4

#: A connection that broke with the request in flight (it may have been done).
_BROKEN = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class Endpoints:
    """The live API URLs the clients use, with their requests in flight;
    ``wait``: how long a request waits for an endpoint when none is up."""

    def __init__(self, *, wait: float = 10.0) -> None:
        self.wait = wait
        self._live: list[str] = []
        self._in_flight: dict[str, int] = {}
        self._changed = threading.Condition()
        self._turn = 0
        self._down_until: dict[str, float] = {}

    @property
    def live(self) -> list[str]:
        """The URLs in the rotation now (those marked down for a while too)."""
        with self._changed:
            return list(self._live)

    def _usable(self) -> list[str]:
        now = time.monotonic()
        return [url for url in self._live if self._down_until.get(url, 0.0) <= now]

    def down(self, url: str, seconds: float = 5.0) -> None:
        """A connection to ``url`` failed: send nothing there for ``seconds``
        (a load balancer's passive health check; the orchestrator takes a
        dead instance out with :meth:`remove`)."""
        with self._changed:
            self._down_until[url] = time.monotonic() + seconds

    def remove(self, url: str) -> None:
        """Take ``url`` out of the rotation at once (its process is gone:
        nothing in flight to wait for)."""
        with self._changed:
            if url in self._live:
                self._live.remove(url)
            self._down_until.pop(url, None)
            self._changed.notify_all()

    def add(self, url: str) -> None:
        """Put ``url`` in the rotation."""
        with self._changed:
            self._live.append(url)
            self._in_flight.setdefault(url, 0)
            self._changed.notify_all()

    def retire(self, url: str, timeout: float = 30.0) -> None:
        """Take ``url`` out of the rotation and wait (at most ``timeout``
        seconds) until no request to it is in flight."""
        with self._changed:
            if url in self._live:
                self._live.remove(url)
            if not self._changed.wait_for(lambda: self._in_flight.get(url, 0) == 0, timeout):
                raise TimeoutError(f"requests to {url} still in flight after {timeout}s")
            self._in_flight.pop(url, None)

    @contextmanager
    def use(self) -> Iterator[str]:
        """A live URL (the next in turn) for one request."""
        timeout = self.wait
        with self._changed:
            deadline = time.monotonic() + timeout
            while not (usable := self._usable()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no API endpoint in the rotation for {timeout}s")
                self._changed.wait(0.05)  # those marked down come back on their own
            self._turn += 1
            url = usable[self._turn % len(usable)]
            self._in_flight[url] = self._in_flight.get(url, 0) + 1
        try:
            yield url
        finally:
            with self._changed:
                self._in_flight[url] = self._in_flight.get(url, 1) - 1
                self._changed.notify_all()


@dataclass
class AppRecord:
    """An app a client created, as it must read back: the fields the API
    acknowledged, and (after a change whose outcome is unknown) the other
    description it may have."""

    id: str
    project: str
    body: dict[str, Any]
    maybe_description: str | None = None
    workflows: list[str] = field(default_factory=list)


class Ledger:
    """Every write the API acknowledged (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.apps: dict[str, AppRecord] = {}

    def app_created(self, record: AppRecord) -> None:
        """An app creation was acknowledged."""
        with self._lock:
            self.apps[record.id] = record

    def workflow_started(self, app_id: str, workflow_id: str) -> None:
        """A workflow start was acknowledged."""
        with self._lock:
            self.apps[app_id].workflows.append(workflow_id)

    def description_sent(self, app_id: str, description: str) -> None:
        """A description change was sent: until its answer, the app may
        have either description."""
        with self._lock:
            self.apps[app_id].maybe_description = description

    def description_changed(self, app_id: str, description: str) -> None:
        """A description change was acknowledged."""
        with self._lock:
            record = self.apps[app_id]
            record.body["description"] = description
            record.maybe_description = None

    def description_refused(self, app_id: str) -> None:
        """A description change was refused (409): nothing changed."""
        with self._lock:
            self.apps[app_id].maybe_description = None

    def snapshot(self) -> list[AppRecord]:
        """A copy of the records."""
        with self._lock:
            return [AppRecord(r.id, r.project, dict(r.body), r.maybe_description,
                              list(r.workflows)) for r in self.apps.values()]

    @property
    def writes(self) -> int:
        """Acknowledged creations (apps and workflows)."""
        with self._lock:
            return sum(1 + len(r.workflows) for r in self.apps.values())


def _app_body(client: str, number: int, rng: random.Random) -> dict[str, Any]:
    return {
        "name": f"{client}-app-{number}", "description": f"app {number} of {client}",
        "language_pack": "python",
        "source": {"url": f"https://git.example/{client}/app-{number}.git",
                   "revision": f"v{rng.randint(1, 9)}", "private": rng.random() < 0.5},
        "test_cmd": "pytest" if rng.random() < 0.7 else None,
        "run_cmd": "python app.py", "ports": [8000 + rng.randint(0, 99)],
    }


def app_differs(expected: dict[str, Any], seen: Any,
                maybe_description: str | None = None) -> str | None:
    """What differs between an app as written and as read (None: nothing)."""
    if not isinstance(seen, dict):
        return "the body is not an object"
    for name, value in expected.items():
        got = seen.get(name)
        if name == "source":
            want = {"url": value["url"], "revision": value.get("revision"),
                    "private": value.get("private", False)}
            if got != want:
                return f"source is {got!r}, expected {want!r}"
        elif got != value and not (name == "description" and maybe_description is not None
                                   and got == maybe_description):
            return f"{name} is {got!r}, expected {value!r}"
    return None


class Client(threading.Thread):
    """One user of project ``project`` (bearer ``token``), sending a request
    every ``pause`` seconds or so until :meth:`halt`. ``stranger`` is
    another project's token: the client checks now and then that it sees
    none of this project's apps (404)."""

    def __init__(self, name: str, endpoints: Endpoints, timeline: Timeline, ledger: Ledger, *,
                 token: str, project: str, stranger: str, pause: float = 0.05,
                 seed: int | None = None, timeout: float = 15.0) -> None:
        super().__init__(name=f"demo-client-{name}", daemon=True)
        self.label = name
        self.endpoints = endpoints
        self.timeline = timeline
        self.ledger = ledger
        self.project = project
        self.pause = pause
        self.rng = random.Random(seed)
        self._auth = {"Authorization": f"Bearer {token}"}
        self._stranger = {"Authorization": f"Bearer {stranger}"}
        self._halt = threading.Event()
        self._http = httpx.Client(timeout=timeout)
        self._apps: list[str] = []
        self._workflows: list[str] = []
        self._cursor: str | None = None
        self._created = 0
        #: An exception that ended the thread (None while all is well).
        self.crashed: BaseException | None = None

    def halt(self) -> None:
        """Finish the request in flight, then stop."""
        self._halt.set()

    def run(self) -> None:
        """Send requests until halted."""
        try:
            while not self._halt.is_set():
                self.step()
                self._halt.wait(self.pause * self.rng.uniform(0.5, 1.5))
        except BaseException as exc:  # reported by the scenario, never silent
            self.crashed = exc
        finally:
            self._http.close()

    # -- one request, timed and checked ------------------------------------
    def request(self, operation: str, method: str, path: str, *,
                expect: tuple[int, ...] = (200,), body: Any = None,
                check: Check | None = None, headers: dict[str, str] | None = None
                ) -> httpx.Response | None:
        """Send one request and record it; the response when it came with
        an expected status and a right body, else None.

        A request that fails at the connection is sent again on another
        endpoint (at most :data:`ATTEMPTS` times in all), and the endpoint
        is marked down for a while: either the connection could not be
        opened (``refused``: nothing was sent), or it broke before the
        answer came (``broken``: the instance died with the request in
        flight, and may have done it). A write carries an idempotency key,
        the same on every attempt, so one that did happen is not done
        twice: its repeat gets the first answer. The sample records the
        cause of the first failure (``retried_after``)."""
        phase = self.timeline.phase
        start = self.timeline.now()
        cause: str | None = None
        error: str | None = None
        response: httpx.Response | None = None
        sent = dict(headers or self._auth)
        if method != "GET":
            sent[IDEMPOTENCY_HEADER] = uuid.uuid4().hex
        for attempt in range(1, ATTEMPTS + 1):
            url = None
            try:
                with self.endpoints.use() as url:
                    response = self._http.request(method, url + path, json=body, headers=sent)
                break
            except (httpx.ConnectError, *_BROKEN) as exc:
                if url is not None:
                    self.endpoints.down(url)
                if isinstance(exc, httpx.ConnectError):
                    cause = cause or "refused"
                    error = f"{operation}: cannot connect: {exc}"
                else:
                    cause = cause or "broken"
                    error = f"{operation}: the connection broke: {type(exc).__name__}: {exc}"
            except (httpx.HTTPError, RuntimeError) as exc:
                error = f"{operation}: {type(exc).__name__}: {exc}"
                break
            if attempt < ATTEMPTS:
                self._halt.wait(0.05 * attempt)
        latency = self.timeline.now() - start
        if response is not None:
            error = None
            if response.status_code not in expect:
                error = (f"{operation}: HTTP {response.status_code}, expected "
                         f"{'/'.join(map(str, expect))}: {response.text[:200]}")
            elif check is not None:
                try:
                    wrong = check(response.json() if response.content else None)
                except ValueError:
                    wrong = "the body is not JSON"
                if wrong is not None:
                    error = f"{operation}: wrong content: {wrong}"
        self.timeline.record(RequestSample(start=start, latency=latency, operation=operation,
                                           phase=phase, ok=error is None, retried_after=cause,
                                           error=error))
        return response if error is None else None

    # -- what a user does ------------------------------------------------------
    def step(self) -> None:
        """One user action (one to three requests)."""
        roll = self.rng.random()
        if len(self._apps) < 3 or roll < 0.15:
            self.create_app()
        elif roll < 0.35:
            self.start_workflow()
        elif roll < 0.60:
            self.read_app()
        elif roll < 0.72:
            self.read_workflow()
        elif roll < 0.82:
            self.change_description()
        elif roll < 0.94:
            self.list_page()
        elif roll < 0.97:
            self.list_workflows_of_app()
        else:
            self.peek_as_stranger()

    def create_app(self) -> None:
        """Register a new app; remember it once acknowledged."""
        self._created += 1
        body = _app_body(self.label, self._created, self.rng)
        response = self.request("create app", "POST", "/v1/apps", body=body, expect=(201,),
                                check=lambda seen: app_differs(body, seen))
        if response is not None:
            app_id = response.json()["id"]
            self.ledger.app_created(AppRecord(app_id, self.project, body))
            self._apps.append(app_id)

    def start_workflow(self) -> None:
        """Start a workflow of one of this client's apps."""
        app_id = self.rng.choice(self._apps)

        def check(seen: Any) -> str | None:
            workflow = seen.get("workflow", {}) if isinstance(seen, dict) else {}
            if workflow.get("app_id") != app_id:
                return f"workflow of app {workflow.get('app_id')!r}, expected {app_id}"
            if not workflow.get("steps") or seen["assembly"].get("status") != "queued":
                return "a new workflow has steps and a queued assembly"
            return None

        response = self.request("start workflow", "POST", f"/v1/apps/{app_id}/workflows",
                                expect=(201,), check=check)
        if response is not None:
            workflow_id = response.json()["workflow"]["id"]
            self.ledger.workflow_started(app_id, workflow_id)
            self._workflows.append(workflow_id)

    def _expected(self, app_id: str) -> AppRecord:
        return next(r for r in self.ledger.snapshot() if r.id == app_id)

    def read_app(self) -> dict[str, Any] | None:
        """Read one of this client's apps back and compare it."""
        app_id = self.rng.choice(self._apps)
        record = self._expected(app_id)
        response = self.request("read app", "GET", f"/v1/apps/{app_id}",
                                check=lambda seen: app_differs(record.body, seen,
                                                               record.maybe_description))
        return None if response is None else dict(response.json())

    def read_workflow(self) -> None:
        """Read one of this client's workflows back."""
        if not self._workflows:
            self.read_app()
            return
        workflow_id = self.rng.choice(self._workflows)
        self.request("read workflow", "GET", f"/v1/workflows/{workflow_id}",
                     check=lambda seen: None if isinstance(seen, dict)
                     and seen.get("id") == workflow_id
                     and seen.get("status") in ("queued", "running", "succeeded", "failed")
                     else f"unexpected workflow {seen!r:.200}")

    def change_description(self) -> None:
        """Change an app's description at the revision just read; a 409
        (a worker moved the app on meanwhile) means read again and retry,
        as the API asks."""
        app_id = self.rng.choice(self._apps)
        for _ in range(3):
            seen = self.read_app()
            if seen is None:
                return
            description = f"changed at {self.timeline.now():.3f}s"
            self.ledger.description_sent(app_id, description)
            response = self.request("change app", "PATCH", f"/v1/apps/{app_id}",
                                    body={"revision": seen["revision"],
                                          "description": description}, expect=(200, 409),
                                    check=functools.partial(_changed, description=description))
            if response is None:
                return  # recorded as failed; the change may or may not have happened
            if response.status_code == 200:
                self.ledger.description_changed(app_id, description)
                return
            self.ledger.description_refused(app_id)

    def list_page(self) -> None:
        """Read the next page of the project's apps."""
        path = "/v1/apps?limit=20" + (f"&cursor={self._cursor}" if self._cursor else "")
        response = self.request("list apps", "GET", path, check=_page_check)
        if response is not None:
            self._cursor = response.json()["next_cursor"]

    def list_workflows_of_app(self) -> None:
        """List one app's workflows: all of them are that app's."""
        app_id = self.rng.choice(self._apps)

        def check(seen: Any) -> str | None:
            wrong = _page_check(seen)
            if wrong is None:
                others = [w.get("app_id") for w in seen["items"] if w.get("app_id") != app_id]
                if others:
                    wrong = f"a workflow of app {others[0]} in app {app_id}'s list"
            return wrong

        self.request("list workflows", "GET", f"/v1/workflows?app_id={app_id}&limit=50",
                     check=check)

    def peek_as_stranger(self) -> None:
        """Another project's token must not see this project's app."""
        app_id = self.rng.choice(self._apps)
        self.request("isolation", "GET", f"/v1/apps/{app_id}", expect=(404,),
                     headers=self._stranger)


def _changed(body: Any, description: str) -> str | None:
    if not isinstance(body, dict):
        return "the body is not an object"
    if body.get("error") == "stale_revision":
        return None
    if body.get("description") != description:
        return f"description is {body.get('description')!r}, expected {description!r}"
    return None


def _page_check(seen: Any) -> str | None:
    if not isinstance(seen, dict) or not isinstance(seen.get("items"), list):
        return "a page has items"
    if "next_cursor" not in seen:
        return "a page has next_cursor"
    return None


@dataclass
class WriteCheck:
    """What reading every acknowledged write back found."""

    checked: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)


def check_writes(ledger: Ledger, url: str, tokens: dict[str, str], *,
                 timeout: float = 15.0) -> WriteCheck:
    """Read every acknowledged app and workflow back through the API at
    ``url`` (``tokens``: project -> token); lost is missing or different."""
    result = WriteCheck()
    with httpx.Client(base_url=url, timeout=timeout) as http:
        for record in ledger.snapshot():
            auth = {"Authorization": f"Bearer {tokens[record.project]}"}
            result.checked += 1
            response = http.get(f"/v1/apps/{record.id}", headers=auth)
            wrong = (f"HTTP {response.status_code}" if response.status_code != 200
                     else app_differs(record.body, response.json(), record.maybe_description))
            if wrong is not None:
                result.lost += 1
                result.problems.append(f"app {record.id}: {wrong}")
            for workflow_id in record.workflows:
                result.checked += 1
                response = http.get(f"/v1/workflows/{workflow_id}", headers=auth)
                if response.status_code != 200:
                    wrong = f"HTTP {response.status_code}"
                elif response.json().get("app_id") != record.id:
                    wrong = f"belongs to app {response.json().get('app_id')}"
                else:
                    continue
                result.lost += 1
                result.problems.append(f"workflow {workflow_id} of app {record.id}: {wrong}")
    return result


def unfinished_workflows(ledger: Ledger, url: str, tokens: dict[str, str], *,
                         timeout: float = 30.0) -> list[str]:
    """The acknowledged workflows still ``queued`` or ``running`` after
    ``timeout`` seconds (read through the API at ``url``, ``tokens``:
    project -> token): a workflow started is one the workers finish."""
    waiting = {w: r.project for r in ledger.snapshot() for w in r.workflows}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=15.0) as http:
        while waiting:
            for workflow_id, project in list(waiting.items()):
                response = http.get(f"/v1/workflows/{workflow_id}",
                                    headers={"Authorization": f"Bearer {tokens[project]}"})
                if response.status_code != 200 or response.json().get("status") not in (
                        "queued", "running"):
                    del waiting[workflow_id]  # ended (or gone: check_writes reports that)
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(0.25)
    return sorted(waiting)

