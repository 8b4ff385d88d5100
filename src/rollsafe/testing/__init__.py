"""Test helpers for code that uses rollsafe (Hypothesis strategies in :mod:`.strategies`)."""
