"""The demo's clients against instances that die: a connection refused or
broken with the request in flight is sent again elsewhere, a write with the
same idempotency key, and the dead endpoint is left alone for a while. The
servers here are real sockets on 127.0.0.1 that misbehave on purpose."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from solumlite.demo.timeline import Timeline
from solumlite.demo.traffic import Client, Endpoints, Ledger


class RawServer:
    """Answers each request on 127.0.0.1 as ``behaviour`` says: ``"drop"``
    reads the request and closes the connection without a word; ``"ok"``
    answers 201 with a JSON body. Keeps every request's headers."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[dict[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
                self.requests.append({k.lower(): v.strip() for k, v in
                                      (line.split(":", 1) for line in head if ":" in line)})
                if self.behaviour == "ok":
                    body = json.dumps({"id": "x"}).encode()
                    conn.sendall(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                                 b"connection: close\r\ncontent-length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def servers() -> Iterator[dict[str, RawServer]]:
    made = {"drop": RawServer("drop"), "ok": RawServer("ok")}
    yield made
    for server in made.values():
        server.close()


def client(endpoints: Endpoints, timeline: Timeline) -> Client:
    return Client("t", endpoints, timeline, Ledger(), token="tok", project="p",
                  stranger="other", timeout=5.0)


def test_a_write_broken_in_flight_is_sent_again_elsewhere_with_its_key(
        servers: dict[str, RawServer]) -> None:
    endpoints, timeline = Endpoints(), Timeline()
    endpoints.add(servers["drop"].url)
    endpoints.add(servers["ok"].url)
    user = client(endpoints, timeline)
    answers = [user.request("create", "POST", "/v1/apps", body={"name": "a"}, expect=(201,))
               for _ in range(4)]

    assert all(answer is not None and answer.status_code == 201 for answer in answers)
    dropped, served = servers["drop"].requests, servers["ok"].requests
    assert len(dropped) == 1  # then it was marked down: the rest went to the other
    assert len(served) == 4
    # the repeat of the dropped write carried the same idempotency key
    keys = [r["idempotency-key"] for r in served]
    assert len(set(keys)) == 4 and dropped[0]["idempotency-key"] in keys  # one key per write
    retried = [s for s in timeline.samples if s.retried]
    assert [(s.ok, s.retried_after) for s in retried] == [(True, "broken")]
    assert all(s.ok for s in timeline.samples)


def test_a_refused_connection_is_sent_again_and_a_read_carries_no_key(
        servers: dict[str, RawServer]) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there now: connections are refused
    endpoints, timeline = Endpoints(), Timeline()
    endpoints.add(dead)
    endpoints.add(servers["ok"].url)
    user = client(endpoints, timeline)
    for _ in range(3):
        assert user.request("read", "GET", "/v1/apps/x", expect=(201,)) is not None

    assert [s.retried_after for s in timeline.samples if s.retried] == ["refused"]
    assert all("idempotency-key" not in r for r in servers["ok"].requests)


def test_a_request_fails_when_every_endpoint_is_dead() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    endpoints, timeline = Endpoints(wait=0.5), Timeline()
    endpoints.add(dead)
    user = client(endpoints, timeline)
    # after the first refusal it stays down 5 s: the client gives up waiting
    # for an endpoint rather than hammering the dead one
    assert user.request("read", "GET", "/v1/apps/x") is None
    [sample] = timeline.samples
    assert not sample.ok and sample.retried and sample.retried_after == "refused"
    assert sample.error is not None
