"""The assembly state machine and the workflow steps that drive it.

Shared by both releases: release N+1 adds the ``verify`` step (and the
assembly status ``verifying``), which release N does not know. A step runs
only where its status can be written, decided by the caller through
``can_enter``: a release whose Assembly lacks the status, or a store still
writing an Assembly version without it (the fleet pin), skips the step.
That is the two-release enum rule: N+1 reads ``verifying`` from the start,
and writes it only once every live service reads it.

::

    queued -> unit_testing -> building -> deploying -> [verifying ->] ready
        each running status may instead end in its step's failure status;
        queued may end in error (the workflow could not begin)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from solumlite.errors import IllegalTransitionError

__all__ = [
    "STEPS",
    "TERMINAL",
    "TRANSITIONS",
    "Move",
    "Step",
    "allowed_from",
    "check_transition",
    "next_move",
    "plan_steps",
]


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a workflow: the assembly status while it runs, and the
    status it ends in when it fails."""

    name: str
    running: str
    failed: str


#: Every step either release knows, in the order a workflow runs them.
STEPS: tuple[Step, ...] = (
    Step("unittest", "unit_testing", "unit_testing_failed"),
    Step("build", "building", "build_failed"),
    Step("deploy", "deploying", "deployment_failed"),
    Step("verify", "verifying", "deployment_failed"),
)
_BY_NAME = {step.name: step for step in STEPS}

#: Assembly status -> the statuses it may move to. Finished ones go nowhere.
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"unit_testing", "building", "error"}),
    "unit_testing": frozenset({"building", "unit_testing_failed"}),
    "building": frozenset({"deploying", "build_failed"}),
    "deploying": frozenset({"verifying", "ready", "deployment_failed"}),
    "verifying": frozenset({"ready", "deployment_failed"}),
    "ready": frozenset(),
    "unit_testing_failed": frozenset(),
    "build_failed": frozenset(),
    "deployment_failed": frozenset(),
    "error": frozenset(),
}

#: The statuses a finished workflow leaves its assembly in.
TERMINAL = frozenset(status for status, moves in TRANSITIONS.items() if not moves)


def allowed_from(status: str) -> frozenset[str]:
    """Where an assembly in ``status`` may go (empty when finished)."""
    try:
        return TRANSITIONS[status]
    except KeyError:
        raise ValueError(f"{status!r} is not an assembly status; known: "
                         f"{', '.join(TRANSITIONS)}") from None


def check_transition(current: str, new: str, what: str = "the assembly") -> None:
    """Raise :class:`IllegalTransitionError` unless ``current -> new`` is an
    edge of the state machine."""
    moves = allowed_from(current)
    if new not in moves:
        raise IllegalTransitionError(what, current, f"go to {new}", moves)


def plan_steps(can_enter: Callable[[str], bool], *, has_tests: bool) -> list[str]:
    """The steps of a new workflow: every step whose running status
    ``can_enter`` accepts (the unit tests only when the app has a test
    command). Build and deploy are always part of it."""
    steps = []
    for step in STEPS:
        if step.name == "unittest" and not has_tests:
            continue
        if step.name in ("build", "deploy") or can_enter(step.running):
            steps.append(step.name)
    return steps


@dataclass(frozen=True, slots=True)
class Move:
    """What one advance does: the assembly's new ``status``, the workflow's
    new ``position`` (index of the running step) and ``workflow_status``,
    and ``completed``: the step that just ended successfully (its results
    are recorded by the caller), if any."""

    status: str
    position: int
    workflow_status: str
    completed: str | None


def next_move(steps: Sequence[str], position: int, status: str, *, succeeded: bool,
              can_enter: Callable[[str], bool], what: str = "the assembly") -> Move:
    """Where one advance takes an assembly in ``status`` whose workflow has
    ``steps`` and is at ``position``.

    From ``queued`` the first step begins (or, if it could not begin,
    ``error``). From a step's running status, that step ended: on success
    the next step begins (a step whose status ``can_enter`` refuses is
    skipped) or, after the last, the assembly is ``ready``; on failure it
    takes the step's failure status. A finished assembly, or one whose
    status is not the running step's, cannot advance
    (:class:`IllegalTransitionError`). Every move is checked against
    :data:`TRANSITIONS`."""
    known = [_step(name) for name in steps]
    if status in TERMINAL:
        raise IllegalTransitionError(what, status, "advance: its workflow has finished; "
                                     "start a new workflow", ())
    if status == "queued":
        if not succeeded:
            move = Move("error", position, "failed", None)
        else:
            begin = _runnable(known, 0, can_enter)
            if begin is None:
                raise IllegalTransitionError(what, status, "begin: none of the workflow's "
                                             f"steps ({', '.join(steps)}) can run here",
                                             allowed_from(status))
            move = Move(known[begin].running, begin, "running", None)
    else:
        if not 0 <= position < len(known) or known[position].running != status:
            running = known[position].name if 0 <= position < len(known) else "none"
            raise IllegalTransitionError(what, status, f"advance the workflow's step "
                                         f"{running}, which is not the one running",
                                         allowed_from(status))
        step = known[position]
        if not succeeded:
            move = Move(step.failed, position, "failed", None)
        else:
            after = _runnable(known, position + 1, can_enter)
            move = Move("ready", position, "succeeded", step.name) if after is None \
                else Move(known[after].running, after, "running", step.name)
    check_transition(status, move.status, what)
    return move


def _step(name: str) -> Step:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown workflow step {name!r}; known: "
                         f"{', '.join(_BY_NAME)}") from None


def _runnable(steps: Sequence[Step], start: int, can_enter: Callable[[str], bool]
              ) -> int | None:
    for index in range(start, len(steps)):
        if can_enter(steps[index].running):
            return index
    return None

