"""Bearer tokens, each mapped to the one project it may see.

The mapping is configuration (``--token TOKEN=PROJECT`` on the command
line, or a JSON file ``{"TOKEN": "PROJECT", ...}``). A request without a
token, or with one the map does not hold, gets 401; with a valid token it
sees its project's objects only, and another project's objects are 404, as
if they did not exist (the flows scope every read and write to it).
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["TokenMap", "parse_pairs", "read_file"]

_TOKEN = re.compile(r"[\x21-\x7e]{8,256}")
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class TokenMap:
    """Token -> project. Tokens are 8 to 256 printable ASCII characters
    without spaces; projects 1 to 64 letters, digits, ``_``, ``.`` and
    ``-``. Lookups compare tokens in constant time."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        if not tokens:
            raise ValueError("no tokens: give at least one TOKEN=PROJECT, or nobody can "
                             "use the API")
        for token, project in tokens.items():
            if not isinstance(token, str) or not _TOKEN.fullmatch(token):
                raise ValueError("a token must be 8 to 256 printable ASCII characters "
                                 "without spaces")
            if not isinstance(project, str) or not _PROJECT.fullmatch(project):
                raise ValueError(f"project {project!r}: 1 to 64 letters, digits, '_', '.' "
                                 "and '-', starting with a letter or digit")
        self._pairs = [(token.encode(), project) for token, project in tokens.items()]

    @classmethod
    def parse(cls, pairs: Iterable[str]) -> TokenMap:
        """From ``TOKEN=PROJECT`` strings (the command line's form)."""
        return cls(parse_pairs(pairs))

    @classmethod
    def load(cls, path: str | Path) -> TokenMap:
        """From a JSON file holding ``{"TOKEN": "PROJECT", ...}``."""
        return cls(read_file(path))

    def project_of(self, token: str) -> str | None:
        """The project ``token`` is mapped to, or None."""
        given = token.encode()
        found = None
        for known, project in self._pairs:  # every pair, so timing tells nothing
            if hmac.compare_digest(known, given):
                found = project
        return found

    @property
    def projects(self) -> list[str]:
        """Every project some token maps to, sorted."""
        return sorted({project for _, project in self._pairs})


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``TOKEN=PROJECT`` strings as a token -> project dict (unchecked)."""
    tokens: dict[str, str] = {}
    for pair in pairs:
        token, sep, project = pair.partition("=")
        if not sep:
            raise ValueError("a token is given as TOKEN=PROJECT")
        tokens[token] = project
    return tokens


def read_file(path: str | Path) -> dict[str, str]:
    """The token -> project dict of a JSON file (unchecked)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read tokens from {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object of token -> project")
    return data
