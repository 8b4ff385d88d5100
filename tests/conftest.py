"""Test configuration: makes tests/support.py importable as ``support``, and
gives the URLs of the real servers the tests run against."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


# --- Real servers -----------------------------------------------------------
# scripts/test starts PostgreSQL, Redis and RabbitMQ (scripts/servers) and
# exports their URLs. Without a URL a test that needs the server skips, except
# under CI, where it fails: CI must never skip the real-server tests silently.

POSTGRES_URL_VAR = "ROLLSAFE_TEST_POSTGRES_URL"
REDIS_URL_VAR = "ROLLSAFE_TEST_REDIS_URL"
RABBIT_URL_VAR = "ROLLSAFE_TEST_RABBIT_URL"


def running_in_ci() -> bool:
    """True when the CI variable is set to a true value (``true``, ``1``, ...)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def server_url(variable: str) -> str:
    """The URL in ``variable``; skips the test without it (fails it under CI)."""
    url = os.environ.get(variable, "").strip()
    if url:
        return url
    message = f"{variable} is not set: start the servers with ./scripts/test"
    if running_in_ci():
        pytest.fail(f"{message} (CI must run the real-server tests)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """``postgresql://postgres@127.0.0.1:PORT/rollsafe_test``, a real PostgreSQL 15."""
    return server_url(POSTGRES_URL_VAR)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://127.0.0.1:PORT/0``, a real redis-server 7."""
    return server_url(REDIS_URL_VAR)


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    """``rabbit://guest:guest@127.0.0.1:PORT/``, a real RabbitMQ (oslo.messaging's form)."""
    return server_url(RABBIT_URL_VAR)
