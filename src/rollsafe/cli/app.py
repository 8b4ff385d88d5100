"""Typer application behind the ``rollsafe`` command."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rollsafe.objects.registry import Registry

__all__ = ["app", "import_attribute", "load_registry", "main"]

app = typer.Typer(
    name="rollsafe",
    help="Tools for services upgraded live: object fingerprints and schemas.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

#: Exit codes shared by every command.
EXIT_OK, EXIT_DIFFERENCES, EXIT_USAGE = 0, 1, 2

RegistryOption = Annotated[str, typer.Option(
    "--registry", "-r", metavar="MODULE:NAME",
    help="The registry to inspect, as 'package.module:attribute'.")]


def _fail(message: str) -> NoReturn:
    """Print ``message`` (not markup) as an error and exit with EXIT_USAGE."""
    err.print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(EXIT_USAGE)


def import_attribute(spec: str, option: str, example: str) -> Any:
    """Import ``module:attribute`` (the value of ``option``) and return the
    attribute; exit with EXIT_USAGE and a message saying what is wrong
    otherwise (``example`` shows the expected form)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        _fail(f"{option} {spec!r}: expected MODULE:NAME, e.g. {example}")
    if "" not in sys.path:
        sys.path.insert(0, "")  # so a module in the working directory can be named
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error while importing user code is a usage error here
        _fail(f"{option} {spec!r}: importing {module_name!r} failed: "
              f"{type(exc).__name__}: {exc}")
    if not hasattr(module, attr):
        _fail(f"{option} {spec!r}: module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def load_registry(spec: str) -> Registry:
    """Import ``module:attribute`` and return the registry it names; exit
    with EXIT_USAGE and a message saying what is wrong otherwise."""
    registry = import_attribute(spec, "--registry", "myservice.objects:registry")
    if not isinstance(registry, Registry):
        _fail(f"--registry {spec!r} is a {type(registry).__name__}, not a rollsafe Registry")
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
    a line saying what to add to its history. Exit 0: match; 1: differences;
    2: bad usage or an unreadable file."""
    from rollsafe.objects.fingerprint import (
        REMOTE_KEY,
        check_fingerprints,
        read_fingerprints,
        write_fingerprints,
    )
    from rollsafe.objects.fingerprint import fingerprints as compute

    if (check is None) == (write is None):
        _fail("give exactly one of --check FILE or --write FILE")
    reg = _load_registry_or_definition_error(registry)
    if write is not None:
        try:
            data = write_fingerprints(reg, write)
        except OSError as exc:
            _fail(f"cannot write {write}: {exc.strerror or exc}")
        versions = sum(len([k for k in v if k != REMOTE_KEY]) for v in data.values())
        out.print(escape(f"wrote {versions} fingerprints of {len(data)} objects to {write}"))
        return
    assert check is not None
    try:
        expected = read_fingerprints(check)
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {check}: {exc}")
    problems = check_fingerprints(reg, expected)
    table = Table(title=escape(f"object fingerprints of {reg.namespace} vs {check}"))
    table.add_column("object")
    table.add_column("version")
    table.add_column("fingerprint")
    for name, entry in compute(reg).items():
        for key, value in entry.items():
            label = "(remote methods)" if key == REMOTE_KEY else key
            same = expected.get(name, {}).get(key) == value
            table.add_row(escape(name), escape(label),
                          escape(value) + ("" if same else " [red](differs)[/]"))
    out.print(table)
    if not problems:
        out.print("[green]fingerprints match[/]")
        return
    for problem in problems:
        err.print(f"[red]-[/] {escape(problem)}")
    err.print(f"[red]{len(problems)} difference(s).[/]")
    if all(problem.recordable for problem in problems):
        err.print(escape(f"These are new versions or objects: once reviewed, record them with "
                         f"rollsafe fingerprints -r {registry} --write {check}"))
    else:
        err.print("Fix the objects or their histories as each line says; --write would only "
                  "hide these differences.")
    raise typer.Exit(EXIT_DIFFERENCES)


def _load_registry_or_definition_error(spec: str) -> Registry:
    """The registry, with every class built, so a malformed declaration is a
    usage error (exit 2), not a difference."""
    from rollsafe.errors import DefinitionError

    reg = load_registry(spec)
    try:
        for cls in reg.classes():
            cls._rs_info.build()
    except DefinitionError as exc:
        _fail(f"--registry {spec!r}: an object is declared wrongly: {exc}")
    return reg


@app.command()
def schema(
    registry: RegistryOption,
    name: Annotated[str, typer.Argument(help="Object name.")],
    version: Annotated[str | None, typer.Option(help="Version (default: current).")] = None,
) -> None:
    """Print the canonical schema of one object version as JSON."""
    from rollsafe.errors import RollsafeError
    from rollsafe.objects.fingerprint import canonical_schema

    reg = _load_registry_or_definition_error(registry)
    try:
        data = canonical_schema(reg.get(name), version)
    except RollsafeError as exc:
        _fail(str(exc))
    out.print_json(json.dumps(data))


db = typer.Typer(help="Expand and contract the SQL schema of a store's collections.",
                 no_args_is_help=True)
app.add_typer(db, name="db")

CollectionsOption = Annotated[str | None, typer.Option(
    "--collections", "-c", metavar="MODULE:NAME",
    help="The collections, as 'package.module:attribute' naming a list of Collection.")]
DbServiceOption = Annotated[str | None, typer.Option(
    "--service", "-s", metavar="MODULE:NAME",
    help="The service, as 'package.module:attribute' naming a ServiceDefinition: its "
    "collections and its fleet's service records (contract also checks its live services "
    "and online migrations).")]
UrlOption = Annotated[str, typer.Option(
    "--url", envvar="ROLLSAFE_DB_URL", help="Database URL (sqlite:///..., postgresql://...).")]


def _load_sql(url: str, spec: str | list[Any]) -> tuple[Any, list[Any]]:
    """The SQL backend at ``url`` and the collections: those of a --service
    (a list), or those ``--collections MODULE:NAME`` names."""
    from rollsafe.storage.collection import Collection
    from rollsafe.storage.sql import SqlBackend

    if isinstance(spec, list):  # the collections of a --service
        collections = spec
    else:
        value = import_attribute(spec, "--collections", "myservice.storage:COLLECTIONS")
        collections = list(value) if isinstance(value, list | tuple) else [value]
        if not collections or not all(isinstance(c, Collection) for c in collections):
            _fail(f"--collections {spec!r} must name a Collection or a list of them")
    if not url.startswith(("sqlite", "postgresql", "postgres")):
        _fail("db commands need a SQL --url (sqlite:/// or postgresql://)")
    try:
        return SqlBackend(url), collections
    except Exception as exc:
        _fail(f"--url: {type(exc).__name__}: {exc}")


def _db_target(url: str, collections: str | None, service: str | None
               ) -> tuple[Any, list[Any]]:
    """The SQL backend and the collections a db command works on: those
    --collections names, else the service's plus the fleet's records."""
    if collections is not None:
        return _load_sql(url, collections)
    if service is None:
        _fail("give --service MODULE:NAME (a ServiceDefinition) or --collections MODULE:NAME "
              "(a list of Collection)")
    from rollsafe.cli.service import load_service
    from rollsafe.rpc.fleet import SERVICES

    colls = list(load_service(service).collections)
    return _load_sql(url, colls + ([] if SERVICES in colls else [SERVICES]))


def _print_plan(lines: list[str], empty: str) -> None:
    if not lines:
        out.print(empty)
    for line in lines:
        out.print(f"  {escape(line)}")


@db.command("plan")
def db_plan(url: UrlOption, collections: CollectionsOption = None,
            service: DbServiceOption = None) -> None:
    """Show what expand and contract would do. Exit 0: nothing to do;
    1: there are changes."""
    from rollsafe.storage import migrate

    backend, colls = _db_target(url, collections, service)
    lines = migrate.plan(backend, colls).describe()
    _print_plan(lines, "schema matches the objects: nothing to do")
    raise typer.Exit(EXIT_DIFFERENCES if lines else EXIT_OK)


@db.command("expand")
def db_expand(url: UrlOption, collections: CollectionsOption = None,
              service: DbServiceOption = None,
              dry_run: Annotated[bool, typer.Option("--dry-run")] = False) -> None:
    """Add the tables, columns and indexes the new release needs; never
    drops or changes anything. Exit 0: done; 2: an unsafe change."""
    from rollsafe.storage import migrate

    backend, colls = _db_target(url, collections, service)
    try:
        schema = migrate.expand(backend, colls, dry_run=dry_run)
    except migrate.UnsafeExpandError as exc:
        _fail(str(exc))
    _print_plan([f"expand: {line.split(': ', 1)[1]}" for line in schema.describe()
                 if line.startswith("expand")], "nothing to expand")
    out.print("dry run: nothing applied" if dry_run else "[green]expand done[/]")


@db.command("contract")
def db_contract(url: UrlOption, collections: CollectionsOption = None,
                service: DbServiceOption = None,
                dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
                force: Annotated[bool, typer.Option(
                    "--force", help="Drop even though live services, online migrations or "
                    "rows still need the old columns.")]
                = False) -> None:
    """Drop what only versions older than each collection's oldest used.
    With --service, refused first while a live service reads a version
    contract removes or an online migration has records left.
    Exit 0: done; 1: refused (the message names what blocks it: upgrade or
    stop that service, or migrate, and run again); 2: bad usage."""
    from rollsafe.storage import migrate

    backend, colls = _db_target(url, collections, service)
    if service is None:
        err.print("[yellow]without --service, contract checks only the stored rows, not the "
                  "live services nor the online migrations[/]")
    else:
        from rollsafe.cli.upgrade import gate_contract

        gate_contract(service, url, colls, force=force)
    if force:
        err.print("[red bold]--force: dropping columns that stored rows may still use; "
                  "their data in those columns is lost[/]")
    try:
        schema = migrate.contract(backend, colls, dry_run=dry_run, force=force)
    except migrate.ContractRefusedError as exc:
        err.print(f"[red]refused:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_DIFFERENCES) from None
    _print_plan([line for line in schema.describe() if line.startswith("contract")],
                "nothing to contract")
    out.print("dry run: nothing applied" if dry_run else "[green]contract done[/]")


from rollsafe.cli.migrate import migrate_command  # noqa: E402 (it imports app's helpers)

app.command("migrate")(migrate_command)

from rollsafe.cli.upgrade import upgrade  # noqa: E402 (it imports app's helpers)

app.add_typer(upgrade, name="upgrade")

from rollsafe.cli.compat import compat  # noqa: E402 (it imports app's helpers)

app.add_typer(compat, name="compat")


def main() -> None:
    """Entry point of the ``rollsafe`` console script."""
    app()
