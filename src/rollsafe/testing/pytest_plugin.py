"""pytest plugin (loaded automatically when rollsafe is installed).

Three fixtures, each a checker that fails the test with a readable list:

``rollsafe_fingerprints``
    object schemas changed without a version bump::

        def test_objects_are_versioned(rollsafe_fingerprints):
            rollsafe_fingerprints(registry, "tests/object_fingerprints.json")

    Run pytest with ``--rollsafe-write-fingerprints`` to record the file
    instead (after bumping versions on purpose).

``rollsafe_round_trips``
    payloads of some version that do not survive a trip to another version
    and back (every version pair, searched with Hypothesis)::

        def test_histories_round_trip(rollsafe_round_trips):
            rollsafe_round_trips(registry)

``rollsafe_corpus``
    payloads captured at earlier releases that today's code misreads::

        def test_golden_corpus(rollsafe_corpus):
            rollsafe_corpus(registry, "tests/corpus")

    Run pytest with ``--rollsafe-capture-corpus=RELEASE`` (at a release) to
    capture ``tests/corpus/RELEASE/`` first.

Hypothesis is imported only when ``rollsafe_round_trips`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from rollsafe.errors import SnapshotError
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.fingerprint import (
    check_fingerprints,
    read_fingerprints,
    write_fingerprints,
)
from rollsafe.objects.registry import Registry

__all__ = ["pytest_addoption", "rollsafe_corpus", "rollsafe_fingerprints",
           "rollsafe_round_trips"]

RoundTripTarget = Registry | type[VersionedObject] | Iterable[type[VersionedObject]]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--rollsafe-write-fingerprints`` and ``--rollsafe-capture-corpus``."""
    parser.addoption("--rollsafe-write-fingerprints", action="store_true", default=False,
                     help="write object fingerprint files instead of checking them")
    parser.addoption("--rollsafe-capture-corpus", metavar="RELEASE", default=None,
                     help="capture the golden corpus of release RELEASE (<corpus>/RELEASE/) "
                          "before checking it")


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


@pytest.fixture
def rollsafe_round_trips() -> Callable[..., None]:
    """A function ``check(target, *, max_examples=20)`` that fails the test
    listing every version pair whose round trip loses or refuses a payload
    (``target``: a registry, a class, or several classes; see
    :mod:`rollsafe.testing.roundtrips`)."""

    def check(target: RoundTripTarget, *, max_examples: int = 20) -> None:
        from rollsafe.testing.roundtrips import check_round_trips

        problems = check_round_trips(target, max_examples=max_examples)
        if problems:
            pytest.fail("payloads did not survive their round trips:\n"
                        + "\n".join(f"  - {p}" for p in problems), pytrace=False)

    return check


@pytest.fixture
def rollsafe_corpus(request: pytest.FixtureRequest) -> Callable[..., None]:
    """A function ``check(registry, path, *, examples=())`` that fails the
    test listing every payload of the golden corpus at ``path`` that today's
    code misreads (see :mod:`rollsafe.testing.corpus`). With pytest's
    ``--rollsafe-capture-corpus=RELEASE`` it first captures ``path/RELEASE``
    from ``examples`` (else deterministic samples). A relative path is taken
    from the pytest root directory."""
    release = request.config.getoption("--rollsafe-capture-corpus")
    root = request.config.rootpath

    def check(registry: Registry, path: str | Path, *,
              examples: Iterable[VersionedObject] = ()) -> None:
        from rollsafe.testing.corpus import capture_corpus, check_corpus

        folder = Path(path) if Path(path).is_absolute() else root / path
        message = None
        try:
            if release:
                capture_corpus(registry, release, folder, examples=examples)
            problems = check_corpus(registry, folder)
        except SnapshotError as exc:
            message = str(exc)
        if message is not None:  # failed outside the except: the message is shown once
            pytest.fail(message, pytrace=False)
        if problems:
            pytest.fail(f"the golden corpus in {path} no longer round-trips:\n"
                        + "\n".join(f"  - {p}" for p in problems), pytrace=False)

    return check
