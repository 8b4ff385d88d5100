"""``rollsafe migrate``: run a service's online data migrations.

Runs every migration the service registered (or those named with
``--only``), in batches, with a progress bar per migration on a terminal
and a summary table at the end. Exit codes: 0 nothing left, 1 more to do
(``--max-count`` reached, or records that changed concurrently were left:
run again), 2 a migration failed or bad usage.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rollsafe.cli.app import EXIT_OK, EXIT_USAGE, _fail, err, out
from rollsafe.cli.service import ServiceOption, load_service, open_service_store

if TYPE_CHECKING:
    from rich.progress import Progress as Bar
    from rich.progress import TaskID

    from rollsafe.upgrade.migrations import MigrationReport, Progress

__all__ = ["migrate_command"]


def migrate_command(
    service: ServiceOption,
    url: Annotated[str, typer.Option(
        "--url", envvar="ROLLSAFE_DB_URL",
        help="Database URL (sqlite:///..., postgresql://..., redis://...).")],
    max_count: Annotated[int | None, typer.Option(
        "--max-count", min=1, help="Stop after migrating this many records (all migrations "
        "together); exit 1 if any are left.")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, max=10_000, help="Records per batch (one transaction).")] = 500,
    pause: Annotated[float, typer.Option(
        "--pause", min=0.0, help="Seconds to rest between batches.")] = 0.0,
    target: Annotated[float | None, typer.Option(
        "--target-seconds", min=0.001, help="Keep each batch under this many seconds: a "
        "slower batch halves the batch size and rests longer.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only count what each migration has left; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the report as JSON (no progress bars, no table).")] = False,
    only: Annotated[list[str] | None, typer.Option(
        "--only", metavar="NAME", help="Run only this migration (repeatable).")] = None,
) -> None:
    """Run the service's online data migrations in batches.

    Each batch commits whole or not at all, so a run stopped at any point
    is resumed by running it again. Exit 0: nothing left; 1: more to do
    (run again); 2: a migration failed (the others still ran) or bad usage."""
    definition = load_service(service)
    migrations = definition.migrations
    if migrations is None or not len(migrations):
        if only:
            _fail(f"service {definition.name!r} registers no online migrations; "
                  f"--only {only[0]!r} names none of them")
        if as_json:
            out.print_json(json.dumps({"dry_run": dry_run, "exit_code": 0, "migrations": []}))
        else:
            out.print(escape(f"service {definition.name!r} registers no online migrations: "
                             "nothing to do"))
        raise typer.Exit(EXIT_OK)
    try:
        migrations.select(only)
    except KeyError as exc:
        _fail(f"--only: {exc.args[0]}")
    store = open_service_store(definition, url)
    bars = None if as_json or dry_run or not err.is_terminal else _Bars()
    try:
        if bars is None:
            report = migrations.run(store, max_count=max_count, batch_size=batch_size,
                                    pause=pause, target_seconds=target, dry_run=dry_run,
                                    only=only)
        else:
            with bars.bar:
                report = migrations.run(store, max_count=max_count, batch_size=batch_size,
                                        pause=pause, target_seconds=target, only=only,
                                        progress=bars.update)
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        _summary(report, definition.name)
    raise typer.Exit(report.exit_code)


class _Bars:
    """A Rich progress bar per migration, on stderr."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar: Bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                 TimeElapsedColumn(), console=err)
        self.tasks: dict[str, TaskID] = {}

    def update(self, event: Progress) -> None:
        """Move migration ``event.name``'s bar to what it has done."""
        task = self.tasks.get(event.name)
        if task is None:
            task = self.tasks[event.name] = self.bar.add_task(
                escape(event.name), total=event.total, rate="")
        rate = f"batch {event.batch_size}" if event.batch_seconds else ""
        self.bar.update(task, completed=event.done, rate=rate)


def _summary(report: MigrationReport, service: str) -> None:
    """The summary table (stdout) and what to do next."""
    title = f"online migrations of {service}" + (" (dry run: nothing written)"
                                                  if report.dry_run else "")
    table = Table(title=escape(title))
    table.add_column("migration")
    for name in ("found", "done", "remaining"):
        table.add_column(name, justify="right")
    table.add_column("errors")
    for result in report.results:
        remaining = "?" if result.remaining is None else str(result.remaining)
        error = "" if result.error is None else f"[red]{escape(result.error)}[/]"
        table.add_row(escape(result.name), str(result.found), str(result.done), remaining,
                      error)
    out.print(table)
    code = report.exit_code
    if code == EXIT_USAGE:
        for result in report.errors:
            err.print(f"[red]migration {escape(result.name)} failed:[/]")
            err.print(escape(result.traceback or result.error or ""), highlight=False)
        err.print(f"[red]{len(report.errors)} migration(s) failed[/]; the others ran. Fix "
                  "the cause and run again: finished batches stay committed.")
    elif code == EXIT_OK:
        out.print("[green]nothing left to migrate[/]" if not report.dry_run
                  else "nothing left to migrate")
    elif report.dry_run:
        out.print(escape(f"{report.remaining} record(s) left: run rollsafe migrate without "
                         "--dry-run to migrate them"))
    else:
        why = ("--max-count reached" if report.limited
               else "records changed or were written while it ran")
        out.print(escape(f"{report.remaining} record(s) left ({why}): run rollsafe migrate "
                         "again"))
