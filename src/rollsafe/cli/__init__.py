"""The ``rollsafe`` command line.

Exit codes, for every command: 0 success, 1 the check found differences
(or more work is left), 2 bad usage or input.
"""

from __future__ import annotations

from rollsafe.cli.app import app, main

__all__ = ["app", "main"]
