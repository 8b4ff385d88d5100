"""Online data migration benchmark: rows/s and peak memory on SQLite.

A table of N ``Host`` records (5 fields) written by the previous release
(version 1.0) is migrated to the current version (1.1 adds ``rack``) three
ways, each in a fresh process on a fresh copy of the table, at three sizes
(N/4, N/2, N; default N = 200,000):

- ``rollsafe rewrite``: ``OnlineMigrations.rewrite(Host)`` run by
  ``OnlineMigrations.run`` (batches of 1000, one unit of work each), which
  ends with its read-only count of what is left;
- ``rollsafe each``: a per-record migration (``@migrations.each``) setting
  ``zone`` on every record that has none (the records already at 1.1);
- ``SQLAlchemy Core by hand``: the same rewrite with the same statements
  written directly: keyset pages of 1000 (id, revision, version), then one
  executemany UPDATE per page setting the new column, the version and the
  revision where the revision is still the one read, and a final
  ``count(*)`` of the rows left at 1.0.

Each prints rows/s and the process's peak RSS (``VmHWM``): the target is at
least 50,000 rows/s with memory flat as the table grows.

    python benchmarks/bench_migrate.py [--rows 200000] [--batch 1000]

A benchmark, not a test: it reports; it only checks that every row was
migrated.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

MODEL = '''
from rollsafe import Added, History, Registry, Version, VersionedObject, field
from rollsafe.storage import Collection

reg = Registry("benchmigrate")


class Host(VersionedObject, registry=reg):
    """A machine apps run on."""

    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Hosts sit in a rack", Added("rack", default="r0")))

    id: int = field(read_only=True)
    name: str
    zone: str | None = None
    rack: str = "r1"
    labels: dict[str, str] = field(default_factory=dict)


HOSTS = Collection(Host, key="id", name="bench_host")
'''

CHILD = '''
import json, sys, time
sys.path.insert(0, {model_dir!r})
import bench_migrate_model as m
from rollsafe.storage import Store, open_backend

URL, HOW, BATCH = {url!r}, {how!r}, {batch!r}


def peak_mb():
    # VmHWM is this process image's own peak (ru_maxrss would count the
    # parent's memory at fork time).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def by_hand():
    import sqlalchemy as sa
    from rollsafe.storage.sql import SqlBackend

    backend = SqlBackend(URL)
    table = backend.table_map(m.HOSTS).table
    engine = backend.engine
    c = table.c
    page = sa.select(c.id, c.rs_revision, c.rs_version).where(
        c.id > sa.bindparam("after")).order_by(c.id).limit(BATCH)
    update = table.update().where(
        c.id == sa.bindparam("k"), c.rs_revision == sa.bindparam("rev")).values(
        rack=sa.bindparam("v_rack"), rs_version="1.1", rs_revision=c.rs_revision + 1)
    start = time.perf_counter()
    after, done = -1, 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(page, {{"after": after}}).all()
        if not rows:
            break
        after = rows[-1][0]
        todo = [{{"k": r[0], "rev": r[1], "v_rack": "r0"}} for r in rows if r[2] == "1.0"]
        if todo:
            with engine.begin() as conn:
                result = conn.execute(update, todo)
            assert result.rowcount == len(todo)
            done += len(todo)
        if len(rows) < BATCH:
            break
    with engine.begin() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(table).where(
            c.rs_version == "1.0")).scalar()
    seconds = time.perf_counter() - start
    return done, left, seconds


def by_rollsafe():
    from rollsafe.upgrade import OnlineMigrations

    store = Store(open_backend(URL), [m.HOSTS])
    migrations = OnlineMigrations("bench")
    if HOW == "rewrite":
        migrations.rewrite(m.Host)
    else:
        @migrations.each(m.Host, name="zone", needs=lambda h: h.zone is None)
        def zone(host):
            host.zone = "zone-a"
    start = time.perf_counter()
    report = migrations.run(store, batch_size=BATCH)
    seconds = time.perf_counter() - start
    assert report.exit_code == 0, report.to_dict()
    return report.done, report.remaining, seconds


done, left, seconds = by_hand() if HOW == "core" else by_rollsafe()
print(json.dumps({{"done": done, "left": left, "seconds": seconds, "peak_mb": peak_mb()}}))
'''


def fill(path: Path, model_dir: Path, rows: int, version: str) -> None:
    """A SQLite file of ``rows`` hosts stored at ``version``, written in
    bulk with the backend's own column layout (setup, not timed)."""
    sys.path.insert(0, str(model_dir))
    import bench_migrate_model as m

    from rollsafe.objects.api import to_primitive
    from rollsafe.storage.sql import SqlBackend

    backend = SqlBackend(f"sqlite:///{path}")
    tmap = backend.table_map(m.HOSTS)
    backend.ensure_schema([m.HOSTS])
    columns = tmap.by_version[version]
    insert = tmap.table.insert()
    manifest = {"Host": version}
    with backend.engine.begin() as conn:
        for start in range(0, rows, 20_000):
            batch = []
            for i in range(start, min(rows, start + 20_000)):
                host = m.Host(id=i + 1, name=f"host-{i:07d}", labels={"row": str(i % 10)})
                data = to_primitive(host, manifest=manifest)["versioned_object.data"]
                row: dict[str, Any] = {"rs_version": version, "rs_revision": 1}
                for fname, value in data.items():
                    columns[fname].to_row(value, row)
                batch.append(row)
            conn.execute(insert, batch)
    raw = backend.engine.raw_connection()
    try:  # fold the bulk fill's write-ahead log into the database file
        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    backend.close()


