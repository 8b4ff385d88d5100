"""Two releases of one domain, live in one fleet, exchanging objects both
ways over each transport (in-process, and oslo.messaging on a real RabbitMQ).

Release N knows ``Box`` 1.0 and ``Tag`` 1.0. Release N+1 added
``Box.weight`` and ``Tag.color`` in 1.1 (so Box 1.1 embeds Tag 1.1). Each
service has its own registry, transport, serializer, stores and
:class:`FleetMembership` in one fleet store (SQLite), and serves:

- a conductor topic (its remotable methods, for the other service: each
  side's ``registry.indirection`` points at the other's conductor, so remote
  instance and class calls go both ways), and
- an inbox topic (plain calls and casts carrying objects).

Every message is recorded on each side, so the versions on the wire are
checked, not assumed. While N is live, N+1 sends and stores 1.0; once N
leaves (or goes stale) the pin rises at N+1's next heartbeat, with nothing
restarted, and N+1 sends and stores 1.1.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rollsafe import (
    Added,
    History,
    NestedVersion,
    Registry,
    Version,
    VersionedObject,
    remotable,
    remotable_classmethod,
    to_primitive,
)
from rollsafe.rpc import (
    Conductor,
    FleetMembership,
    InProcessTransport,
    ObjectSerializer,
    RemoteIndirection,
)
from rollsafe.rpc.fleet import SERVICES, Fleet
from rollsafe.rpc.transport import Handler, RpcError, Server, Transport
from rollsafe.storage import Collection, Store, open_backend
from support import WAIT, wait_for

STALE_AFTER = 1.5  # seconds: heartbeats every 0.5 s
KEY_NAME, KEY_VERSION, KEY_DATA = ("versioned_object.name", "versioned_object.version",
                                   "versioned_object.data")

#: (release, what ran) for every remotable method run, on either side.
RAN: list[tuple[str, str]] = []
#: Each release's store of boxes (set while its service runs).
STORES: dict[str, Store] = {}

# --- release N -----------------------------------------------------------------------

old_objects = Registry("tworeleases")


class Tag(VersionedObject, registry=old_objects):
    label: str


class Box(VersionedObject, registry=old_objects):
    id: str
    name: str
    tag: Tag

    @remotable
    def rename(self, name: str) -> str:
        RAN.append(("N", "rename"))
        before, self.name = self.name, name
        return before

    @remotable
    def save(self) -> None:
        RAN.append(("N", "save"))
        STORES["N"].create(self)

    @remotable_classmethod
    def make(cls, id: str, name: str, tag: Tag) -> Box:
        RAN.append(("N", "make"))
        return cls(id=id, name=name, tag=tag)

    @remotable_classmethod
    def load(cls, id: str) -> Box:
        RAN.append(("N", "load"))
        return STORES["N"].get(cls, id)


OldTag, OldBox = Tag, Box

# --- release N+1 ---------------------------------------------------------------------

new_objects = Registry("tworeleases")


class Tag(VersionedObject, registry=new_objects):  # type: ignore[no-redef]
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Tags have a color", Added("color")))
    label: str
    color: str = "grey"


class Box(VersionedObject, registry=new_objects):  # type: ignore[no-redef]
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Boxes have a weight; tags a color",
                               Added("weight"), NestedVersion("tag", "1.1")))
    id: str
    name: str
    tag: Tag
    weight: int = 0

    @remotable
    def rename(self, name: str) -> str:
        RAN.append(("N+1", "rename"))
        before, self.name = self.name, name
        self.weight += 1  # release N+1 also counts renames in the weight
        return before

    @remotable
    def save(self) -> None:
        RAN.append(("N+1", "save"))
        STORES["N+1"].create(self)

    @remotable_classmethod
    def make(cls, id: str, name: str, tag: Tag) -> Box:
        RAN.append(("N+1", "make"))
        return cls(id=id, name=name, tag=tag, weight=len(name))

    @remotable_classmethod
    def load(cls, id: str) -> Box:
        RAN.append(("N+1", "load"))
        return STORES["N+1"].get(cls, id)


NewTag, NewBox = Tag, Box

OLD = {"Box": "1.0", "Tag": "1.0"}
NEW = {"Box": "1.1", "Tag": "1.1"}
BOXES = {"N": Collection(OldBox, key="id"), "N+1": Collection(NewBox, key="id")}


def test_the_two_registries_are_two_releases() -> None:
    assert old_objects.manifest() == OLD
    assert new_objects.manifest() == NEW


# --- the wire, recorded --------------------------------------------------------------


class Recording(Transport):
    """A service's transport, recording what it sends (calls, casts, and
    replies of the topics it serves) and what it receives."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[Any] = []
        self.received: list[Any] = []
        self.handled: list[dict[str, Any]] = []

    def serve(self, topic: str, handler: Handler) -> Server:
        def recorded(message: dict[str, Any]) -> Any:
            self.received.append(message)
            self.handled.append(message)
            reply = handler(message)
            self.sent.append(reply)
            return reply

        return self.inner.serve(topic, recorded)

    def call(self, topic: str, message: dict[str, Any], *, timeout: float) -> Any:
        self.sent.append(message)
        reply = self.inner.call(topic, message, timeout=timeout)
        self.received.append(reply)
        return reply

    def cast(self, topic: str, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self.inner.cast(topic, message)

    def close(self) -> None:
        self.inner.close()

    def clear(self) -> None:
        self.sent.clear()
        self.received.clear()
        self.handled.clear()


def envelopes(value: Any) -> list[tuple[str, str]]:
    """(name, version) of every object envelope in ``value``, at any depth."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        if isinstance(value.get(KEY_NAME), str):
            found.append((value[KEY_NAME], value[KEY_VERSION]))
        for item in value.values():
            found += envelopes(item)
    elif isinstance(value, list):
        for item in value:
            found += envelopes(item)
    return found


def versions_sent(service: Service) -> set[tuple[str, str]]:
    return {pair for message in service.wire.sent for pair in envelopes(message)}


# --- two services ---------------------------------------------------------------------


class Service:
    """One service process of ``release``: its registry calls ``peer``'s
    conductor; it serves its own conductor and inbox."""

    def __init__(self, release: str, registry: Registry, peer: str, transport: Transport,
                 url: str, topics: str) -> None:
        self.release = release
        self.registry = registry
        self.topics = topics
        self.wire = Recording(transport)
        self.fleet = Fleet(Store(open_backend(url), [SERVICES]), stale_after=STALE_AFTER)
        self.store = Store(open_backend(url), [BOXES[release]])
        self.conductor = Conductor(self.wire, registry, topic=f"{topics}-conductor-{release}")
        self.indirection = RemoteIndirection(self.wire, registry,
                                             topic=f"{topics}-conductor-{peer}", timeout=WAIT)
        self.serializer = ObjectSerializer(registry, backporter=self.indirection.backport)
        self.membership = FleetMembership(
            self.fleet, f"svc-{release}", "host", release, registry,
            serializers=[self.serializer, self.indirection.serializer], stores=[self.store])
        self.inbox: list[Any] = []
        self.server: Server | None = None

    def start(self) -> Service:
        self.membership.start()
        STORES[self.release] = self.store
        self.conductor.start()
        self.server = self.wire.serve(f"{self.topics}-inbox-{self.release}", self.handle)
        self.registry.indirection = self.indirection
        return self

    def handle(self, message: dict[str, Any]) -> Any:
        """The inbox: objects in, decoded (backported if need be); a call
        gets them back, renamed, at the versions the fleet reads."""
        objects = self.serializer.deserialize(message["objects"])
        self.inbox.append(objects)
        if message["kind"] == "call":
            return self.serializer.serialize({"seen_by": self.release, "objects": objects})
        return None

    def call(self, peer: str, *objects: Any, manifest: dict[str, str] | None = None) -> Any:
        reply = self.wire.call(f"{self.topics}-inbox-{peer}", {
            "kind": "call", "objects": self.serializer.serialize(list(objects), manifest)},
            timeout=WAIT)
        return self.serializer.deserialize(reply)

    def cast(self, peer: str, *objects: Any, manifest: dict[str, str] | None = None) -> None:
        self.wire.cast(f"{self.topics}-inbox-{peer}", {
            "kind": "cast", "objects": self.serializer.serialize(list(objects), manifest)})

    def stop(self, *, leave: bool = True) -> None:
        """The process ends: it stops serving and heartbeating, and leaves
        the fleet (or, without ``leave``, just goes silent)."""
        self.registry.indirection = None
        # side by side: an oslo.messaging server takes about a second to stop
        stoppers = [threading.Thread(target=stop) for stop in (self.conductor.stop,
                                                               self._stop_inbox)]
        for stopper in stoppers:
            stopper.start()
        self.membership.stop(leave=leave, timeout=5)
        for stopper in stoppers:
            stopper.join(WAIT)

    def _stop_inbox(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def close(self) -> None:
        """Stop heartbeating and leave; the transport's close stops the servers."""
        self.registry.indirection = None
        self.membership.stop(timeout=5)
        self.fleet.store.close()
        self.store.close()


def stored_version(store: Store, key: str) -> tuple[str, dict[str, Any]]:
    """The version and data of the raw record ``key`` of ``store``'s boxes."""
    coll = store.collections[0]
    with store.backend.transaction(readonly=True) as tx:
        record = tx.get(coll, key, None)
    assert record is not None, key
    return record.version, record.data


@pytest.fixture(params=["inprocess", "rabbitmq"])
def transports(request: pytest.FixtureRequest) -> Iterator[Callable[[], Transport]]:
    """Makes each service's transport: the one in-process transport both
    share, or one oslo.messaging transport per service on the real RabbitMQ."""
    made: list[Transport] = []

    def make() -> Transport:
        if request.param == "inprocess":
            if not made:
                made.append(InProcessTransport())
            return made[0]
        from rollsafe.rpc.messaging import OsloMessagingTransport

        transport = OsloMessagingTransport(request.getfixturevalue("rabbit_url"))
        made.append(transport)
        return transport

    yield make
    closers = [threading.Thread(target=transport.close) for transport in made]
    for closer in closers:  # side by side: each takes a second or two on RabbitMQ
        closer.start()
    for closer in closers:
        closer.join(WAIT)


@pytest.fixture
def services(transports: Callable[[], Transport],
             tmp_path: Path) -> Iterator[tuple[Service, Service]]:
    """Release N and release N+1, both live in one fleet (N+1 owns the schema)."""
    url = f"sqlite:///{tmp_path}/fleet.db"
    topics = f"two-{uuid.uuid4().hex[:12]}"
    setup = Store(open_backend(url), [SERVICES, BOXES["N+1"]])
    setup.ensure_schema()
    setup.close()
    new = Service("N+1", new_objects, "N", transports(), url, topics)
    old = Service("N", old_objects, "N+1", transports(), url, topics)
    RAN.clear()
    try:
        new.start()
        old.start()
        # N joined after N+1: N+1 sees it at its next beat at the latest
        wait_for(lambda: new.membership.pins == OLD, "N+1 pinned to what N reads")
        new.wire.clear()
        old.wire.clear()
        yield old, new
    finally:
        old.close()
        new.close()
        STORES.clear()


# --- the tests ----------------------------------------------------------------------------


def test_release_n_calls_release_n_plus_1(services: tuple[Service, Service]) -> None:
    old, new = services
    # a class call with an object argument, run by N+1, answered at N's versions
    box = OldBox.make("b1", "first", OldTag(label="red"))
    assert type(box) is OldBox and type(box.tag) is OldTag
    assert (box.id, box.name, box.tag.label) == ("b1", "first", "red")
    # an instance call: run by N+1, N's copy takes its new state
    assert box.rename("renamed") == "first"
    assert box.name == "renamed"
    # N+1 stores what N asks it to: at the versions N reads, while N is live
    box.save()
    version, data = stored_version(new.store, "b1")
    assert version == "1.0" and "weight" not in data
    assert old.store.get(OldBox, "b1").name == "renamed"  # N reads what N+1 stored
    loaded = OldBox.load("b1")
    assert type(loaded) is OldBox and loaded.tag.label == "red"
    assert RAN == [("N+1", "make"), ("N+1", "rename"), ("N+1", "save"), ("N+1", "load")]
    # N only ever sent, and got, what it reads
    assert versions_sent(old) == {("Box", "1.0"), ("Tag", "1.0")}
    assert versions_sent(new) <= {("Box", "1.0"), ("Tag", "1.0")}
    assert {pair for m in old.wire.received for pair in envelopes(m)} == {
        ("Box", "1.0"), ("Tag", "1.0")}


def test_release_n_plus_1_calls_release_n_at_its_versions(
        services: tuple[Service, Service]) -> None:
    old, new = services
    made = NewBox.make("b2", "second", NewTag(label="blue", color="green"))
    assert type(made) is NewBox and type(made.tag) is NewTag
    assert (made.id, made.name, made.tag.label) == ("b2", "second", "blue")
    assert (made.weight, made.tag.color) == (0, "grey")  # N knows neither: defaults
    box = NewBox(id="b3", name="third", tag=NewTag(label="x", color="pink"), weight=7)
    assert box.rename("3rd") == "third"
    assert box.name == "3rd"
    box.save()  # run by N, stored by N's code
    assert stored_version(old.store, "b3")[0] == "1.0"
    loaded = NewBox.load("b3")
    assert (loaded.name, loaded.tag.label) == ("3rd", "x")
    assert RAN == [("N", "make"), ("N", "rename"), ("N", "save"), ("N", "load")]
    # N+1 sent only what N reads (its target is the fleet's pins), N decoded it all
    assert versions_sent(new) == {("Box", "1.0"), ("Tag", "1.0")}
    assert all(m["manifest"] == NEW for m in new.wire.sent if "op" in m)  # its own manifest
    assert versions_sent(old) == {("Box", "1.0"), ("Tag", "1.0")}


def test_an_instance_call_on_an_older_peer_keeps_the_fields_it_does_not_know(
        services: tuple[Service, Service]) -> None:
    box = NewBox(id="b4", name="fourth", tag=NewTag(label="x", color="pink"), weight=7)
    box.rename("4th")
    assert (box.name, box.weight, box.tag.color) == ("4th", 7, "pink")


def test_plain_calls_and_casts_carry_objects_both_ways(
        services: tuple[Service, Service]) -> None:
    old, new = services
    new_box = NewBox(id="n1", name="from N+1", tag=NewTag(label="t", color="teal"), weight=3)
    old_box = OldBox(id="o1", name="from N", tag=OldTag(label="u"))

    reply = new.call("N", new_box, [new_box.tag], {"nested": {"box": new_box}})
    got_box, got_tags, got_map = old.inbox[-1]
    assert type(got_box) is OldBox and (got_box.id, got_box.name) == ("n1", "from N+1")
    assert type(got_tags[0]) is OldTag and got_map["nested"]["box"].tag.label == "t"
    assert reply["seen_by"] == "N"
    back = reply["objects"][0]
    assert type(back) is NewBox and (back.id, back.name, back.tag.label) == \
        ("n1", "from N+1", "t")

    reply = old.call("N+1", old_box)
    got = new.inbox[-1][0]
    assert type(got) is NewBox and (got.name, got.weight, got.tag.color) == \
        ("from N", 0, "grey")
    assert reply["seen_by"] == "N+1" and type(reply["objects"][0]) is OldBox

    new.cast("N", new_box)
    old.cast("N+1", old_box)
    wait_for(lambda: len(old.inbox) == 2 and len(new.inbox) == 2, "both casts delivered")
    assert type(old.inbox[1][0]) is OldBox and old.inbox[1][0].name == "from N+1"
    assert type(new.inbox[1][0]) is NewBox and new.inbox[1][0].name == "from N"

    # on the wire: nothing newer than N reads, in either direction
    assert versions_sent(new) == {("Box", "1.0"), ("Tag", "1.0")}
    assert versions_sent(old) == {("Box", "1.0"), ("Tag", "1.0")}


def test_a_version_too_new_for_n_is_backported_by_n_plus_1(
        services: tuple[Service, Service]) -> None:
    old, new = services
    box = NewBox(id="n2", name="newest", tag=NewTag(label="t", color="teal"), weight=9)
    # sent at 1.1 regardless of the pins (as a peer that ignored them would)
    reply = new.call("N", box, manifest=NEW)
    assert ("Box", "1.1") in envelopes(new.wire.sent[0])
    got = old.inbox[-1][0]
    assert type(got) is OldBox and (got.id, got.name, got.tag.label) == ("n2", "newest", "t")
    backports = [m for m in new.wire.handled if m.get("op") == "object_backport"]
    assert len(backports) == 1 and backports[0]["manifest"] == OLD
    assert reply["objects"][0].name == "newest"
    # by cast too
    new.cast("N", box, manifest=NEW)
    wait_for(lambda: len(old.inbox) == 2, "the cast delivered")
    assert old.inbox[1][0].tag.label == "t"
    # a version no peer knows: a clear error, no loop
    future = to_primitive(box)
    future[KEY_VERSION] = "9.0"
    with pytest.raises(RpcError, match="cannot backport"):
        old.serializer.deserialize(future)


@pytest.mark.parametrize("ending", ["leaves", "goes stale"])
def test_the_pin_rises_live_once_release_n_is_gone(
        services: tuple[Service, Service], ending: str) -> None:
    old, new = services
    serializer, store, indirection = new.serializer, new.store, new.indirection
    before = NewBox(id="s1", name="before", tag=NewTag(label="a", color="red"), weight=4)
    store.create(before)  # N+1 stores for the whole fleet: at 1.0 while N is live
    assert stored_version(store, "s1")[0] == "1.0"
    assert old.store.get(OldBox, "s1").name == "before"
    new.call("N+1", before)  # N+1 to N+1 on the wire: still 1.0 (N may be the reader)
    assert versions_sent(new) == {("Box", "1.0"), ("Tag", "1.0")}

    old.stop(leave=ending == "leaves")  # N is gone (deleted, or silent until stale)
    wait_for(lambda: new.membership.pins == NEW, f"the pin raised after N {ending}",
             within=STALE_AFTER + WAIT)
    assert new.membership.running and new.membership.beats > 0
    # the same objects, nothing restarted: new writes and sends are at 1.1
    assert (new.serializer, new.store, new.indirection) == (serializer, store, indirection)
    assert store.storage_versions == NEW
    after = NewBox(id="s2", name="after", tag=NewTag(label="b", color="blue"), weight=5)
    store.create(after)
    version, data = stored_version(store, "s2")
    assert version == "1.1" and data["weight"] == 5
    assert data["tag"][KEY_VERSION] == "1.1" and data["tag"][KEY_DATA]["color"] == "blue"
    assert stored_version(store, "s1")[0] == "1.0"  # written before: left as it was
    new.wire.clear()
    reply = new.call("N+1", after)
    assert versions_sent(new) == {("Box", "1.1"), ("Tag", "1.1")}
    echoed = reply["objects"][0]
    assert (echoed.weight, echoed.tag.color) == (5, "blue")
    assert store.get(NewBox, "s2").tag.color == "blue"
