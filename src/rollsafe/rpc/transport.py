"""The transport port: plain messages between services.

A message is JSON-able data (dicts, lists, strings, numbers, booleans,
None): objects are already envelopes when they reach a transport. A service
``serve``s a topic with a handler; another ``call``s it (request and reply,
bounded by a timeout) or ``cast``s to it (fire and forget). A handler's
exception reaches the caller as :class:`RemoteError`, naming the remote
exception's type and message; a reply that does not come in time, or a topic
nothing serves, is :class:`RpcTimeoutError` on every transport. Each error
says in ``retryable`` whether sending the call again may succeed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from rollsafe.errors import RollsafeError

__all__ = ["Handler", "RemoteError", "RetryableRpcError", "RpcError", "RpcTimeoutError", "Server",
           "Transport", "error_reply", "plain_copy", "unwrap_reply"]

#: A topic's handler: request message -> reply message.
Handler = Callable[[dict[str, Any]], Any]


class RpcError(RollsafeError):
    """Base of the errors remote calls raise. ``retryable`` says whether
    sending the same call again may succeed (False unless a subclass or the
    remote side says so)."""

    retryable: bool = False


class RpcTimeoutError(RpcError, TimeoutError):
    """No reply came within the timeout: the peer is gone, stuck, or
    unreachable (or nothing serves the topic). The call may or may not have
    run there; it is retryable."""

    retryable = True


class RetryableRpcError(RpcError):
    """Every attempt of a remote call failed in a way a later attempt may get
    past (no reply, a conflict, the conductor's store briefly unreachable).
    The call may or may not have run. ``request_id`` is the id all attempts
    carried: send the call again with it (``with same_request_id(exc.request_id):
    ...``) and a conductor with a store applies it at most once. The last
    failure is ``__cause__``."""

    retryable = True

    def __init__(self, what: str, request_id: str | None, attempts: int,
                 last: BaseException) -> None:
        self.request_id = request_id
        self.attempts = attempts
        again = ("send it again with the same request id (rollsafe.rpc.same_request_id) "
                 "and a conductor with a store applies it at most once"
                 if request_id is not None else "it is safe to ask again")
        super().__init__(f"{what} failed {attempts} time(s), last with {type(last).__name__}: "
                         f"{last}; it may or may not have run: {again}")


class RemoteError(RpcError):
    """The remote handler raised. ``exc_type`` and ``remote_message`` say
    what it raised; ``retryable`` is True when it was a conflict or a
    transient store error that a fresh attempt may get past."""

    def __init__(self, exc_type: str, message: str, *, retryable: bool = False) -> None:
        self.exc_type = exc_type
        self.remote_message = message
        self.retryable = retryable
        super().__init__(f"remote {exc_type}: {message}")


class Server(ABC):
    """A running subscription to a topic."""

    @abstractmethod
    def stop(self) -> None:
        """Stop taking messages, finish those in flight, and return."""


class Transport(ABC):
    """Moves messages between services."""

    @abstractmethod
    def serve(self, topic: str, handler: Handler) -> Server:
        """Start handling messages sent to ``topic``."""

    @abstractmethod
    def call(self, topic: str, message: dict[str, Any], *, timeout: float) -> Any:
        """Send ``message`` and wait for the reply; :class:`RpcTimeoutError`
        after ``timeout`` seconds, :class:`RemoteError` if the handler
        raised."""

    @abstractmethod
    def cast(self, topic: str, message: dict[str, Any]) -> None:
        """Send ``message`` without waiting for anything."""

    @abstractmethod
    def close(self) -> None:
        """Stop every server and release resources."""


def plain_copy(message: Any) -> Any:
    """``message`` as it comes out of JSON bytes: an independent copy of
    plain data, or :class:`RpcError` if it holds anything else."""
    import orjson

    try:
        return orjson.loads(orjson.dumps(message))
    except TypeError as exc:
        raise RpcError(f"message is not plain data: {exc}") from None


def error_reply(exc: BaseException) -> dict[str, Any]:
    """The reply a transport sends when a handler raised."""
    from rollsafe.errors import ConflictError, RetryableStorageError

    return {"rpc_error": {"type": type(exc).__name__, "message": str(exc),
                          "retryable": isinstance(exc, ConflictError | RetryableStorageError)}}


def unwrap_reply(reply: Any) -> Any:
    """The reply's result, or :class:`RemoteError` if the handler raised."""
    if isinstance(reply, dict) and "rpc_error" in reply:
        info = reply["rpc_error"]
        raise RemoteError(str(info.get("type")), str(info.get("message")),
                          retryable=bool(info.get("retryable")))
    if isinstance(reply, dict) and "rpc_result" in reply:
        return reply["rpc_result"]
    raise RpcError(f"malformed reply: {type(reply).__name__}")
