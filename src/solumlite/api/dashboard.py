"""The operator dashboard: the fleet during a rolling upgrade, in a browser.

Two routes, served by the API when it is given an operator token:

- ``GET /dashboard``: one self-contained HTML page (inline CSS and script,
  nothing from the network) that shows the services with their release,
  object versions and heartbeat, the pins, and each online migration's
  records left with a progress bar and a chart, refreshed every few
  seconds. The page holds no data, so it needs no token; its script asks
  for the operator token (or takes it from ``/dashboard#token=...``: a
  fragment never reaches the server or its logs) and keeps it in the tab's
  session storage.
- ``GET /dashboard/status``: the fleet status as JSON, exactly
  :meth:`rollsafe.upgrade.status.FleetStatus.to_dict`, for the holder of
  the operator token only: 401 without it, 403 with a project's token.

The status comes from a status source (:mod:`solumlite.status`): read from
the store where this API has one, or asked of the conductor where it has
none. The operator token is configuration, separate from the projects'
tokens and different from each of them.
"""

from __future__ import annotations

import secrets
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rollsafe.storage.nostore import StoreAccessError
from solumlite.api.auth import TokenMap
from solumlite.api.errors import ApiError
from solumlite.errors import ReleaseNotBoundError
from solumlite.status import StatusSource

__all__ = ["OperatorToken", "install_dashboard"]

_PAGE = resources.files("solumlite.api").joinpath("dashboard.html").read_text(encoding="utf-8")

_BEARER = HTTPBearer(auto_error=False, scheme_name="operator token",
                     description="the operator token (not a project's)")


class OperatorToken:
    """The operator's bearer token. The same form as a project's (8 to 256
    printable ASCII characters without spaces), and refused if ``tokens``
    maps it to a project: then a project could read the fleet. Compared in
    constant time."""

    def __init__(self, token: str, tokens: TokenMap) -> None:
        try:
            self._token = TokenMap({token: "operator"})
        except ValueError as exc:
            raise ValueError(f"operator token: {exc}") from None
        if tokens.project_of(token) is not None:
            raise ValueError("the operator token is also a project's token: give the operator "
                             "a token of its own")
        self._tokens = tokens

    def check(self, token: str | None) -> None:
        """Return if ``token`` is the operator's; else :class:`ApiError`
        401 (none, or unknown) or 403 (a project's token)."""
        challenge = {"WWW-Authenticate": "Bearer"}
        if token is None:
            raise ApiError(401, "unauthorized", "send the operator token: Authorization: "
                                                "Bearer <operator token>", challenge)
        if self._token.project_of(token) is not None:
            return
        if self._tokens.project_of(token) is not None:
            raise ApiError(403, "forbidden", "this is a project's token; the fleet status "
                                             "needs the operator token")
        raise ApiError(401, "unauthorized", "unknown operator token", challenge)


def install_dashboard(api: FastAPI, *, operator: OperatorToken, status_source: StatusSource,
                      refresh_seconds: float = 3.0) -> None:
    """Add ``GET /dashboard`` and ``GET /dashboard/status`` to ``api``: the
    page refreshes every ``refresh_seconds``; the status is what
    ``status_source`` returns, for ``operator``'s token only."""
    if refresh_seconds <= 0:
        raise ValueError("refresh_seconds must be a positive number of seconds")
    refresh_ms = str(round(refresh_seconds * 1000))

    def operator_only(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                             Depends(_BEARER)]) -> None:
        operator.check(None if credentials is None else credentials.credentials)

    @api.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    def dashboard_page(request: Request) -> HTMLResponse:
        """The dashboard page (its script fetches the status)."""
        nonce = secrets.token_urlsafe(16)
        page = _PAGE.replace("__NONCE__", nonce).replace("__REFRESH_MS__", refresh_ms)
        policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; "
                  f"style-src 'nonce-{nonce}'; connect-src 'self'; img-src 'self'; "
                  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        return HTMLResponse(page, headers={
            "Content-Security-Policy": policy, "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    @api.get("/dashboard/status", tags=["operator"],
             dependencies=[Depends(operator_only)],
             responses={200: {"description": "rollsafe's FleetStatus.to_dict(): services, "
                                             "pins, online migrations left"},
                        401: {"description": "no operator token"},
                        403: {"description": "a project's token"},
                        503: {"description": "the status cannot be read now"}})
    def dashboard_status() -> JSONResponse:
        """The fleet now: every recorded service (release, object versions,
        heartbeat age, live or stale), the pins, and the records each online
        migration has left (operator token only)."""
        try:
            status: dict[str, Any] = status_source()
        except (StoreAccessError, ReleaseNotBoundError) as exc:
            # An API without store access given no remote source: a setup error.
            raise ApiError(503, "unavailable", f"this API cannot read the fleet status: {exc}; "
                           "give it the conductor's (solumlite.status.RemoteStatus)") from None
        return JSONResponse(status, headers={"Cache-Control": "no-store"})
