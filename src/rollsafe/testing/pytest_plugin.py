"""pytest plugin (loaded automatically when rollsafe is installed).

It offers the ``rollsafe_fingerprints`` fixture, a checker that fails a test
with a readable list of differences when object schemas changed without a
version bump::

    def test_objects_are_versioned(rollsafe_fingerprints):
        rollsafe_fingerprints(registry, "tests/object_fingerprints.json")

Run pytest with ``--rollsafe-write-fingerprints`` to record the file instead
(after bumping versions on purpose).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rollsafe.objects.fingerprint import (
    check_fingerprints,
    read_fingerprints,
    write_fingerprints,
)
from rollsafe.objects.registry import Registry

__all__ = ["pytest_addoption", "rollsafe_fingerprints"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--rollsafe-write-fingerprints``."""
    parser.addoption("--rollsafe-write-fingerprints", action="store_true", default=False,
                     help="write object fingerprint files instead of checking them")


@pytest.fixture
def rollsafe_fingerprints(request: pytest.FixtureRequest) -> Callable[[Registry, str | Path],
                                                                       None]:
    """A function ``check(registry, path)`` that fails the test when the
    registry's fingerprints differ from the file (or writes the file when
    pytest runs with ``--rollsafe-write-fingerprints``). A relative path is
    taken from the pytest root directory."""
    write = bool(request.config.getoption("--rollsafe-write-fingerprints"))

    root = request.config.rootpath

    def check(registry: Registry, path: str | Path) -> None:
        file = Path(path) if Path(path).is_absolute() else root / path
        if write:
            write_fingerprints(registry, file)
            return
        if not file.exists():
            pytest.fail(f"no fingerprint file at {path}; run pytest with "
                        "--rollsafe-write-fingerprints to record one", pytrace=False)
        try:
            expected = read_fingerprints(file)
        except ValueError as exc:
            expected = None
            message = f"{path}: {exc}"
        if expected is None:  # failed outside the except: the message is shown once
            pytest.fail(message, pytrace=False)
        problems = check_fingerprints(registry, expected)
        if problems:
            pytest.fail(f"object fingerprints differ from {path}:\n"
                        + "\n".join(f"  - {p}" for p in problems), pytrace=False)

    return check
