"""A graceful stop over RabbitMQ hands the topic over without losing a call.

Two servers share a topic while callers keep calling it; one of them is
stopped gracefully, round after round. Every call delivered to the stopping
server must be answered, or go back to the queue for the other server: a call
that was neither waits for its timeout, which is what these tests detect.
Needs ``ROLLSAFE_TEST_RABBIT_URL`` (skipped without it locally, failed without
it under CI). Every wait is bounded, and every topic is new.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from rollsafe.rpc.transport import RpcTimeoutError
from support import WAIT, wait_for

if TYPE_CHECKING:  # imported by the tests only: collecting imports no oslo.messaging
    from rollsafe.rpc.messaging import OsloMessagingTransport

#: A call unanswered this long was lost: a live server answers in milliseconds.
CALL_TIMEOUT = 1.5
CALLERS = 4
ROUNDS = 4
#: Calls the stopping server must have answered before it is stopped.
WARM_UP_CALLS = 20
#: Calls answered by the other server after the stop, before the next round.
AFTER_STOP_CALLS = 40


def oslo_transport(url: str) -> OsloMessagingTransport:
    from rollsafe.rpc.messaging import OsloMessagingTransport

    return OsloMessagingTransport(url)


class Traffic:
    """Callers calling ``topic`` in a loop until :meth:`finish`, each call
    with a short timeout; records every outcome."""

    def __init__(self, client: OsloMessagingTransport, topic: str) -> None:
        self._client = client
        self._topic = topic
        self._done = threading.Event()
        self._lock = threading.Lock()
        self.answered = 0
        self.lost: list[str] = []
        self.wrong: list[tuple[Any, Any]] = []
        self.failed: list[BaseException] = []
        self._threads = [threading.Thread(target=self._call, args=(n,), name=f"caller-{n}")
                         for n in range(CALLERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join(WAIT)
            assert not thread.is_alive(), f"{thread.name} still calling after {WAIT} s"

    def _call(self, number: int) -> None:
        sent = 0
        while not self._done.is_set():
            message = {"caller": number, "n": sent}
            sent += 1
            try:
                reply = self._client.call(self._topic, message, timeout=CALL_TIMEOUT)
            except RpcTimeoutError:
                with self._lock:
                    self.lost.append(f"caller {number} call {message['n']}")
                continue
            except BaseException as exc:  # reported by the test, in its thread
                with self._lock:
                    self.failed.append(exc)
                return
            with self._lock:
                if reply["echo"] != message:
                    self.wrong.append((message, reply))
                self.answered += 1


def test_a_graceful_stop_loses_no_call_delivered_to_the_stopping_server(
        rabbit_url: str) -> None:
    topic = f"test-handover-{uuid.uuid4().hex[:12]}"
    handled: dict[str, int] = {}
    handled_lock = threading.Lock()

    def serving_as(name: str) -> Any:
        def echo(message: dict[str, Any]) -> Any:
            with handled_lock:
                handled[name] = handled.get(name, 0) + 1
            time.sleep(0.002)  # a little work, so that some calls are in flight
            return {"echo": message, "by": name}
        return echo

    def handled_by(name: str) -> int:
        with handled_lock:
            return handled.get(name, 0)

    def serve_then_stop(name: str) -> None:
        """A server of its own (a process of its own, in production) joins
        the topic, takes its share of the calls, and is stopped gracefully
        while the callers keep calling."""
        leaving = oslo_transport(rabbit_url)
        try:
            server = leaving.serve(topic, serving_as(name))
            wait_for(lambda: handled_by(name) >= WARM_UP_CALLS,
                     f"{name} answering its share of the calls")
            server.stop()
        finally:
            leaving.close()
        answered_then = handled_by("staying")
        wait_for(lambda: handled_by("staying") >= answered_then + AFTER_STOP_CALLS,
                 f"the staying server answering after {name} stopped")

    staying, client = oslo_transport(rabbit_url), oslo_transport(rabbit_url)
    traffic = Traffic(client, topic)
    try:
        staying.serve(topic, serving_as("staying"))
        traffic.start()
        for round_number in range(ROUNDS):
            serve_then_stop(f"leaving-{round_number}")
    finally:
        traffic.finish()
        client.close()
        staying.close()

    assert traffic.failed == []
    assert traffic.wrong == []
    assert traffic.lost == [], (
        f"{len(traffic.lost)} of {traffic.answered + len(traffic.lost)} calls were never "
        f"answered (delivered to a stopping server, neither answered nor requeued)")
    assert traffic.answered >= ROUNDS * (WARM_UP_CALLS + AFTER_STOP_CALLS)
