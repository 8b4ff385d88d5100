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

from rollsafe.objects.fingerprint import assert_fingerprints, write_fingerprints
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
    pytest runs with ``--rollsafe-write-fingerprints``)."""
    write = bool(request.config.getoption("--rollsafe-write-fingerprints"))

    def check(registry: Registry, path: str | Path) -> None:
        if write or not Path(path).exists():
            if not write:
                pytest.fail(f"no fingerprint file at {path}; run pytest with "
                            "--rollsafe-write-fingerprints to record one", pytrace=False)
            write_fingerprints(registry, path)
            return
        try:
            assert_fingerprints(registry, path)
        except Exception as exc:  # FingerprintMismatchError: show the list, not a traceback
            pytest.fail(str(exc), pytrace=False)

    return check
