"""Typer application behind the ``rollsafe`` command."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rollsafe.objects.registry import Registry

__all__ = ["app", "load_registry", "main"]

app = typer.Typer(
    name="rollsafe",
    help="Tools for services upgraded live: object fingerprints and schemas.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

RegistryOption = Annotated[str, typer.Option(
    "--registry", "-r", metavar="MODULE:NAME",
    help="The registry to inspect, as 'package.module:attribute'.")]


def load_registry(spec: str) -> Registry:
    """Import ``module:attribute`` and return the registry it names.
    Raises typer.BadParameter with a message saying what is wrong."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise typer.BadParameter(f"{spec!r}: expected MODULE:NAME, e.g. myservice.objects:reg")
    if "" not in sys.path:
        sys.path.insert(0, "")  # so a module in the working directory can be named
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from None
    registry = getattr(module, attr, None)
    if not isinstance(registry, Registry):
        raise typer.BadParameter(f"{spec!r} is not a rollsafe Registry "
                                 f"(got {type(registry).__name__})")
    return registry


@app.command()
def fingerprints(
    registry: RegistryOption,
    check: Annotated[Path | None, typer.Option(
        "--check", metavar="FILE", help="Compare with FILE; exit 1 on any difference.")] = None,
    write: Annotated[Path | None, typer.Option(
        "--write", metavar="FILE", help="Record the fingerprints in FILE.")] = None,
) -> None:
    """Check or record the fingerprint of every object version.

    A class whose schema changed without a version bump fails --check with
    a line saying what to add to its history."""
    from rollsafe.objects.fingerprint import (
        check_fingerprints,
        read_fingerprints,
        write_fingerprints,
    )
    from rollsafe.objects.fingerprint import fingerprints as compute

    if (check is None) == (write is None):
        err.print("[red]error:[/] give exactly one of --check FILE or --write FILE")
        raise typer.Exit(2)
    reg = load_registry(registry)
    if write is not None:
        data = write_fingerprints(reg, write)
        out.print(f"wrote {sum(len(v) for v in data.values())} fingerprints of "
                  f"{len(data)} objects to {write}")
        return
    assert check is not None
    try:
        expected = read_fingerprints(check)
    except (OSError, ValueError) as exc:
        err.print(f"[red]error:[/] cannot read {check}: {exc}")
        raise typer.Exit(2) from None
    problems = check_fingerprints(reg, expected)
    table = Table(title=f"object fingerprints of {reg.namespace} vs {check}")
    table.add_column("object")
    table.add_column("version")
    table.add_column("fingerprint")
    for name, versions in compute(reg).items():
        for version, value in versions.items():
            state = "" if expected.get(name, {}).get(version) == value else " [red](differs)[/]"
            table.add_row(name, version, value + state)
    out.print(table)
    if problems:
        for problem in problems:
            err.print(f"[red]-[/] {problem}")
        err.print(f"[red]{len(problems)} difference(s).[/] If the versions were bumped on "
                  f"purpose, record them: rollsafe fingerprints -r {registry} --write {check}")
        raise typer.Exit(1)
    out.print("[green]fingerprints match[/]")


@app.command()
def schema(
    registry: RegistryOption,
    name: Annotated[str, typer.Argument(help="Object name.")],
    version: Annotated[str | None, typer.Option(help="Version (default: current).")] = None,
) -> None:
    """Print the canonical schema of one object version as JSON."""
    from rollsafe.errors import RollsafeError
    from rollsafe.objects.fingerprint import canonical_schema

    reg = load_registry(registry)
    try:
        data = canonical_schema(reg.get(name), version)
    except RollsafeError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    out.print_json(json.dumps(data))


def main() -> None:
    """Entry point of the ``rollsafe`` console script."""
    app()
