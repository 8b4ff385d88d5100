"""Object benchmarks: rollsafe against oslo.versionedobjects, in one run.

Times the reference model of the spec (an Application with a Source and five
Components; ``model.py`` here, ``shared/bench/ovo_anchor.py`` for ovo) on the
operations the spec names, alternating the two libraries round by round so
that machine noise hits both alike, and prints each ratio (ovo time /
rollsafe time; the target is at least 10). When msgspec is installed it also
prints rollsafe against msgspec encoding and decoding the same data (the
spec's moonshot: within 3x). Then the import time of ``rollsafe`` and the
check that importing it loads no database, messaging or web library.

    python benchmarks/bench_objects.py [--rounds 7] [--ovo-anchor PATH]

This is a benchmark, not a test: it reports, it asserts only that both
libraries computed the same thing before timing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import model  # noqa: E402
import rollsafe  # noqa: E402

DEFAULT_ANCHOR = HERE.parent.parent / "shared" / "bench" / "ovo_anchor.py"
TARGET_RATIO = 10.0
FORBIDDEN = ("sqlalchemy", "redis", "psycopg", "oslo_messaging", "oslo_versionedobjects",
             "kombu", "eventlet", "starlette", "fastapi", "uvicorn", "httpx", "alembic")


def load_anchor(path: Path) -> Any:
    """Import the ovo side of the model from its file."""
    if not path.exists():
        sys.exit(f"ovo anchor not found at {path}; pass --ovo-anchor PATH")
    spec = importlib.util.spec_from_file_location("ovo_anchor", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_op_us(fn: Callable[[], Any], budget_s: float = 0.05) -> float:
    """Microseconds per call of ``fn``, over about ``budget_s``."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s / 5:
            break
        n *= 2
    n = max(1, int(n * budget_s / elapsed))
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def build_ops(ovo: Any) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(name, ovo op, rollsafe op) for every operation the spec names."""
    # ovo side, as in the anchor.
    o_app = ovo.make_app()
    o_app.obj_reset_changes(recursive=True)
    o_prim = o_app.obj_to_primitive()
    o_src, o_comps = ovo.make_source(), ovo.make_components()
    o_changed = ovo.make_app()
    o_changed.obj_reset_changes(recursive=True)

    # rollsafe side.
    r_app = model.make_app()
    rollsafe.reset_changes(r_app, recursive=True)
    r_prim = rollsafe.to_primitive(r_app)
    r_src, r_comps = model.make_source(), model.make_components()
    r_changed = model.make_app()
    rollsafe.reset_changes(r_changed, recursive=True)
    codec = rollsafe.JsonCodec(model.Application)

    # Same data on both sides before anything is timed.
    assert json.loads(json.dumps(o_prim))["versioned_object.data"]["name"] == \
        r_prim["versioned_object.data"]["name"]
    assert "restart_count" not in rollsafe.to_primitive(r_app, "1.0")["versioned_object.data"]
    assert "restart_count" not in o_app.obj_to_primitive(
        target_version="1.0")["versioned_object.data"]
    assert rollsafe.from_primitive(r_prim, model.Application) == r_app
    assert codec.decode(codec.encode(r_app)) == r_app

    def o_set3() -> Any:
        o_changed.name = "renamed"
        o_changed.replicas = 5
        o_changed.status = "stopped"
        return o_changed.obj_what_changed()

    def r_set3() -> Any:
        r_changed.name = "renamed"
        r_changed.replicas = 5
        r_changed.status = "stopped"
        return rollsafe.what_changed(r_changed)

    o_set3()
    r_set3()
    assert o_changed.obj_what_changed() == rollsafe.what_changed(r_changed) == \
        {"name", "replicas", "status"}

    app_cls = model.Application
    to_p, from_p = rollsafe.to_primitive, rollsafe.from_primitive
    return [
        ("construct Application (children pre-built)",
         lambda: ovo.make_app(o_src, o_comps), lambda: model.make_app(r_src, r_comps)),
        ("construct full tree (1 + 1 Source + 5 Component)",
         ovo.make_app, model.make_app),
        ("to primitive", o_app.obj_to_primitive, lambda: to_p(r_app)),
        ("from primitive",
         lambda: ovo.Application.obj_from_primitive(o_prim), lambda: from_p(r_prim, app_cls)),
        ("backport to the previous version (1.0)",
         lambda: o_app.obj_to_primitive(target_version="1.0"), lambda: to_p(r_app, "1.0")),
        ("what changed (3 fields changed)",
         o_changed.obj_what_changed, lambda: rollsafe.what_changed(r_changed)),
        ("set 3 fields + what changed", o_set3, r_set3),
        ("JSON round trip (ovo: json; rollsafe: JsonCodec)",
         lambda: ovo.Application.obj_from_primitive(
             json.loads(json.dumps(o_app.obj_to_primitive()))),
         lambda: codec.decode(codec.encode(r_app))),
        ("JSON round trip, both through stdlib json (reference)",
         lambda: ovo.Application.obj_from_primitive(
             json.loads(json.dumps(o_app.obj_to_primitive()))),
         lambda: from_p(json.loads(json.dumps(to_p(r_app))), app_cls)),
    ]


def msgspec_ops() -> list[tuple[str, Callable[[], Any], Callable[[], Any]]] | None:
    """(name, msgspec op, rollsafe op) pairs, or None without msgspec."""
    try:
        import msgspec
    except ImportError:
        return None
    from msgspec_model import MApplication, MComponent, MSource

    r_app = model.make_app()
    rollsafe.reset_changes(r_app, recursive=True)
    m_app = MApplication(
        id=model.APP_ID, name=r_app.name, description=r_app.description, owner=None,
        replicas=3, restart_count=7, created_at=model.NOW, updated_at=model.NOW,
        status="running", tags=list(r_app.tags), metadata=dict(r_app.metadata),
        source=MSource(kind="git", url=r_app.source.url, revision=r_app.source.revision),
        components=[MComponent(name=c.name, image=c.image, replicas=c.replicas,
                               ports=list(c.ports)) for c in r_app.components])
    m_bytes = msgspec.json.encode(m_app)
    codec = rollsafe.JsonCodec(model.Application)
    r_bytes = codec.encode(r_app)
    decoder = msgspec.json.Decoder(MApplication)
    return [
        ("JSON encode (bytes)", lambda: msgspec.json.encode(m_app), lambda: codec.encode(r_app)),
        ("JSON decode (bytes)", lambda: decoder.decode(m_bytes), lambda: codec.decode(r_bytes)),
    ]


def run_pairs(pairs: list[tuple[str, Callable[[], Any], Callable[[], Any]]],
              rounds: int) -> list[tuple[str, float, float]]:
    """Median microseconds of each side, measured alternately."""
    out = []
    for name, left, right in pairs:
        for _ in range(200):  # warm up
            left()
            right()
        lefts, rights = [], []
        for _ in range(rounds):
            lefts.append(per_op_us(left))
            rights.append(per_op_us(right))
        out.append((name, statistics.median(lefts), statistics.median(rights)))
    return out


def import_time_ms(runs: int = 15) -> tuple[float, float, list[str]]:
    """Median ms to import rollsafe in a fresh interpreter, beyond the
    interpreter's own start-up; and which forbidden modules it loaded."""
    code = ("import sys,time; t=time.perf_counter(); import {mod}; "
            "print(time.perf_counter()-t); print(','.join(sorted(sys.modules)))")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    times = []
    loaded: list[str] = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code.format(mod="rollsafe")],
                             capture_output=True, text=True, check=True, env=env).stdout
        first, modules = out.splitlines()
        times.append(float(first) * 1000)
        loaded = [m for m in modules.split(",") if m.split(".")[0] in FORBIDDEN]
    ovo_times = []
    for _ in range(max(3, runs // 3)):
        out = subprocess.run([sys.executable, "-W", "ignore", "-c",
                              code.format(mod="oslo_versionedobjects.base")],
                             capture_output=True, text=True, check=True, env=env).stdout
        ovo_times.append(float(out.splitlines()[0]) * 1000)
    return statistics.median(times), statistics.median(ovo_times), loaded


def main() -> int:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ovo-anchor", type=Path, default=DEFAULT_ANCHOR)
    args = parser.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    ovo = load_anchor(args.ovo_anchor)
    from importlib import metadata

    print(f"Python {platform.python_version()} on {platform.platform()}; "
          f"rollsafe {rollsafe.__version__}, oslo.versionedobjects "
          f"{metadata.version('oslo.versionedobjects')}; rounds={args.rounds}")
    print()
    print(f"{'operation':52s} {'ovo us':>9s} {'rollsafe us':>12s} {'ratio':>7s}  target 10x")
    results = run_pairs(build_ops(ovo), args.rounds)
    below = 0
    targets = [r for r in results if "(reference)" not in r[0]]
    for name, o_us, r_us in results:
        ratio = o_us / r_us
        if "(reference)" in name:
            mark = "not a target: shows the codec's share"
        elif ratio >= TARGET_RATIO:
            mark = "ok"
        else:
            below += 1
            mark = f"BELOW ({TARGET_RATIO / ratio:.2f}x short)"
        print(f"{name:52s} {o_us:9.2f} {r_us:12.2f} {ratio:7.1f}  {mark}")

    extra = msgspec_ops()
    print()
    if extra is None:
        print("msgspec not installed: moonshot comparison skipped (pip install msgspec)")
    else:
        print(f"{'moonshot: rollsafe vs msgspec':52s} {'msgspec us':>9s} {'rollsafe us':>12s} "
              f"{'x msgspec':>9s}  target <= 3")
        for name, m_us, r_us in run_pairs(extra, args.rounds):
            ratio = r_us / m_us
            print(f"{name:52s} {m_us:9.2f} {r_us:12.2f} {ratio:9.1f}  "
                  f"{'ok' if ratio <= 3 else 'not met'}")

    ours, theirs, loaded = import_time_ms()
    print()
    print(f"import rollsafe: {ours:.1f} ms (target < 50 ms); "
          f"import oslo_versionedobjects.base: {theirs:.1f} ms")
    print("modules loaded by 'import rollsafe' from database/messaging/web libraries: "
          + (", ".join(loaded) if loaded else "none"))
    print()
    print(f"{len(targets) - below} of {len(targets)} target ratios meet 10x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
