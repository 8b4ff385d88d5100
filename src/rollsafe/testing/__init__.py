"""Test helpers for code that uses rollsafe (see docs/testing.md).

- :mod:`.strategies`: Hypothesis strategies read from object declarations
  (objects and payloads of any version);
- :mod:`.roundtrips`: round trips of every version pair, searched with
  Hypothesis;
- :mod:`.corpus`: the golden corpus, payloads captured per release and
  replayed on today's code;
- :mod:`.pytest_plugin`: the ``rollsafe_fingerprints``,
  ``rollsafe_round_trips`` and ``rollsafe_corpus`` fixtures.

Only the first two import Hypothesis; import this package freely.
"""
