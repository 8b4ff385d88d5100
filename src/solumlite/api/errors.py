"""How the API answers when something is wrong: one JSON shape
(:class:`~solumlite.api.models.ErrorOut`) and a status per error.

Errors come from three places and are mapped the same way: the request
itself (bad JSON, a refused field, a missing token), a flow run here, or a
flow run on the conductor, which arrives as
:class:`rollsafe.rpc.RemoteError` naming the remote exception's class.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi import HTTPException as FastApiHTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rollsafe import RollsafeError
from rollsafe.rpc import RemoteError
from solumlite.errors import SolumliteError

__all__ = ["STATUS_OF", "ApiError", "BodyLimit", "install_error_handlers"]

_LOG = logging.getLogger("solumlite.api")

#: Exception class name -> (HTTP status, error code). Names, so a remote
#: error (which carries only its class name) maps like a local one.
STATUS_OF: dict[str, tuple[int, str]] = {
    "NotFoundError": (404, "not_found"),
    "StaleRevisionError": (409, "stale_revision"),
    "ConflictError": (409, "conflict"),
    "IllegalTransitionError": (409, "illegal_transition"),
    "NameTakenError": (409, "name_taken"),
    "LanguagePackInUseError": (409, "in_use"),
    "UnknownLanguagePackError": (422, "unknown_language_pack"),
    "ValidationError": (422, "invalid_value"),
    "MissingFieldError": (422, "invalid_value"),
    "ReadOnlyFieldError": (422, "invalid_value"),
    "DecodeError": (400, "bad_request"),
    "LimitExceededError": (400, "bad_request"),
    "RetryableStorageError": (503, "unavailable"),
    "RetryableRpcError": (503, "unavailable"),
    "RpcTimeoutError": (503, "unavailable"),
}
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large",
               415: "unsupported_media_type", 422: "invalid_request", 503: "unavailable"}


class ApiError(Exception):
    """An error response the API decides itself (a missing token, say)."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        super().__init__(message)


def error_response(status: int, code: str, message: str, *,
                   problems: list[dict[str, str]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """A response in the API's error shape."""
    body: dict[str, Any] = {"error": code, "message": message, "problems": problems or []}
    return JSONResponse(body, status_code=status, headers=headers)


def _classify(exc: BaseException) -> tuple[int, str, str] | None:
    """(status, code, message) of a flow's error, or None if it is a bug."""
    if isinstance(exc, RemoteError):
        found = STATUS_OF.get(exc.exc_type)
        return None if found is None else (*found, exc.remote_message)
    for cls in type(exc).__mro__:
        found = STATUS_OF.get(cls.__name__)
        if found is not None:
            return (*found, str(exc))
    return None


async def _on_flow_error(request: Request, exc: Exception) -> JSONResponse:
    found = _classify(exc)
    if found is None:
        _LOG.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal error; the service log has the "
                                               "details")
    status, code, message = found
    headers = {"Retry-After": "1"} if status == 503 else None
    return error_response(status, code, message, headers=headers)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


async def _on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    bad_json = [e for e in errors if e.get("type") == "json_invalid"]
    if bad_json:
        detail = bad_json[0].get("ctx", {}).get("error", "")
        return error_response(400, "malformed_json", f"the body is not valid JSON: {detail}"
                              .rstrip(": "))
    problems = [{"field": ".".join(str(part) for part in e.get("loc", ())),
                 "message": str(e.get("msg", ""))} for e in errors]
    first = problems[0] if problems else {"field": "", "message": "invalid request"}
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return error_response(422, "invalid_request",
                          f"{first['field']}: {first['message']}{more}", problems=problems)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail),
                          headers=dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in the API's error shape."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_invalid_request)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(SolumliteError, _on_flow_error)
    app.add_exception_handler(RollsafeError, _on_flow_error)


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` bytes with 413,
    by their Content-Length or, for a body sent in chunks, as it arrives."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await error_response(413, "too_large", self._message())(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Raised while the route reads its body: FastAPI passes
                    # an HTTPException through, and the handler answers 413.
                    raise FastApiHTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"the request body is over {self.limit} bytes"
