"""The ``solumlite`` command (also ``python -m solumlite``).

``solumlite api`` serves one release's HTTP API with uvicorn, either
embedded (``--db`` names a store: the flows run in this process) or in front
of a conductor (``--db none://`` and ``--transport rabbit://...``: no store
access here, every flow is a remote call). Exit codes: 0 stopped normally,
2 bad usage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from solumlite import RELEASE_KEYS, Release, load_release

__all__ = ["app", "main"]

app = typer.Typer(name="solumlite", no_args_is_help=True, add_completion=False,
                  help="solumlite, the reference PaaS of rollsafe.")

EXIT_FAILED = 1
EXIT_USAGE = 2


@app.callback()
def _root() -> None:
    """solumlite, the reference PaaS of rollsafe."""


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


@app.command()
def api(
    release: Annotated[str, typer.Option(help=f"Release to serve: {', '.join(RELEASE_KEYS)}.")],
    db: Annotated[str, typer.Option(
        help="Store URL: sqlite:///PATH, postgresql://..., redis://..., or none:// to reach "
             "the store through a conductor (needs --transport).")],
    token: Annotated[list[str] | None, typer.Option(
        metavar="TOKEN=PROJECT", help="A bearer token and the project it sees (repeat).")
    ] = None,
    tokens_file: Annotated[Path | None, typer.Option(
        help='JSON file of {"TOKEN": "PROJECT", ...}.')] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    transport: Annotated[str | None, typer.Option(
        help="oslo.messaging URL of the conductor's bus (rabbit://USER:PASS@HOST:PORT/), "
             "with --db none://.")] = None,
    create_schema: Annotated[bool, typer.Option(
        help="Create the tables (or nothing, on Redis) that are missing. Columns a new "
             "release adds come from 'rollsafe db expand'.")] = True,
    contracted: Annotated[bool, typer.Option(
        help="Use the collections as they are after 'rollsafe db contract'.")] = False,
    storage_release: Annotated[str | None, typer.Option(
        help="Write objects at the versions this release (N, N+1) reads, while older "
             "services still run.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    fleet: Annotated[str | None, typer.Option(
        help="With --db none://: join the fleet whose records this store URL holds (calls "
             "go at the fleet's pins, started workflows go to the workers, SIGTERM stops "
             "gracefully; --port 0 picks a free port).")] = None,
    slot: Annotated[str, _SLOT] = "api",
    stale_after: Annotated[float, _STALE_AFTER] = 6.0,
    ready_file: Annotated[Path | None, _READY_FILE] = None,
    wire_stats: Annotated[Path | None, _WIRE_STATS] = None,
    operator_token: Annotated[str | None, typer.Option(
        envvar="SOLUMLITE_OPERATOR_TOKEN",
        help="Serve the operator dashboard (/dashboard) to this bearer token: the fleet's "
             "services, pins and online migrations. Read from the store, or with --db "
             "none:// asked of the conductor.")] = None,
) -> None:
    """Serve the HTTP API of one release."""
    import uvicorn

    from solumlite.api import TokenMap, create_api
    from solumlite.api.auth import parse_pairs, read_file
    from solumlite.status import StatusSource

    try:
        chosen = load_release(release)
        given = {**(read_file(tokens_file) if tokens_file else {}),
                 **parse_pairs(token or [])}
        if not given:
            raise ValueError("give at least one --token TOKEN=PROJECT (or --tokens-file)")
        tokens = TokenMap(given)
        pins = None if storage_release is None else chosen.history.manifest(storage_release)
    except (ValueError, KeyError) as exc:
        _fail(str(exc).strip("'\""))
    status: StatusSource | None = None  # embedded: the dashboard reads the store
    if db.split(":", 1)[0].lower() == "none":
        if transport is None:
            _fail("--db none:// sends every flow to a conductor: give --transport too")
        if fleet is not None:
            _serve("api", chosen, db=fleet, transport=transport, slot=slot,
                   stale_after=stale_after, tokens=given, port=port,
                   ready_file=ready_file, wire_stats=wire_stats,
                   operator_token=operator_token)
            return
        from rollsafe.rpc import RemoteIndirection
        from rollsafe.rpc.messaging import OsloMessagingTransport
        from solumlite.status import RemoteStatus

        bus = OsloMessagingTransport(transport)
        chosen.registry.indirection = RemoteIndirection(bus, chosen.registry)
        status = RemoteStatus(bus)
        # Any flow that ran here by mistake fails at once, saying why.
        chosen.bind(chosen.open_store(db))
    else:
        if fleet is not None:
            _fail("--fleet is for an API without store access: give --db none:// too")
        try:
            store = chosen.open_store(db, contracted=contracted, storage_versions=pins)
        except (ValueError, ImportError) as exc:
            _fail(f"--db {db}: {exc}")
        if create_schema:
            store.ensure_schema()
        chosen.bind(store)
    try:
        served = create_api(chosen, tokens, operator_token=operator_token,
                            status_source=status if operator_token else None)
    except ValueError as exc:
        _fail(str(exc))
    if operator_token:
        typer.echo(f"operator dashboard: http://{host}:{port}/dashboard", err=True)
    uvicorn.run(served, host=host, port=port, log_level=log_level)


_SLOT = typer.Option(help="The service's place in the fleet (its replacement takes it).")
_STALE_AFTER = typer.Option(help="Seconds without a heartbeat after which a service drops "
                                 "out of the fleet.")
_READY_FILE = typer.Option(hidden=True, help="Write the service's URL (or 'ready') here once "
                                             "it serves.")
_WIRE_STATS = typer.Option(hidden=True, help="On exit, write the object versions seen on the "
                                             "wire here (JSON).")
_TRANSPORT = typer.Option(help="oslo.messaging URL of the fleet's bus "
                               "(rabbit://USER:PASS@HOST:PORT/).")


def _serve(role: str, release: Release, *, db: str, transport: str, slot: str,
           stale_after: float, contracted: bool = False, step_delay: float = 0.05,
           tokens: dict[str, str] | None = None, port: int = 0,
           ready_file: Path | None = None, wire_stats: Path | None = None,
           operator_token: str | None = None) -> None:
    from solumlite.demo.processes import run_service

    try:
        run_service(role, release, db=db, transport_url=transport, slot=slot,
                    stale_after=stale_after, contracted=contracted, step_delay=step_delay,
                    tokens=tokens, port=port, ready_file=ready_file, wire_stats=wire_stats,
                    operator_token=operator_token)
    except (ValueError, ImportError) as exc:
        _fail(str(exc))


@app.command()
def conductor(
    release: Annotated[str, typer.Option(help=f"Release to run: {', '.join(RELEASE_KEYS)}.")],
    db: Annotated[str, typer.Option(help="Store URL: postgresql://..., sqlite:///PATH.")],
    transport: Annotated[str, _TRANSPORT],
    contracted: Annotated[bool, typer.Option(
        help="Use the collections as they are after 'rollsafe db contract'.")] = False,
    slot: Annotated[str, _SLOT] = "conductor",
    stale_after: Annotated[float, _STALE_AFTER] = 6.0,
    ready_file: Annotated[Path | None, _READY_FILE] = None,
    wire_stats: Annotated[Path | None, _WIRE_STATS] = None,
) -> None:
    """Run a conductor: the one service with store access, running the
    flows the API and the workers send it, each exactly once. It writes at
    the fleet's pins; SIGHUP refreshes them, SIGTERM stops gracefully."""
    chosen = _release(release)
    _serve("conductor", chosen, db=db, transport=transport, slot=slot,
           stale_after=stale_after, contracted=contracted, ready_file=ready_file,
           wire_stats=wire_stats)


