"""``--service MODULE:NAME``: how the fleet commands find a service.

Every command that works on a running fleet (``migrate``, ``upgrade check``,
``upgrade status``, ...) is pointed at the service's
:class:`~rollsafe.upgrade.definition.ServiceDefinition` and a database URL.
:func:`load_service` imports the definition and :func:`open_service_store`
opens its store; both exit with code 2 and a message saying what to fix
when they cannot, as :func:`~rollsafe.cli.app.load_registry` does.
"""

from __future__ import annotations

from typing import Annotated

import typer

from rollsafe.cli.app import _fail, import_attribute
from rollsafe.storage.store import Store
from rollsafe.upgrade.definition import ServiceDefinition

__all__ = ["ServiceOption", "load_service", "open_service_store"]

#: The ``--service`` option, for commands to share.
ServiceOption = Annotated[str, typer.Option(
    "--service", "-s", metavar="MODULE:NAME",
    help="The service, as 'package.module:attribute' naming a ServiceDefinition.")]


def load_service(spec: str, option: str = "--service") -> ServiceDefinition:
    """Import ``module:attribute`` and return the :class:`ServiceDefinition`
    it names; exit with code 2 and a message saying what is wrong
    otherwise (``option`` is the option name the message quotes)."""
    service = import_attribute(spec, option, "myservice.upgrade:SERVICE")
    if not isinstance(service, ServiceDefinition):
        _fail(f"{option} {spec!r} is a {type(service).__name__}, not a rollsafe "
              "ServiceDefinition (from rollsafe.upgrade import ServiceDefinition)")
    return service


def open_service_store(service: ServiceDefinition, url: str, *, pinned: bool = True) -> Store:
    """The service's store on the backend at ``url``; exit with code 2 and
    the reason when the URL is wrong or the backend cannot be opened.

    ``pinned``: write at the fleet's pins (the lowest version any live
    service knows, as the services themselves do), so what a command
    writes stays readable by every release still running. Reading the pins
    needs the fleet's service records; if they cannot be read the command
    exits with code 2 rather than write at versions an old release cannot
    read."""
    if not url:
        _fail("--url is empty: give the database URL (or set ROLLSAFE_DB_URL)")
    try:
        store = service.open_store(url)
    except Exception as exc:  # a wrong scheme, a missing driver, a bad path
        _fail(f"--url: cannot open the store: {type(exc).__name__}: {exc}")
    if pinned:
        try:
            store.storage_versions = service.fleet(store).target()
        except Exception as exc:
            store.close()
            _fail(f"cannot read the fleet's pins from the store: {type(exc).__name__}: "
                  f"{exc}; is --url the service's database, with its schema created?")
    return store
