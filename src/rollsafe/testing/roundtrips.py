"""Round trips of every version pair, searched with Hypothesis.

For each class and each pair of versions ``(a, b)`` of its history,
payloads a service at ``a`` could send (:func:`~rollsafe.testing.strategies.version_payloads`)
go through the current code to ``b`` and back, as
:func:`rollsafe.upgrade.roundtrip.round_trip` defines: for ``b`` at least
``a`` they come back equal (fields a ``Removed`` entry dropped aside); for
``b`` older than ``a`` the ``b`` payload is stable. One line in a test::

    from rollsafe.testing.roundtrips import assert_round_trips

    def test_histories_round_trip():
        assert_round_trips(registry)

or, with the pytest plugin, ``rollsafe_round_trips(registry)``. Do not call
it from inside a Hypothesis test: it runs its own searches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import HealthCheck, given, reject, settings
from hypothesis.errors import Unsatisfiable

from rollsafe.errors import DowngradeError, RoundTripError, short_repr
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.registry import Registry
from rollsafe.testing.strategies import version_payloads
from rollsafe.upgrade.roundtrip import round_trip

__all__ = ["assert_round_trips", "check_round_trips"]


def _classes(target: Registry | type[VersionedObject] | Iterable[type[VersionedObject]]
             ) -> list[type[VersionedObject]]:
    if isinstance(target, Registry):
        return target.newest()
    if isinstance(target, type):
        return [target]
    return list(target)


def check_round_trips(target: Registry | type[VersionedObject] | Iterable[type[VersionedObject]],
                      *, max_examples: int = 20) -> list[str]:
    """For every class of ``target`` (a registry's newest classes, one class,
    or several) and every version pair, search ``max_examples`` payloads for
    one that does not survive; return one line per failing pair (with the
    smallest payload Hypothesis found), empty when all survive. A version
    whose own payloads do not survive ``(a, a)`` is reported once, not once
    per pair."""
    problems = []
    for cls in _classes(target):
        cls._rs_info.build()
        numbers = cls.VERSIONS.numbers
        for a in numbers:
            # The pair (a, a) first: when payloads at a cannot even be read
            # back, every other pair fails the same way; say it once.
            for b in [a, *(n for n in numbers if n != a)]:
                problem = _search(cls, a, b, max_examples)
                if problem is not None:
                    problems.append(problem)
                    if b == a:
                        break
    return problems


def assert_round_trips(target: Registry | type[VersionedObject] | Iterable[type[VersionedObject]],
                       *, max_examples: int = 20) -> None:
    """Raise :class:`~rollsafe.errors.RoundTripError` listing every version pair of
    ``target`` whose round trip fails (see :func:`check_round_trips`)."""
    problems = check_round_trips(target, max_examples=max_examples)
    if problems:
        raise RoundTripError("payloads did not survive their round trips:\n"
                             + "\n".join(f"  - {p}" for p in problems))


def _search(cls: type[VersionedObject], a: str, b: str, max_examples: int) -> str | None:
    @settings(max_examples=max_examples, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.data_too_large])
    @given(version_payloads(cls, a))
    def survives(payload: dict[str, Any]) -> None:
        try:
            problems = round_trip(cls, payload, via=b)
        except DowngradeError:
            reject()  # b cannot express this payload: no defect
        if problems:
            raise RoundTripError(f"{problems[0]}\n      payload: {short_repr(payload, 400)}")

    try:
        survives()
    except RoundTripError as exc:
        return str(exc)
    except Unsatisfiable:
        return None  # no payload at a can be expressed at b
    return None
