"""RPC benchmarks: remote calls through a conductor, and the serializer against ovo's.

1. Remote methods called through ``RemoteIndirection`` -> ``Conductor``: a
   class call and an instance call, each with a small object and with the
   spec's reference Application tree (``model.py``), on the in-process
   transport, and over RabbitMQ (``OsloMessagingTransport``) with
   ``--rabbit URL``, the conductor then running in a child process as it
   would in a deployment. Sequential calls from one thread (calls/s, median
   and p99 latency), the same calls from several client threads at once
   (throughput), and casts of the Application tree (sent/s, handled/s).
2. The serializer's cost per object tree: rollsafe's ``ObjectSerializer``
   against oslo.versionedobjects' ``VersionedObjectSerializer`` on the same
   tree (``shared/bench/ovo_anchor.py``), at the current versions and
   backported to a pinned older manifest, alternated round by round as in
   ``bench_objects.py``, with each ratio (ovo time / rollsafe time).

    python benchmarks/bench_rpc.py [--rounds 3] [--seconds 0.5] [--threads 4]
        [--rabbit rabbit://USER:PASS@HOST:PORT/] [--ovo-anchor PATH]

A benchmark, not a test: it reports; before timing it only checks that each
call returned what it should and that both serializers saw the same data.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import select
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import model  # noqa: E402
import rollsafe  # noqa: E402
from bench_objects import DEFAULT_ANCHOR, TARGET_RATIO, load_anchor, run_pairs  # noqa: E402
from rollsafe import (  # noqa: E402
    History,
    NestedVersion,
    Version,
    VersionedObject,
    remotable,
    remotable_classmethod,
)
from rollsafe.rpc import (  # noqa: E402
    Conductor,
    InProcessTransport,
    ObjectSerializer,
    RemoteIndirection,
    Transport,
)

#: The exchange of every RabbitMQ topic of this benchmark.
EXCHANGE = "rollsafe-bench"
#: How the parent hands the broker URL to its conductor child (not on argv,
#: where ``ps`` would show the credentials).
URL_VARIABLE = "ROLLSAFE_BENCH_RABBIT_URL"
#: Seconds any call gets before it is an error (not a figure).
CALL_TIMEOUT = 30.0
#: The older manifest a pinned fleet reads: Application before restart_count.
PINNED = {"Application": "1.0", "Component": "1.0", "Source": "1.0"}


class AppDesk(VersionedObject, registry=model.bench):
    """The benchmark's remotable object: a name and a visit counter, and
    optionally the reference Application, so that an instance call carries
    the whole seven-object tree there and back."""

    VERSIONS = History(Version("1.0", "Initial version", NestedVersion("app", "1.1")))

    name: str
    visits: int = 0
    app: model.Application | None = None

    @remotable
    def visit(self) -> int:
        """Count a visit on the conductor; the caller's copy takes the count."""
        self.visits += 1
        return self.visits

    @remotable_classmethod
    def open(cls, name: str) -> AppDesk:
        """A fresh desk: a small object back."""
        return cls(name=name)

    @remotable_classmethod
    def fetch(cls, name: str) -> model.Application:
        """The reference Application: a seven-object tree back."""
        app = model.make_app()
        app.name = name
        return app


class CastSink:
    """The handler of the cast topic: decodes every cast tree, and answers
    ``{"op": "count"}`` with how many it has decoded so far."""

    def __init__(self) -> None:
        self.serializer = ObjectSerializer(model.bench)
        self.count = 0
        self.lock = threading.Lock()

    def handle(self, message: dict[str, Any]) -> int | None:
        """One message from the transport."""
        if message.get("op") == "count":
            return self.count
        self.serializer.deserialize(message["object"])
        with self.lock:
            self.count += 1
        return None


# --- timing ------------------------------------------------------------------


@dataclass
class Figures:
    """Latencies of one operation (seconds) and the wall time they took."""

    latencies: list[float]
    elapsed: float

    @property
    def rate(self) -> float:
        """Operations per second."""
        return len(self.latencies) / self.elapsed

    def percentile_us(self, q: float) -> float:
        """The ``q``-th percentile latency (nearest rank), in microseconds."""
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1] * 1e6


def timed_calls(op: Callable[[], Any], seconds: float, least: int = 5) -> list[float]:
    """Latency of each call of ``op``, called back to back for ``seconds``
    (and at least ``least`` times)."""
    latencies = []
    end = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        op()
        done = time.perf_counter()
        latencies.append(done - start)
        if done >= end and len(latencies) >= least:
            return latencies


