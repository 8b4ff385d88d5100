"""Remote calls between two releases through a conductor (in-process)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import rollsafe
from rollsafe import (
    Added,
    History,
    Registry,
    Version,
    VersionedObject,
    remotable,
    remotable_classmethod,
    to_primitive,
    what_changed,
)
from rollsafe.rpc import (
    Conductor,
    InProcessTransport,
    ObjectSerializer,
    RemoteError,
    RemoteIndirection,
    RpcTimeoutError,
)
from rollsafe.rpc.transport import RpcError

# --- release N (the worker: no store) and N+1 (the conductor) ---------------------

old = Registry("rpc")
new = Registry("rpc")
CALLS: list[str] = []


class Counter(VersionedObject, registry=old):
    name: str
    value: int = 0

    @remotable
    def bump(self, by: int = 1) -> int:
        raise AssertionError("release N never runs this itself: the conductor does")

    @remotable_classmethod
    def named(cls, name: str) -> Counter:
        raise AssertionError("release N never runs this itself")


OldCounter = Counter


class Counter(VersionedObject, registry=new):  # type: ignore[no-redef]
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Counters remember who bumped them", Added("by_whom")))
    name: str
    value: int = 0
    by_whom: str = "nobody"

    @remotable
    def bump(self, by: int = 1) -> int:
        CALLS.append(f"bump {self.name} {by}")
        if by < 0:
            raise ValueError("counters only go up")
        self.value += by
        self.by_whom = "conductor"
        return self.value

    @remotable_classmethod
    def named(cls, name: str) -> Counter:
        CALLS.append(f"named {name}")
        return cls(name=name, value=41, by_whom="conductor")

    def not_remote(self) -> str:
        return "secret"


NewCounter = Counter


@pytest.fixture
def wired() -> Iterator[tuple[InProcessTransport, Conductor]]:
    transport = InProcessTransport()
    conductor = Conductor(transport, new).start()
    old.indirection = RemoteIndirection(transport, old, timeout=5)
    CALLS.clear()
    try:
        yield transport, conductor
    finally:
        old.indirection = None
        transport.close()


def test_an_instance_call_runs_on_the_conductor_and_updates_the_callers_copy(
        wired: Any) -> None:
    counter = OldCounter(name="hits", value=1)
    rollsafe.reset_changes(counter)
    assert counter.bump(2) == 3
    assert CALLS == ["bump hits 2"]
    assert counter.value == 3  # the caller's copy took the conductor's state
    assert what_changed(counter) == {"value"}  # by_whom is unknown to release N


def test_a_class_call_returns_an_object_at_the_callers_version(wired: Any) -> None:
    made = OldCounter.named("fresh")
    assert type(made) is OldCounter
    assert (made.name, made.value) == ("fresh", 41)
    assert CALLS == ["named fresh"]


def test_a_remote_exception_reaches_the_caller_and_leaves_its_copy_alone(wired: Any) -> None:
    counter = OldCounter(name="hits", value=5)
    with pytest.raises(RemoteError) as caught:
        counter.bump(-1)
    assert caught.value.exc_type == "ValueError"
    assert "only go up" in caught.value.remote_message
    assert counter.value == 5


def test_only_remotable_methods_can_be_called_by_name(wired: Any) -> None:
    transport, _ = wired
    message = {"op": "object_action", "object": to_primitive(NewCounter(name="x")),
               "method": "not_remote", "args": [], "kwargs": {}, "manifest": old.manifest()}
    with pytest.raises(RemoteError, match="not a remotable instance method"):
        transport.call("conductor", message, timeout=5)


def test_without_an_indirection_remotable_methods_run_locally() -> None:
    counter = NewCounter(name="local")
    CALLS.clear()
    assert counter.bump() == 1
    assert CALLS == ["bump local 1"]


def test_an_unanswered_call_times_out_with_a_clear_error() -> None:
    transport = InProcessTransport()
    release = threading.Event()

    def stuck(message: dict[str, Any]) -> None:
        release.wait(10)

    transport.serve("slow", stuck)
    try:
        with pytest.raises(RpcTimeoutError, match=r"within 0\.2 s"):
            transport.call("slow", {}, timeout=0.2)
        with pytest.raises(RpcTimeoutError, match="nothing serves topic"):
            transport.call("nobody", {}, timeout=0.2)
    finally:
        release.set()
        transport.close()


def test_an_object_too_new_for_the_receiver_is_backported_by_the_conductor(
        wired: Any) -> None:
    newer = NewCounter(name="n", value=7, by_whom="someone")
    envelope = to_primitive(newer)  # at 1.1: release N cannot read it
    serializer = old.indirection.serializer
    got = serializer.deserialize({"items": [envelope]})["items"][0]
    assert type(got) is OldCounter and (got.name, got.value) == ("n", 7)


def test_a_backport_that_no_peer_can_serve_ends_in_a_clear_error(wired: Any) -> None:
    future = to_primitive(NewCounter(name="n"))
    future["versioned_object.version"] = "9.0"  # newer than every peer
    with pytest.raises(RpcError, match="cannot backport"):
        old.indirection.serializer.deserialize(future)


def test_the_serializer_sends_objects_at_the_receivers_versions() -> None:
    serializer = ObjectSerializer(new, target=lambda: {"Counter": "1.0"})
    sent = serializer.serialize({"c": NewCounter(name="x", by_whom="me"), "n": [1, "two"]})
    assert sent["c"]["versioned_object.version"] == "1.0"
    assert "by_whom" not in sent["c"]["versioned_object.data"]
    assert sent["n"] == [1, "two"]
    with pytest.raises(RpcError, match="cannot send a set"):
        serializer.serialize({1, 2})


def test_importing_the_rpc_package_loads_no_messaging_library() -> None:
    import subprocess

    code = ("import sys, rollsafe.rpc; "
            "print(any(m.split('.')[0] in ('oslo_messaging', 'kombu') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
