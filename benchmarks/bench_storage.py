"""Storage benchmarks: the Store against SQLAlchemy Core by hand, in one run.

1. Create then read N applications (the reference model, default 10,000)
   through ``rollsafe.storage.Store`` on SQLite, and the same rows with the
   same statements written directly with SQLAlchemy Core, alternating the two;
   prints the ratio (target: the Store at most 1.5x the time of Core).
2. Streams a large table (default 1,000,000 rows) through ``Store.stream`` in
   a fresh process and prints rows/s at several sizes (time should be linear
   in rows) and that process's peak RSS (target under 150 MB).
3. With ``--postgres URL`` / ``--redis URL``, the create/read figures there.

    python benchmarks/bench_storage.py [--apps 10000] [--rows 1000000]
        [--postgres postgresql://...] [--redis redis://...]

A benchmark, not a test: it reports; it only checks that both sides stored
and read the same number of rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sqlalchemy as sa  # noqa: E402

import model  # noqa: E402
import rollsafe  # noqa: E402
from rollsafe.storage import Collection, Store, open_backend  # noqa: E402

APPS = Collection(model.Application, key="id", indexes=["name", "status"])


def make_apps(count: int) -> list[model.Application]:
    """``count`` distinct applications (built before any timing)."""
    out = []
    for i in range(count):
        app = model.make_app()
        app.id = uuid.UUID(int=i + 1)
        app.name = f"app-{i:07d}"
        out.append(app)
    return out


def store_create_read(url: str, apps: list[model.Application]) -> tuple[float, float]:
    """Seconds to create every app in one unit of work, then get each one."""
    backend = open_backend(url, **({"key_prefix": f"bench{uuid.uuid4().hex[:6]}"}
                                   if url.startswith("redis") else {}))
    store = Store(backend, [APPS])
    backend.drop_all([APPS])
    store.ensure_schema()
    start = time.perf_counter()
    with store.unit_of_work() as uow:
        for app in apps:
            uow.create(app)
    created = time.perf_counter() - start
    start = time.perf_counter()
    with store.unit_of_work() as uow:
        got = [uow.get(model.Application, app.id) for app in apps]
    read = time.perf_counter() - start
    assert len(got) == len(apps) and got[-1].name == apps[-1].name
    backend.drop_all([APPS])
    backend.close()
    return created, read


def core_create_read(url: str, apps: list[model.Application]) -> tuple[float, float]:
    """The same rows and statements with SQLAlchemy Core by hand: each app's
    column values built from its attributes and INSERTed, then a SELECT by
    primary key per app turned into a dict (no validation, no versions, no
    objects rebuilt: the cheapest honest hand-written layer)."""
    from rollsafe.storage.sql import SqlBackend

    backend = SqlBackend(url)
    table = backend.table_map(APPS).table
    backend.drop_all([APPS])
    backend.ensure_schema([APPS])
    insert = table.insert()
    start = time.perf_counter()
    rows = []
    with backend.engine.begin() as conn:
        for app in apps:  # what a hand-written data layer does: object -> row -> INSERT
            row = {
                "id": str(app.id), "name": app.name, "description": app.description,
                "owner": app.owner, "replicas": app.replicas,
                "restart_count": app.restart_count,
                "created_at": app.created_at, "created_at__utcoffset": 0,
                "updated_at": app.updated_at, "updated_at__utcoffset": 0,
                "status": app.status, "tags": list(app.tags), "metadata": dict(app.metadata),
                "source": {"kind": app.source.kind, "url": app.source.url,
                           "revision": app.source.revision},
                "components": [{"name": c.name, "image": c.image, "replicas": c.replicas,
                                "ports": list(c.ports)} for c in app.components],
                "rs_version": "1.1", "rs_revision": 1,
            }
            conn.execute(insert, row)
            rows.append(row)
    created = time.perf_counter() - start
    select = sa.select(table).where(table.c.id == sa.bindparam("key"))
    start = time.perf_counter()
    with backend.engine.begin() as conn:
        got = [dict(conn.execute(select, {"key": row["id"]}).mappings().one()) for row in rows]
    read = time.perf_counter() - start
    assert len(got) == len(rows)
    backend.drop_all([APPS])
    backend.close()
    return created, read


STREAM_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {here!r})
import model
from rollsafe.storage import Collection, Store, open_backend
apps = Collection(model.Application, key="id", indexes=["name", "status"])
store = Store(open_backend({url!r}), [apps])
marks = {marks!r}
seen, start, out = 0, time.perf_counter(), []
for app in store.stream(model.Application, batch=1000):
    seen += 1
    if seen in marks:
        out.append((seen, time.perf_counter() - start))
# VmHWM is this process image's own peak; ru_maxrss would also count the
# parent's memory at fork time (Linux keeps it across exec).
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
peak = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"rows": seen, "marks": out, "peak_rss_mb": peak}}))
"""