def sequential(make_op: Callable[[], Callable[[], Any]], rounds: int,
               seconds: float) -> Figures:
    """``rounds`` runs of back-to-back calls from this thread, pooled."""
    op = make_op()
    timed_calls(op, seconds / 5)  # warm up
    latencies: list[float] = []
    for _ in range(rounds):
        latencies += timed_calls(op, seconds)
    return Figures(latencies, sum(latencies))


def concurrent(make_op: Callable[[], Callable[[], Any]], threads: int, rounds: int,
               seconds: float) -> Figures:
    """``threads`` client threads calling back to back at once (each with its
    own objects), ``rounds`` times; throughput over the wall time."""
    latencies: list[float] = []
    elapsed = 0.0
    for _ in range(rounds):
        round_latencies, round_elapsed = _concurrent_round(
            [make_op() for _ in range(threads)], seconds)
        latencies += round_latencies
        elapsed += round_elapsed
    return Figures(latencies, elapsed)


def _concurrent_round(ops: list[Callable[[], Any]], seconds: float
                      ) -> tuple[list[float], float]:
    """One thread per op, started together: (every latency, wall time)."""
    results: list[list[float]] = [[] for _ in ops]
    barrier = threading.Barrier(len(ops) + 1)

    def client(i: int) -> None:
        barrier.wait()
        results[i] = timed_calls(ops[i], seconds)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(len(ops))]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return [lat for result in results for lat in result], time.perf_counter() - start


def casts(transport: Transport, topic: str, rounds: int,
          seconds: float) -> tuple[float, float]:
    """Casts of the Application tree for ``seconds`` per round: (sent/s, and
    handled/s from the first send until the receiver had decoded them all)."""
    serializer = ObjectSerializer(model.bench)
    app = model.make_app()
    sent_total = handled_time = send_time = 0.0
    for _ in range(rounds):
        base = transport.call(topic, {"op": "count"}, timeout=CALL_TIMEOUT)
        sent = 0
        start = time.perf_counter()
        end = start + seconds
        while True:
            transport.cast(topic, {"op": "tree", "object": serializer.serialize(app)})
            sent += 1
            if time.perf_counter() >= end:
                break
        send_time += time.perf_counter() - start
        while transport.call(topic, {"op": "count"}, timeout=CALL_TIMEOUT) - base < sent:
            time.sleep(0.0005)
        handled_time += time.perf_counter() - start
        sent_total += sent
    return sent_total / send_time, sent_total / handled_time


# --- remote calls ------------------------------------------------------------


def call_ops() -> list[tuple[str, Callable[[], Callable[[], Any]]]]:
    """(name, factory of a call) for each remote call timed; each factory
    makes the objects its call uses, so client threads share none."""

    def class_small() -> Callable[[], Any]:
        return lambda: AppDesk.open("front")

    def class_tree() -> Callable[[], Any]:
        return lambda: AppDesk.fetch("my-app")

    def instance_small() -> Callable[[], Any]:
        return AppDesk(name="front").visit

    def instance_tree() -> Callable[[], Any]:
        return AppDesk(name="front", app=model.make_app()).visit

    return [
        ("class call, small object back", class_small),
        ("class call, Application tree back", class_tree),
        ("instance call, small object", instance_small),
        ("instance call, object carrying the tree", instance_tree),
    ]


def check_calls() -> None:
    """Each remote call returns what it should (through the indirection)."""
    assert isinstance(AppDesk.open("front"), AppDesk)
    app = AppDesk.fetch("checked")
    expected = model.make_app()
    expected.name = "checked"
    assert app == expected, "the tree came back different"
    desk = AppDesk(name="front", app=model.make_app())
    assert (desk.visit(), desk.visit()) == (1, 2) and desk.visits == 2
    assert desk.app == model.make_app()


@dataclass
class TransportFigures:
    """What one transport measured."""

    sequential: dict[str, Figures]
    concurrent: dict[str, Figures]
    sent_rate: float
    handled_rate: float


def measure_transport(transport: Transport, topic: str, args: argparse.Namespace
                      ) -> TransportFigures:
    """Every figure of one transport, with ``model.bench``'s remote calls
    sent through it to a conductor serving ``topic``."""
    model.bench.indirection = RemoteIndirection(transport, model.bench, topic=topic,
                                                timeout=CALL_TIMEOUT)
    try:
        check_calls()
        ops = call_ops()
        seq = {name: sequential(make, args.rounds, args.seconds) for name, make in ops}
        conc = {name: concurrent(make, args.threads, args.rounds, args.seconds)
                for name, make in ops}
        sent, handled = casts(transport, f"{topic}-casts", args.rounds, args.seconds)
    finally:
        model.bench.indirection = None
    return TransportFigures(seq, conc, sent, handled)


