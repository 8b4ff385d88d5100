"""The assembly state machine and the steps that drive it (no store)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from solumlite.errors import IllegalTransitionError
from solumlite.lifecycle import (
    STEPS,
    TERMINAL,
    TRANSITIONS,
    Step,
    allowed_from,
    check_transition,
    next_move,
    plan_steps,
)


def everything(status: str) -> bool:
    return True


def no_verifying(status: str) -> bool:
    return status != "verifying"


def walk(steps: list[str], can_enter: Callable[[str], bool] = everything) -> list[str]:
    """The statuses a workflow of ``steps`` goes through when every step succeeds."""
    status, position, seen = "queued", 0, ["queued"]
    while status not in TERMINAL:
        move = next_move(steps, position, status, succeeded=True, can_enter=can_enter)
        status, position = move.status, move.position
        seen.append(status)
    return seen


def test_every_status_named_by_a_transition_is_a_state() -> None:
    for targets in TRANSITIONS.values():
        assert targets <= TRANSITIONS.keys()


def test_finished_statuses_go_nowhere() -> None:
    assert {"ready", "build_failed", "unit_testing_failed", "deployment_failed",
            "error"} == TERMINAL


@pytest.mark.parametrize(("current", "new"), [
    ("ready", "building"), ("queued", "ready"), ("building", "queued"),
    ("deploying", "building"), ("build_failed", "building"), ("error", "queued"),
    ("unit_testing", "deploying"),
])
def test_illegal_transitions_are_refused_saying_where_the_assembly_may_go(
        current: str, new: str) -> None:
    with pytest.raises(IllegalTransitionError) as info:
        check_transition(current, new)
    assert info.value.current == current
    assert info.value.allowed == sorted(TRANSITIONS[current])
    assert f"is {current}" in str(info.value)


def test_every_edge_of_the_table_is_accepted() -> None:
    for current, targets in TRANSITIONS.items():
        for new in targets:
            check_transition(current, new)


def test_an_unknown_status_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not an assembly status"):
        allowed_from("sleeping")


def test_a_plan_runs_unit_tests_only_when_the_app_has_them() -> None:
    assert plan_steps(everything, has_tests=True) == ["unittest", "build", "deploy", "verify"]
    assert plan_steps(everything, has_tests=False) == ["build", "deploy", "verify"]


def test_a_plan_leaves_out_a_step_whose_status_cannot_be_written() -> None:
    assert plan_steps(no_verifying, has_tests=True) == ["unittest", "build", "deploy"]


def test_a_successful_workflow_walks_every_step_to_ready() -> None:
    assert walk(["unittest", "build", "deploy", "verify"]) == [
        "queued", "unit_testing", "building", "deploying", "verifying", "ready"]
    assert walk(["build", "deploy"]) == ["queued", "building", "deploying", "ready"]


def test_a_step_that_cannot_be_entered_any_more_is_skipped() -> None:
    # Planned with verify, but the pin dropped back meanwhile.
    assert walk(["build", "deploy", "verify"], no_verifying) == [
        "queued", "building", "deploying", "ready"]


def test_completed_names_the_step_that_ended_successfully() -> None:
    move = next_move(["build", "deploy"], 0, "building", succeeded=True,
                     can_enter=everything)
    assert (move.status, move.position, move.completed) == ("deploying", 1, "build")
    last = next_move(["build", "deploy"], 1, "deploying", succeeded=True,
                     can_enter=everything)
    assert (last.status, last.workflow_status, last.completed) == (
        "ready", "succeeded", "deploy")


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_a_failed_step_ends_in_its_failure_status(step: Step) -> None:
    steps = [s.name for s in STEPS]
    position = steps.index(step.name)
    move = next_move(steps, position, step.running, succeeded=False, can_enter=everything)
    assert (move.status, move.workflow_status, move.completed) == (step.failed, "failed", None)


def test_a_workflow_that_cannot_begin_ends_in_error() -> None:
    move = next_move(["build", "deploy"], 0, "queued", succeeded=False, can_enter=everything)
    assert (move.status, move.workflow_status) == ("error", "failed")


def test_a_finished_workflow_cannot_advance() -> None:
    with pytest.raises(IllegalTransitionError, match="has finished"):
        next_move(["build", "deploy"], 1, "ready", succeeded=True, can_enter=everything)


def test_a_status_that_is_not_the_running_steps_is_refused() -> None:
    with pytest.raises(IllegalTransitionError, match="not the one running"):
        next_move(["build", "deploy"], 0, "deploying", succeeded=True, can_enter=everything)


def test_unknown_steps_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown workflow step"):
        next_move(["compile"], 0, "queued", succeeded=True, can_enter=everything)