@app.command()
def worker(
    release: Annotated[str, typer.Option(help=f"Release to run: {', '.join(RELEASE_KEYS)}.")],
    fleet: Annotated[str, typer.Option(
        help="Store URL holding the fleet's records (the worker reads no data there).")],
    transport: Annotated[str, _TRANSPORT],
    step_delay: Annotated[float, typer.Option(
        help="Seconds each simulated workflow step takes.")] = 0.05,
    slot: Annotated[str, _SLOT] = "worker",
    stale_after: Annotated[float, _STALE_AFTER] = 6.0,
    ready_file: Annotated[Path | None, _READY_FILE] = None,
    wire_stats: Annotated[Path | None, _WIRE_STATS] = None,
) -> None:
    """Run a worker: it takes the workflows the API starts (topic
    'workers') and advances each through its steps on the conductor.
    SIGTERM stops gracefully: the workflows taken are finished first."""
    chosen = _release(release)
    _serve("worker", chosen, db=fleet, transport=transport, slot=slot,
           stale_after=stale_after, step_delay=step_delay, ready_file=ready_file,
           wire_stats=wire_stats)


def _release(key: str) -> Release:
    try:
        return load_release(key)
    except ValueError as exc:
        _fail(str(exc))


@app.command()
def demo(
    duration: Annotated[float, typer.Option(
        help="Seconds the whole run takes, roughly (the phases share it).")] = 60.0,
    report: Annotated[Path, typer.Option(
        help="Where to write the HTML report (a folder: the report goes in it).")
    ] = Path("solumlite-demo-report.html"),
    db: Annotated[str | None, typer.Option(
        help="Store URL (default: a SQLite file in a temporary folder; an empty "
             "database).")] = None,
    transport: Annotated[str | None, typer.Option(
        help="oslo.messaging URL (rabbit://USER:PASS@HOST:PORT/): run each service as a "
             "process of its own (solumlite conductor | worker | api) on this bus "
             "(default: threads of this process, in-process transport).")] = None,
    clients: Annotated[int, typer.Option(help="Client threads sending requests.")] = 3,
    apis: Annotated[int, typer.Option(help="API instances.")] = 2,
    workers: Annotated[int, typer.Option(help="Worker services.")] = 2,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print the summary as JSON on stdout (instead of the text report).")
    ] = False,
    live: Annotated[bool | None, typer.Option(
        help="Show the live panel (default: when stderr is a terminal).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress output while running.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the clients' choices.")] = None,
    logs: Annotated[Path | None, typer.Option(
        help="With --transport: keep each service process's output in this folder.")] = None,
    kill: Annotated[list[str] | None, typer.Option(
        metavar="ROLE", help="The kill -9 fault run (with --transport): right after the "
                             "conductor's replacement, kill this role's process with SIGKILL "
                             "(conductor, worker, api; repeat for several) and restart it a "
                             "second later. Requests in flight to it may fail at the "
                             "connection; the clients send them again, and the run still "
                             "passes only with 0 failed and 0 lost.")] = None,
    fault: Annotated[str | None, typer.Option(
        hidden=True, help="Inject a fault (lost-write, conductor-outage): the run must "
                          "then fail. For the tests of the verdict.")] = None,
) -> None:
    """Watch a live upgrade: solumlite rolled from release N to N+1 under
    client traffic (expand, replace each service, online migrations,
    contract), then a report. Exit codes: 0 no request failed and no write
    was lost; 1 otherwise; 2 bad usage."""
    import json

    from solumlite.demo.report import render_text
    from solumlite.demo.scenario import DemoOptions, DemoRefused, run_demo

    if fault not in (None, "lost-write", "conductor-outage"):
        _fail(f"--fault {fault}: the faults are lost-write and conductor-outage")
    if report.is_dir():
        report = report / "solumlite-demo-report.html"
    try:
        options = DemoOptions(duration=duration, db=db, transport=transport,
                              clients=clients, apis=apis,
                              workers=workers, report=report, live=live, quiet=quiet,
                              seed=seed, fault=fault, logs=logs,  # type: ignore[arg-type]
                              kill=tuple(kill or ()))
    except ValueError as exc:
        _fail(str(exc))
    try:
        result = run_demo(options)
    except DemoRefused as exc:
        _fail(str(exc))
    if json_output:
        typer.echo(json.dumps({**result.summary.as_dict(), "report": str(result.report),
                               "problems": result.problems}, indent=2))
    else:
        typer.echo(render_text(result.summary, report=result.report.resolve(),
                               problems=result.problems))
    if not result.passed:
        typer.echo(f"error: the live upgrade FAILED: {result.summary.failed} failed "
                   f"request(s), {result.summary.writes_lost} lost write(s), "
                   f"{sum(result.summary.background_errors.values())} background error(s); "
                   f"see {result.report}", err=True)
        raise typer.Exit(EXIT_FAILED)


def main() -> None:
    """Entry point of the ``solumlite`` console script."""
    app(prog_name="solumlite")