def run_inprocess(args: argparse.Namespace) -> TransportFigures:
    """The figures of the in-process transport (conductor in this process)."""
    transport = InProcessTransport(workers=max(4, args.threads))
    try:
        Conductor(transport, model.bench, topic="conductor").start()
        transport.serve("conductor-casts", CastSink().handle)
        return measure_transport(transport, "conductor", args)
    finally:
        transport.close()


def serve_conductor(topic: str) -> int:
    """The child process of the RabbitMQ run: a conductor on ``topic`` and
    the cast sink on ``topic-casts``, until its standard input closes."""
    from rollsafe.rpc.messaging import OsloMessagingTransport

    transport = OsloMessagingTransport(os.environ[URL_VARIABLE], exchange=EXCHANGE)
    try:
        Conductor(transport, model.bench, topic=topic).start()
        transport.serve(f"{topic}-casts", CastSink().handle)
        print("ready", flush=True)
        sys.stdin.read()
    finally:
        transport.close()
    return 0


def run_rabbit(url: str, args: argparse.Namespace) -> TransportFigures:
    """The figures over RabbitMQ, the conductor in a child process."""
    from rollsafe.rpc.messaging import OsloMessagingTransport

    topic = f"bench-{uuid.uuid4().hex[:12]}"  # a fresh topic: no stale message
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-conductor", topic],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, URL_VARIABLE: url})
    assert child.stdin is not None and child.stdout is not None
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)
        if not ready or child.stdout.readline().strip() != "ready":
            sys.exit(f"the conductor process did not start (exit code {child.poll()})")
        transport = OsloMessagingTransport(url, exchange=EXCHANGE)
        try:
            return measure_transport(transport, topic, args)
        finally:
            transport.close()
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def print_transport(title: str, figures: TransportFigures, threads: int,
                    baseline: TransportFigures | None) -> None:
    """The tables of one transport; ``baseline`` adds a ratio column."""
    ratio_head = f"{'x in-process':>13s}" if baseline else ""
    print(title)
    print(f"{'sequential calls (1 client thread)':44s} {'calls/s':>9s} {'median us':>10s} "
          f"{'p99 us':>9s} {ratio_head}")
    for name, fig in figures.sequential.items():
        median = fig.percentile_us(50)
        ratio = (f"{median / baseline.sequential[name].percentile_us(50):13.1f}"
                 if baseline else "")
        print(f"{name:44s} {fig.rate:9,.0f} {median:10.1f} {fig.percentile_us(99):9.1f} "
              f"{ratio}")
    print()
    print(f"{f'concurrent calls ({threads} client threads)':44s} {'calls/s':>9s} "
          f"{'median us':>10s} {'p99 us':>9s} {'x sequential':>13s}")
    for name, fig in figures.concurrent.items():
        speedup = fig.rate / figures.sequential[name].rate
        print(f"{name:44s} {fig.rate:9,.0f} {fig.percentile_us(50):10.1f} "
              f"{fig.percentile_us(99):9.1f} {speedup:13.2f}")
    print()
    print(f"{'casts of the Application tree':44s} {'sent/s':>9s} {'handled/s':>10s}")
    print(f"{'(1 sender thread, decoded by the receiver)':44s} {figures.sent_rate:9,.0f} "
          f"{figures.handled_rate:10,.0f}")
    print()


# --- serializer ----------------------------------------------------------------


