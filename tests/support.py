"""Helpers shared by test modules (importable because tests/conftest.py
puts this folder on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_bench_model() -> ModuleType:
    """The benchmark model (benchmarks/model.py), imported once."""
    name = "rollsafe_bench_model"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "model.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


#: Seconds a test waits for something that should happen soon.
WAIT = 10.0


def wait_for(condition: Callable[[], bool], what: str, *, within: float = WAIT) -> None:
    """Poll ``condition`` until it holds; fail the test, naming ``what``,
    after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within} s")
        time.sleep(0.01)


class FakeClock:
    """An aware clock that moves only when told to (for staleness, expiry)."""

    def __init__(self, start: datetime = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        self.now += timedelta(seconds=seconds)
