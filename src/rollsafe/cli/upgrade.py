"""``rollsafe upgrade check`` and ``rollsafe upgrade status``, and the
contract gate of ``rollsafe db contract --service``.

``check`` runs the upgrade checks (:mod:`rollsafe.upgrade.checks`) and
exits with the worst status: 0 success, 1 warning, 2 failure (2 also for
bad usage). ``status`` shows the fleet: services, pins, online migrations.
Both read only; ``--json`` prints data for scripts instead of tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rollsafe.cli.app import EXIT_DIFFERENCES, _fail, err, out
from rollsafe.cli.service import ServiceOption, load_service, open_service_store

if TYPE_CHECKING:
    from rollsafe.storage.collection import Collection
    from rollsafe.storage.store import Store
    from rollsafe.upgrade.definition import ServiceDefinition

__all__ = ["gate_contract", "upgrade"]

upgrade = typer.Typer(help="Is the fleet ready for the next step of a rolling upgrade?",
                      no_args_is_help=True)

UrlOption = Annotated[str, typer.Option(
    "--url", envvar="ROLLSAFE_DB_URL",
    help="Database URL (sqlite:///..., postgresql://..., redis://...).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

_STYLE = {"success": "green", "warning": "yellow", "failure": "red"}


def _open(definition: ServiceDefinition, url: str) -> Store:
    # Read only: nothing is written, so no pins are needed to write safely.
    return open_service_store(definition, url, pinned=False)


@upgrade.command("check")
def check_command(service: ServiceOption, url: UrlOption, as_json: JsonOption = False) -> None:
    """Run the preflight checks: services older than supported, online
    migrations not finished, schema not expanded, pins below the newest
    release, and the service's own checks.

    Exit 0: all passed; 1: warnings (the upgrade may go on; read them);
    2: a check failed (do what it says first) or bad usage."""
    from rollsafe.errors import DefinitionError
    from rollsafe.upgrade.checks import run_checks

    definition = load_service(service)
    store = _open(definition, url)
    try:
        report = run_checks(definition, store)
    except DefinitionError as exc:
        _fail(f"--service {service!r}: {exc}")
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
        raise typer.Exit(report.exit_code)
    table = Table(title=escape(f"upgrade checks of {definition.name}"))
    table.add_column("check")
    table.add_column("status")
    table.add_column("message")
    for result in report.results:
        label = result.status.label
        table.add_row(escape(result.name), f"[{_STYLE[label]}]{label}[/]",
                      escape(result.message))
    out.print(table)
    counts = {label: sum(r.status.label == label for r in report.results)
              for label in ("success", "warning", "failure")}
    summary = (f"{counts['success']} passed, {counts['warning']} warning(s), "
               f"{counts['failure']} failure(s)")
    out.print(f"[{_STYLE[report.status.label]}]{summary}[/]")
    raise typer.Exit(report.exit_code)


@upgrade.command("status")
def status_command(service: ServiceOption, url: UrlOption, as_json: JsonOption = False) -> None:
    """Show the fleet at a glance: every recorded service (release,
    versions, heartbeat age, live or stale), the pins next to what the
    newest release reads, and what each online migration has left.

    Exit 0, or 2 when the store cannot be read."""
    from rollsafe.upgrade.status import fleet_status, status_tables

    definition = load_service(service)
    store = _open(definition, url)
    try:
        status = fleet_status(definition, store)
    except Exception as exc:  # an unreadable store is a usage problem here
        _fail(f"cannot read the fleet from the store: {type(exc).__name__}: {exc}; is --url "
              "the service's database, with its schema created (rollsafe db expand)?")
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps(status.to_dict()))
        return
    for table in status_tables(status):
        out.print(table)


def gate_contract(service: str, url: str, collections: Sequence[Collection], *,
                  force: bool) -> None:
    """The contract gate for ``rollsafe db contract --service``: exit with
    code 1, naming each blocking service or migration, while contracting
    ``collections`` is unsafe; with ``force``, say loudly what is ignored
    and return."""
    from rollsafe.upgrade.gate import contract_blockers

    definition = load_service(service)
    store = _open(definition, url)
    try:
        blockers = contract_blockers(definition, store, collections=collections)
    except Exception as exc:  # the gate must not pass what it could not read
        _fail(f"the contract gate cannot read the fleet: {type(exc).__name__}: {exc}")
    finally:
        store.close()
    if not blockers:
        out.print("contract gate: no live service needs what contract drops, and no online "
                  "migration has records left")
        return
    if force:
        err.print("[red bold]--force: contracting although the fleet still needs it:[/]")
        for blocker in blockers:
            err.print(f"[red bold]  - {escape(blocker.message)}[/]")
        return
    err.print(f"[red]refused:[/] contract would break the running fleet "
              f"({len(blockers)} blocker(s)):")
    for blocker in blockers:
        err.print(f"  - {escape(blocker.message)}")
    err.print("Run rollsafe db contract again once these are resolved (rollsafe upgrade "
              "status shows the fleet).")
    raise typer.Exit(EXIT_DIFFERENCES)