def fill_table(url: str, rows: int) -> None:
    """``rows`` valid records, written in bulk (setup, not timed)."""
    from rollsafe.storage.sql import SqlBackend

    backend = SqlBackend(url)
    tmap = backend.table_map(APPS)
    backend.drop_all([APPS])
    backend.ensure_schema([APPS])
    template = rollsafe.to_primitive(model.make_app())["versioned_object.data"]
    columns = tmap.by_version["1.1"]
    base: dict[str, Any] = {"rs_version": "1.1", "rs_revision": 1}
    for fname, value in template.items():
        columns[fname].to_row(value, base)
    insert = tmap.table.insert()
    with backend.engine.begin() as conn:
        for start in range(0, rows, 20_000):
            batch = []
            for i in range(start, min(rows, start + 20_000)):
                row = dict(base)
                row["id"] = str(uuid.UUID(int=i + 1))
                row["name"] = f"app-{i:07d}"
                batch.append(row)
            conn.execute(insert, batch)
    # The bulk fill left a large write-ahead log; fold it into the database
    # so the streaming process starts as a service would (outside any
    # transaction, hence the driver connection).
    raw = backend.engine.raw_connection()
    try:
        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    backend.close()


def main() -> int:
    """Run the benchmarks and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres")
    parser.add_argument("--redis")
    args = parser.parse_args()

    apps = make_apps(args.apps)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        print(f"create then read {args.apps} apps on SQLite (file, WAL), "
              f"best of {args.rounds} alternating rounds")
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):
            for name, fn in (("store", store_create_read), ("core", core_create_read)):
                created, read = fn(url, make_apps(args.apps))
                old = best.get(name)
                if old is None or created + read < sum(old):
                    best[name] = (created, read)
        (sc, sr), (cc, cr) = best["store"], best["core"]
        print(f"  {'':24s} {'create s':>9s} {'read s':>9s} {'total s':>9s}")
        print(f"  {'rollsafe Store':24s} {sc:9.3f} {sr:9.3f} {sc + sr:9.3f}")
        print(f"  {'SQLAlchemy Core by hand':24s} {cc:9.3f} {cr:9.3f} {cc + cr:9.3f}")
        ratio = (sc + sr) / (cc + cr)
        print(f"  ratio Store / Core: {ratio:.2f} (target <= 1.5: "
              f"{'met' if ratio <= 1.5 else 'not met'}); create {sc / cc:.2f}, "
              f"read {sr / cr:.2f}")

        for label, other in (("PostgreSQL", args.postgres), ("Redis", args.redis)):
            if other:
                created, read = store_create_read(other, apps)
                line = f"  {label}: Store create {created:.3f} s, read {read:.3f} s"
                if label == "PostgreSQL":
                    c2, r2 = core_create_read(other, apps)
                    line += f"; Core by hand {c2:.3f} s + {r2:.3f} s; ratio " \
                            f"{(created + read) / (c2 + r2):.2f}"
                print(line)

        print()
        print(f"stream {args.rows} rows through Store.stream (batch 1000) in a fresh process")
        fill_table(url, args.rows)
        marks = sorted({m for m in (args.rows // 10, args.rows // 2, args.rows) if m})
        child = STREAM_CHILD.format(here=str(HERE), url=url, marks=set(marks))
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                             check=True).stdout
        report = json.loads(out)
        for seen, seconds in report["marks"]:
            print(f"  {seen:>9d} rows in {seconds:7.2f} s: {seen / seconds:9.0f} rows/s")
        peak = report["peak_rss_mb"]
        print(f"  peak RSS of the streaming process: {peak:.0f} MB (target < 150 MB: "
              f"{'met' if peak < 150 else 'not met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