def serializer_ops(ovo: Any) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(name, ovo op, rollsafe op) for the serializer's work on one tree."""
    from oslo_versionedobjects import base as ovo_base

    o_app = ovo.make_app()
    o_app.obj_reset_changes(recursive=True)
    # An ovo project subclasses the serializer with its own base class (nova's
    # NovaObjectSerializer), so that envelopes of its namespace are accepted.
    o_ser = type("BenchObjectSerializer", (ovo_base.VersionedObjectSerializer,),
                 {"OBJ_BASE_CLASS": ovo.BenchObject})()
    o_prim = o_ser.serialize_entity(None, o_app)
    o_manifest = ovo_base.obj_tree_get_versions("Application")
    o_manifest.update(PINNED)
    o_current = ovo_base.obj_tree_get_versions("Application")
    o_old = o_app.obj_to_primitive(target_version="1.0", version_manifest=o_manifest)

    r_app = model.make_app()
    rollsafe.reset_changes(r_app, recursive=True)
    r_ser = ObjectSerializer(model.bench)
    r_prim = r_ser.serialize(r_app)
    r_old = r_ser.serialize(r_app, PINNED)
    r_current = rollsafe.version_manifest(r_app)

    # The same data on both sides, and the backport really drops the field.
    assert o_prim["versioned_object.data"]["name"] == r_prim["versioned_object.data"]["name"]
    for old in (o_old, r_old):
        assert old["versioned_object.version"] == "1.0"
        assert "restart_count" not in old["versioned_object.data"]
    assert o_ser.deserialize_entity(None, o_prim).obj_to_primitive() == o_prim
    assert r_ser.deserialize(r_prim) == r_app
    assert r_ser.serialize(r_app, r_current) == r_prim
    assert r_ser.deserialize(r_old).restart_count == 0

    return [
        ("serialize, current versions",
         lambda: o_ser.serialize_entity(None, o_app), lambda: r_ser.serialize(r_app)),
        ("deserialize, current versions",
         lambda: o_ser.deserialize_entity(None, o_prim), lambda: r_ser.deserialize(r_prim)),
        # what a conductor's reply does: the caller's manifest travels with
        # every call, and is often the current versions
        ("serialize at a manifest of the current versions",
         lambda: o_app.obj_to_primitive(target_version="1.1", version_manifest=o_current),
         lambda: r_ser.serialize(r_app, r_current)),
        ("serialize pinned to 1.0 (ovo: version_manifest)",
         lambda: o_app.obj_to_primitive(target_version="1.0", version_manifest=o_manifest),
         lambda: r_ser.serialize(r_app, PINNED)),
        ("serialize pinned to 1.0 (ovo: target_version)",
         lambda: o_app.obj_to_primitive(target_version="1.0"),
         lambda: r_ser.serialize(r_app, PINNED)),
        ("deserialize a 1.0 payload (reference)",
         lambda: o_ser.deserialize_entity(None, o_old), lambda: r_ser.deserialize(r_old)),
    ]


def print_serializer(ovo: Any, rounds: int) -> None:
    """Time the serializer pairs and print each ratio."""
    print("serializer, one Application tree: ovo VersionedObjectSerializer vs rollsafe "
          "ObjectSerializer")
    print(f"{'operation':52s} {'ovo us':>9s} {'rollsafe us':>12s} {'ratio':>7s}  "
          f"target {TARGET_RATIO:.0f}x (objects')")
    for name, o_us, r_us in run_pairs(serializer_ops(ovo), rounds):
        ratio = o_us / r_us
        if "(reference)" in name:
            mark = "not a target: ovo leaves the new field unset, rollsafe fills it"
        elif ratio >= TARGET_RATIO:
            mark = "ok"
        else:
            mark = f"BELOW ({TARGET_RATIO / ratio:.2f}x short)"
        print(f"{name:52s} {o_us:9.2f} {r_us:12.2f} {ratio:7.1f}  {mark}")


def main() -> int:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of each remote-call measurement (default 3)")
    parser.add_argument("--seconds", type=float, default=0.5,
                        help="seconds each remote-call round lasts (default 0.5)")
    parser.add_argument("--threads", type=int, default=4,
                        help="client threads of the concurrent run (default 4)")
    parser.add_argument("--serializer-rounds", type=int, default=7,
                        help="rounds of each serializer pair (default 7)")
    parser.add_argument("--rabbit", metavar="URL",
                        help="also run over RabbitMQ: rabbit://USER:PASS@HOST:PORT/")
    parser.add_argument("--ovo-anchor", type=Path, default=DEFAULT_ANCHOR)
    parser.add_argument("--no-ovo", action="store_true",
                        help="leave out the serializer comparison (no ovo anchor at hand)")
    parser.add_argument("--serve-conductor", metavar="TOPIC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # ovo and oslo.messaging deprecation noise
    # py-amqp warns of a consumer cancelled while a channel closes at the end
    logging.getLogger("amqp").setLevel(logging.ERROR)
    if args.serve_conductor:
        return serve_conductor(args.serve_conductor)

    ovo = None if args.no_ovo else load_anchor(args.ovo_anchor)
    from importlib import metadata

    messaging = (f", oslo.messaging {metadata.version('oslo.messaging')}"
                 if args.rabbit else "")
    print(f"Python {platform.python_version()} on {platform.platform()}; "
          f"rollsafe {rollsafe.__version__}, oslo.versionedobjects "
          f"{metadata.version('oslo.versionedobjects')}{messaging}; rounds={args.rounds} "
          f"x {args.seconds} s, threads={args.threads}, cpus={os.cpu_count()}")
    print()
    inprocess = run_inprocess(args)
    print_transport("remote calls: in-process transport (conductor in this process)",
                    inprocess, args.threads, None)
    if args.rabbit:
        rabbit = run_rabbit(args.rabbit, args)
        print_transport("remote calls: RabbitMQ through oslo.messaging (conductor in a "
                        "child process)", rabbit, args.threads, inprocess)
    if ovo is None:
        print("serializer comparison with ovo left out (--no-ovo)")
    else:
        print_serializer(ovo, args.serializer_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
