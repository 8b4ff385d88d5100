"""``rollsafe compat``: the compatibility lint for reviewers and CI.

``snapshot`` records a release's objects (one JSON file per release,
committed); ``check`` compares the tree with every snapshot in a folder and
reports each unsafe change with a fix. Exit codes: 0 clean, 1 findings,
2 bad usage or an unreadable snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rollsafe.cli.app import (
    EXIT_DIFFERENCES,
    RegistryOption,
    _fail,
    _load_registry_or_definition_error,
    import_attribute,
    out,
)
from rollsafe.errors import SnapshotError

if TYPE_CHECKING:
    from rollsafe.rpc.releases import ReleaseHistory
    from rollsafe.upgrade.compat import Finding

__all__ = ["compat"]

compat = typer.Typer(
    help="Compatibility lint: snapshot a release's objects; check the tree against the "
    "snapshots of every supported release.",
    no_args_is_help=True)


@compat.command("snapshot")
def snapshot(
    registry: RegistryOption,
    release: Annotated[str | None, typer.Option(
        "--release", metavar="NAME", help="The release being recorded (e.g. 2024.1).")] = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", metavar="DIR", help="Write DIR/<release>.json (the layout check "
        "--snapshots reads).")] = None,
    out_file: Annotated[Path | None, typer.Option(
        "--out", metavar="FILE", help="Write exactly FILE instead.")] = None,
    corpus: Annotated[Path | None, typer.Option(
        "--corpus", metavar="DIR", help="Also capture the golden corpus of the release in "
        "DIR/<release>/.")] = None,
    releases: Annotated[str | None, typer.Option(
        "--releases", metavar="MODULE:NAME", help="Instead of --release: a ReleaseHistory; "
        "write a snapshot of each of its releases, derived from today's histories, into "
        "--dir (to start using the lint on a project with releases behind it).")] = None,
) -> None:
    """Record the schemas of every object version, each object's current
    version and its remote methods, as release NAME. Commit the file."""
    from rollsafe.upgrade.snapshot import take_snapshot, write_snapshot

    if (directory is None) == (out_file is None):
        _fail("give exactly one of --dir DIR or --out FILE")
    if (release is None) == (releases is None):
        _fail("give exactly one of --release NAME or --releases MODULE:NAME")
    reg = _load_registry_or_definition_error(registry)
    if releases is not None:
        if directory is None or corpus is not None:
            _fail("--releases writes one file per release: give --dir DIR (and no --corpus)")
        history = _load_release_history(releases)
        targets: list[tuple[str, dict[str, str] | None]] = [
            (name, history.manifest(name)) for name in history.names]
    else:
        assert release is not None
        targets = [(release, None)]
    for name, manifest in targets:
        path = out_file if out_file is not None else Path(directory or ".") / f"{name}.json"
        try:
            snap = take_snapshot(reg, name, manifest=manifest)
            write_snapshot(snap, path)
        except SnapshotError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"cannot write {path}: {exc.strerror or exc}")
        versions = sum(len(rec.versions) for rec in snap.objects.values())
        out.print(escape(f"release {name}: {len(snap.objects)} objects, {versions} versions "
                         f"-> {path}"))
    if corpus is not None:
        from rollsafe.testing.corpus import capture_corpus

        assert release is not None
        try:
            files = capture_corpus(reg, release, corpus)
        except (SnapshotError, OSError) as exc:
            _fail(f"cannot capture the corpus: {exc}")
        out.print(escape(f"golden corpus: {len(files)} files -> {corpus / release}"))


def _load_release_history(spec: str) -> ReleaseHistory:
    from rollsafe.rpc.releases import ReleaseHistory

    value = import_attribute(spec, "--releases", "myservice.upgrade:RELEASES")
    if not isinstance(value, ReleaseHistory):
        _fail(f"--releases {spec!r} is a {type(value).__name__}, not a ReleaseHistory")
    return value


@compat.command("check")
def check(
    registry: RegistryOption,
    snapshots: Annotated[Path | None, typer.Option(
        "--snapshots", metavar="DIR", help="Every *.json snapshot in DIR: one per release "
        "still supported.")] = None,
    snapshot_files: Annotated[list[Path] | None, typer.Option(
        "--snapshot", metavar="FILE", help="A snapshot file (repeat for several).")] = None,
    corpus: Annotated[Path | None, typer.Option(
        "--corpus", metavar="DIR", help="Also replay the golden corpus in DIR.")] = None,
    ignore: Annotated[list[str] | None, typer.Option(
        "--ignore", metavar="RULE[:Object[.field]]", help="Accept a finding (a decision "
        "made); repeat for several.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Compare the tree with release snapshots and report every unsafe
    change with a fix. Exit 0: clean; 1: findings; 2: bad usage or an
    unreadable snapshot."""
    from rollsafe.upgrade.compat import check_compat
    from rollsafe.upgrade.snapshot import read_snapshot, read_snapshots

    if snapshots is None and not snapshot_files:
        _fail("give --snapshots DIR (or --snapshot FILE): the releases to check against")
    reg = _load_registry_or_definition_error(registry)
    try:
        snaps = read_snapshots(snapshots) if snapshots is not None else []
        snaps += [read_snapshot(path) for path in snapshot_files or []]
    except SnapshotError as exc:
        _fail(str(exc))
    if not snaps:
        _fail(f"no snapshot in {snapshots}: record one per release with "
              "'rollsafe compat snapshot --release NAME --dir DIR'")
    try:
        findings = check_compat(reg, snaps, corpus=corpus, ignore=ignore or [])
    except (SnapshotError, ValueError) as exc:  # an unknown --ignore rule is a ValueError
        _fail(str(exc))
    releases = [s.release for s in snaps]
    if as_json:
        out.print_json(json.dumps({
            "namespace": reg.namespace, "releases": releases, "clean": not findings,
            "findings": [f.to_json() for f in findings]}))
    else:
        _print_table(reg.namespace, releases, findings)
    if findings:
        raise typer.Exit(EXIT_DIFFERENCES)


def _print_table(namespace: str, releases: list[str], findings: list[Finding]) -> None:
    if not findings:
        out.print(escape(f"{namespace}: compatible with {', '.join(releases)}"),
                  style="green")
        return
    table = Table(title=escape(f"compatibility of {namespace} against {', '.join(releases)}"),
                  show_lines=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("where")
    table.add_column("problem", ratio=3)
    table.add_column("fix", ratio=2)
    for finding in findings:
        against = f" [dim](vs {escape(', '.join(finding.releases))})[/]" \
            if finding.releases else ""
        table.add_row(escape(finding.rule), escape(finding.where),
                      escape(finding.problem) + against, escape(finding.fix))
    out.print(table)
    out.print(f"[red]{len(findings)} finding(s).[/] Fix each as its line says, or accept a "
              "decision with --ignore RULE:Object.field.")


@compat.command("rules")
def rules() -> None:
    """List the rules the lint enforces (docs/compatibility.md explains each)."""
    from rollsafe.upgrade.compat import RULES

    table = Table(title="rollsafe compat rules")
    table.add_column("rule", no_wrap=True)
    table.add_column("reports")
    for rule, text in RULES.items():
        table.add_row(escape(rule), escape(text))
    out.print(table)
