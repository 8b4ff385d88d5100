"""Upgrade checks: is the fleet ready for the next step?

An :class:`UpgradeCheck` is a name and a function of a :class:`CheckContext`
(the service's definition, its store, its fleet) returning a
:class:`CheckResult`: success, warning or failure, with a message that
says what to do. :func:`run_checks` runs the built-in checks and then the
service's own (``ServiceDefinition(checks=[...])``) and collects a
:class:`CheckReport`, whose exit code is the worst status: 0 success,
1 warning, 2 failure (``rollsafe upgrade check``)::

    @upgrade_check("no-legacy-tenants")
    def no_legacy_tenants(context: CheckContext) -> CheckResult:
        left = count_legacy(context.store)
        if left:
            return CheckResult.failure(f"{left} legacy tenants left: run the "
                                       "tenant converter first")
        return CheckResult.success("no legacy tenants")

    SERVICE = ServiceDefinition(..., checks=[no_legacy_tenants])

The built-in checks (:data:`BUILTIN_CHECKS`):

- ``services-supported``: no live service reads an object version older
  than the oldest its release history still supports (failure).
- ``migrations-finished``: every online migration reports nothing left
  (failure otherwise, or when one cannot count).
- ``schema-expanded``: on SQL, the tables hold every column and index the
  objects need (failure: run ``rollsafe db expand``); stores without a
  schema (Redis) pass as not applicable.
- ``pins-at-release``: the fleet's pins are at the versions the newest
  release reads (warning while a live service holds them lower, naming it).

A check function that raises is reported as a failure with its error,
never skipped: a check that cannot tell is not a pass.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from rollsafe.errors import DefinitionError
from rollsafe.upgrade.status import MigrationLeft, migrations_left, older, pin_states

if TYPE_CHECKING:
    from rollsafe.rpc.fleet import Fleet, ServiceRecord
    from rollsafe.storage.sql import SqlBackend
    from rollsafe.storage.store import Store
    from rollsafe.upgrade.definition import ServiceDefinition

__all__ = ["BUILTIN_CHECKS", "CheckContext", "CheckReport", "CheckResult", "CheckStatus",
           "UpgradeCheck", "run_checks", "upgrade_check"]


class CheckStatus(enum.IntEnum):
    """How a check came out; the value is the exit code it stands for."""

    SUCCESS = 0
    WARNING = 1
    FAILURE = 2

    @property
    def label(self) -> str:
        """``"success"``, ``"warning"`` or ``"failure"``."""
        return self.name.lower()


@dataclass(frozen=True)
class CheckResult:
    """What one check found. ``message`` says what holds, or what to do;
    ``details`` carries JSON-ready data for scripts (``--json``); ``name``
    is filled in by :func:`run_checks` with the check's name."""

    status: CheckStatus
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    @classmethod
    def success(cls, message: str, **details: Any) -> CheckResult:
        """A passing result."""
        return cls(CheckStatus.SUCCESS, message, details)

    @classmethod
    def warning(cls, message: str, **details: Any) -> CheckResult:
        """A result that lets the upgrade go on but needs a look."""
        return cls(CheckStatus.WARNING, message, details)

    @classmethod
    def failure(cls, message: str, **details: Any) -> CheckResult:
        """A result that blocks the next step."""
        return cls(CheckStatus.FAILURE, message, details)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"name": self.name, "status": self.status.label, "message": self.message,
                "details": self.details}


class CheckContext:
    """What a check can look at: ``service`` (its definition), ``store``
    (its store) and ``fleet`` (its service records and pins). The live
    services and the migration counts are read once and shared by every
    check of a run."""

    def __init__(self, service: ServiceDefinition, store: Store, fleet: Fleet) -> None:
        self.service = service
        self.store = store
        self.fleet = fleet

    @cached_property
    def live(self) -> list[ServiceRecord]:
        """The live service records (one query, on first use)."""
        return self.fleet.live()

    @cached_property
    def pins(self) -> dict[str, str]:
        """The fleet's pins, from :attr:`live` (no further query)."""
        return self.fleet.pins_of(self.live)

    @cached_property
    def migrations(self) -> list[MigrationLeft]:
        """What each online migration has left, counted on first use at
        the fleet's pins (see :func:`~rollsafe.upgrade.status.migrations_left`)."""
        return migrations_left(self.service, self.store, pins=self.pins)


