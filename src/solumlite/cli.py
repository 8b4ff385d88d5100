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

from solumlite import RELEASE_KEYS, load_release

__all__ = ["app", "main"]

app = typer.Typer(name="solumlite", no_args_is_help=True, add_completion=False,
                  help="solumlite, the reference PaaS of rollsafe.")

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
) -> None:
    """Serve the HTTP API of one release."""
    import uvicorn

    from solumlite.api import TokenMap, create_api
    from solumlite.api.auth import parse_pairs, read_file

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
    if db.split(":", 1)[0].lower() == "none":
        if transport is None:
            _fail("--db none:// sends every flow to a conductor: give --transport too")
        from rollsafe.rpc import RemoteIndirection
        from rollsafe.rpc.messaging import OsloMessagingTransport

        chosen.registry.indirection = RemoteIndirection(OsloMessagingTransport(transport),
                                                        chosen.registry)
        # Any flow that ran here by mistake fails at once, saying why.
        chosen.bind(chosen.open_store(db))
    else:
        try:
            store = chosen.open_store(db, contracted=contracted, storage_versions=pins)
        except (ValueError, ImportError) as exc:
            _fail(f"--db {db}: {exc}")
        if create_schema:
            store.ensure_schema()
        chosen.bind(store)
    uvicorn.run(create_api(chosen, tokens), host=host, port=port, log_level=log_level)


def main() -> None:
    """Entry point of the ``solumlite`` console script."""
    app(prog_name="solumlite")