def run_child(model_dir: Path, db: Path, how: str, batch: int) -> dict[str, Any]:
    """One migration in a fresh process; its figures."""
    code = CHILD.format(model_dir=str(model_dir), url=f"sqlite:///{db}", how=how, batch=batch)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"{how} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    sizes = sorted({max(1, args.rows // 4), max(1, args.rows // 2), args.rows})
    ways = (("rewrite", "rollsafe rewrite", "1.0"), ("each", "rollsafe each", "1.1"),
            ("core", "SQLAlchemy Core by hand", "1.0"))
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp)
        (model_dir / "bench_migrate_model.py").write_text(MODEL, encoding="utf-8")
        for size in sizes:
            masters = {}
            for version in ("1.0", "1.1"):
                masters[version] = model_dir / f"master-{size}-{version}.db"
                fill(masters[version], model_dir, size, version)
            for how, _, version in ways:
                db = model_dir / f"run-{how}.db"
                shutil.copyfile(masters[version], db)
                result = run_child(model_dir, db, how, args.batch)
                if (result["done"], result["left"]) != (size, 0):
                    raise SystemExit(f"{how} migrated {result['done']} of {size} rows, "
                                     f"{result['left']} left")
                results[(how, size)] = result
                db.unlink()
            for path in masters.values():
                path.unlink()

    print(f"online data migration on SQLite (file, WAL): Host records, batches of "
          f"{args.batch}, each run in a fresh process on a fresh table")
    print(f"  {'':26s}" + "".join(f"{f'{n:,} rows':>24s}" for n in sizes))
    for how, label, _ in ways:
        cells = []
        for size in sizes:
            r = results[(how, size)]
            cells.append(f"{size / r['seconds']:>9,.0f} rows/s {r['peak_mb']:5.0f} MB")
        print(f"  {label:26s}" + "".join(f"{c:>24s}" for c in cells))
    big = sizes[-1]
    for how, label, _ in ways[:2]:
        rate = big / results[(how, big)]["seconds"]
        ratio = results[(how, big)]["seconds"] / results[("core", big)]["seconds"]
        growth = results[(how, big)]["peak_mb"] - results[(how, sizes[0])]["peak_mb"]
        print(f"  {label}: {rate:,.0f} rows/s at {big:,} rows (target >= 50,000: "
              f"{'met' if rate >= 50_000 else 'not met'}), {ratio:.2f}x the time of Core "
              f"by hand; peak RSS {growth:+.1f} MB from {sizes[0]:,} to {big:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