@dataclass(frozen=True)
class UpgradeCheck:
    """A named preflight check: ``function(context)`` returns a
    :class:`CheckResult`. ``description`` says what it looks at (the
    function's docstring by default, see :func:`upgrade_check`)."""

    name: str
    function: Callable[[CheckContext], CheckResult]
    description: str = ""

    def run(self, context: CheckContext) -> CheckResult:
        """The check's result, named; an exception or a value that is not a
        :class:`CheckResult` becomes a failure saying so."""
        try:
            result = self.function(context)
        except Exception as exc:  # reported as a failure, never swallowed
            error = f"{type(exc).__name__}: {exc}"
            result = CheckResult.failure(
                f"the check raised {error}; it could not tell whether the fleet is ready: "
                "fix what the error says (or the check) and run again", error=error)
        else:
            if not isinstance(result, CheckResult):
                result = CheckResult.failure(
                    f"the check returned {type(result).__name__}, not a CheckResult: fix the "
                    "check so it returns CheckResult.success/warning/failure(...)")
        return replace(result, name=self.name)


def upgrade_check(name: str) -> Callable[[Callable[[CheckContext], CheckResult]], UpgradeCheck]:
    """Decorator making ``fn(context) -> CheckResult`` an :class:`UpgradeCheck`
    named ``name``, described by the first line of its docstring."""

    def make(fn: Callable[[CheckContext], CheckResult]) -> UpgradeCheck:
        doc = (fn.__doc__ or "").strip()
        return UpgradeCheck(name, fn, doc.splitlines()[0] if doc else "")

    return make


@dataclass(frozen=True)
class CheckReport:
    """The results of one run, in the order the checks ran."""

    results: list[CheckResult]

    @property
    def status(self) -> CheckStatus:
        """The worst status (success when there are no results)."""
        return max((r.status for r in self.results), default=CheckStatus.SUCCESS)

    @property
    def exit_code(self) -> int:
        """0 success, 1 warning, 2 failure."""
        return int(self.status)

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no check named {name!r}; ran {', '.join(r.name for r in self.results)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (what ``rollsafe upgrade check --json`` prints)."""
        return {"status": self.status.label, "exit_code": self.exit_code,
                "checks": [r.to_dict() for r in self.results]}


# -- the built-in checks ----------------------------------------------------------

def _versions(manifest: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in sorted(manifest.items()))


@upgrade_check("services-supported")
def _services_supported(context: CheckContext) -> CheckResult:
    """No live service reads an object version older than supported."""
    oldest = context.fleet.oldest_supported
    if not oldest:
        return CheckResult.success(
            f"not applicable: {context.service.name} declares no release history, so no "
            "version is known to be unsupported (ServiceDefinition(releases=...))")
    too_old = []
    for record in context.live:
        for name, version in sorted(record.manifest.items()):
            if name in oldest and older(version, oldest[name]):
                too_old.append({"service": record.id, "release": record.release,
                                "object": name, "version": version, "oldest": oldest[name]})
    if too_old:
        listing = "; ".join(f"{t['service']} (release {t['release']}) reads {t['object']} "
                            f"{t['version']}, older than {t['oldest']}" for t in too_old)
        services = sorted({t["service"] for t in too_old})
        return CheckResult.failure(
            f"{len(services)} live service(s) older than supported: {listing}. Upgrade them "
            "to a supported release (or stop them) before going on: the newest release "
            "cannot serve them", too_old=too_old)
    return CheckResult.success(
        f"{len(context.live)} live service(s), none older than the oldest supported "
        f"versions ({_versions(oldest)})", oldest_supported=dict(oldest))


@upgrade_check("migrations-finished")
def _migrations_finished(context: CheckContext) -> CheckResult:
    """Every online migration reports nothing left."""
    left = context.migrations
    if not left:
        return CheckResult.success("not applicable: the service registers no online "
                                   "migrations")
    failed = [m for m in left if m.error is not None]
    pending = [m for m in left if m.error is None and m.remaining]
    details = {"migrations": [m.to_dict() for m in left]}
    if failed or pending:
        parts = [f"{m.name}: {m.remaining} record(s) left" for m in pending]
        parts += [f"{m.name}: could not count ({m.error})" for m in failed]
        todo = "run rollsafe migrate until it exits 0"
        if failed:
            todo = "fix the failing count, then " + todo
        return CheckResult.failure(f"online migrations not finished: {'; '.join(parts)}; "
                                   f"{todo}", **details)
    return CheckResult.success(f"all {len(left)} online migration(s) report nothing left",
                               **details)


def _sql_backend(store: Store) -> SqlBackend | None:
    """The store's backend if it is SQL. A store whose SQL module was never
    imported cannot be on SQL, so this loads no database library."""
    module = sys.modules.get("rollsafe.storage.sql")
    if module is None or not isinstance(store.backend, module.SqlBackend):
        return None
    backend: SqlBackend = store.backend
    return backend


@upgrade_check("schema-expanded")
def _schema_expanded(context: CheckContext) -> CheckResult:
    """On SQL, the schema holds what the objects need."""
    backend = _sql_backend(context.store)
    if backend is None:
        kind = context.store.backend.name
        return CheckResult.success(f"not applicable: a {kind} store has no schema to expand")
    from rollsafe.storage import migrate

    schema = migrate.plan(backend, context.store.collections)
    expand = [line.split(": ", 1)[1] for line in schema.describe()
              if line.startswith("expand: ")]
    contract = [line.split(": ", 1)[1] for line in schema.describe()
                if line.startswith("contract: ")]
    manual = [line.split(": ", 1)[1] for line in schema.describe()
              if line.startswith("manual: ")]
    details = {"expand": expand, "contract": contract, "manual": manual}
    if expand:
        return CheckResult.failure(
            f"schema not expanded: {len(expand)} change(s) missing ({'; '.join(expand)}); "
            "run rollsafe db expand before starting the new release", **details)
    if manual:
        return CheckResult.warning(
            f"the database differs in ways neither expand nor contract changes "
            f"({'; '.join(manual)}); review them by hand", **details)
    after = (f"; contract has {len(contract)} drop(s) waiting for rollsafe db contract"
             if contract else "")
    return CheckResult.success("schema expanded" + after, **details)


@upgrade_check("pins-at-release")
def _pins_at_release(context: CheckContext) -> CheckResult:
    """The pins are at the versions the newest release reads."""
    releases = context.service.releases
    if releases is None:
        return CheckResult.success(
            f"not applicable: {context.service.name} declares no release history, so there "
            "is no expected level (ServiceDefinition(releases=...))")
    if not context.live:
        return CheckResult.success("no live service: nothing holds the pins")
    expected = releases.manifest(releases.latest)
    states = pin_states(context.pins, expected, context.live)
    behind = [p for p in states if p.behind]
    ahead = [p for p in states if p.pinned is not None and p.expected is not None
             and older(p.expected, p.pinned)]
    details = {"release": releases.latest, "pins": [p.to_dict() for p in states]}
    if behind:
        listing = "; ".join(f"{p.object} at {p.pinned} (release {releases.latest} reads "
                            f"{p.expected}), held back by {', '.join(p.held_back_by)}"
                            for p in behind)
        return CheckResult.warning(
            f"pins below release {releases.latest}: {listing}. Upgrade or stop those "
            "services; the pins rise by themselves once their records go stale", **details)
    if ahead:
        listing = "; ".join(f"{p.object} at {p.pinned}" for p in ahead)
        return CheckResult.warning(
            f"live services read versions newer than release {releases.latest} records "
            f"({listing}): add their release to the release history", **details)
    return CheckResult.success(f"pins at release {releases.latest} "
                               f"({_versions(expected)})", **details)


#: The checks every run starts with, in order.
BUILTIN_CHECKS: tuple[UpgradeCheck, ...] = (
    _services_supported, _migrations_finished, _schema_expanded, _pins_at_release)


def run_checks(service: ServiceDefinition, store: Store, fleet: Fleet | None = None, *,
               extra: Sequence[UpgradeCheck] = ()) -> CheckReport:
    """Run the built-in checks, then ``service.checks``, then ``extra``,
    against ``store`` and ``fleet`` (by default ``service.fleet(store)``).
    :class:`DefinitionError` if two checks share a name."""
    checks = [*BUILTIN_CHECKS, *service.checks, *extra]
    seen: set[str] = set()
    for check in checks:
        if not isinstance(check, UpgradeCheck):
            raise DefinitionError(f"{service.name}: checks must be UpgradeCheck objects (see "
                                  f"rollsafe.upgrade.checks.upgrade_check), not "
                                  f"{type(check).__name__}")
        if check.name in seen:
            raise DefinitionError(f"{service.name}: two upgrade checks are named "
                                  f"{check.name!r}; give each its own name")
        seen.add(check.name)
    context = CheckContext(service, store, fleet if fleet is not None else service.fleet(store))
    return CheckReport([check.run(context) for check in checks])
