"""Where the operator dashboard's fleet status comes from.

The status is rollsafe's :func:`~rollsafe.upgrade.status.fleet_status` as
plain data (:meth:`FleetStatus.to_dict`): the recorded services, the pins
and the online migrations left. Reading it needs the store, and in the
distributed setup only the conductor has the store, so the API gets it
from a **status source**, a callable returning that data:

- :class:`ReleaseStatus` reads it from the store bound to a release: an
  embedded API's own store, or the conductor's;
- the conductor serves a :class:`ReleaseStatus` on a topic of its transport
  with :func:`serve_status`, and an API without store access asks it there
  with :class:`RemoteStatus`::

      # conductor (store access)
      status_server = serve_status(transport, ReleaseStatus(release))
      # API (--db none://)
      create_api(release, tokens, operator_token=token,
                 status_source=RemoteStatus(transport))

The status topic is a plain request and reply beside the conductor's
topic, not a remotable method: it only reads, so it needs neither the
conductor's request log nor a unit of work, and a dashboard polling every
few seconds writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rollsafe.rpc.transport import RpcError, Server, Transport
from rollsafe.upgrade.status import fleet_status

if TYPE_CHECKING:
    from solumlite.release import Release

__all__ = ["STATUS_TOPIC", "ReleaseStatus", "RemoteStatus", "StatusSource", "serve_status"]

#: A status source: returns the fleet status as plain data
#: (:meth:`rollsafe.upgrade.status.FleetStatus.to_dict`).
StatusSource = Callable[[], dict[str, Any]]

#: The topic the conductor answers status requests on.
STATUS_TOPIC = "solumlite-status"

_OP = "fleet_status"


class ReleaseStatus:
    """The fleet status read from the store bound to ``release`` (see
    :meth:`~solumlite.release.Release.bind`), with the release's service
    definition: its release history says which release is the newest, its
    online migrations what is left to move. Raises what the store raises;
    :class:`~solumlite.errors.ReleaseNotBoundError` when no store is bound."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self.service = release.service()

    def __call__(self) -> dict[str, Any]:
        """The status now."""
        return fleet_status(self.service, self.release.store).to_dict()


def serve_status(transport: Transport, source: StatusSource, *,
                 topic: str = STATUS_TOPIC) -> Server:
    """Answer status requests on ``topic`` of ``transport`` with what
    ``source`` returns (run it where the store is: the conductor). Stop the
    returned server to stop answering."""

    def handle(message: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(message, dict) or message.get("op") != _OP:
            raise RpcError(f"the status topic answers {{'op': {_OP!r}}} only")
        return source()

    return transport.serve(topic, handle)


class RemoteStatus:
    """A status source that asks the conductor (:func:`serve_status`) on
    ``topic`` of ``transport``, waiting at most ``timeout`` seconds. Raises
    :class:`~rollsafe.rpc.RpcTimeoutError` when nothing answers in time (the
    API answers 503) and :class:`~rollsafe.rpc.RemoteError` when reading
    the status failed there."""

    def __init__(self, transport: Transport, *, topic: str = STATUS_TOPIC,
                 timeout: float = 5.0) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        self.transport = transport
        self.topic = topic
        self.timeout = float(timeout)

    def __call__(self) -> dict[str, Any]:
        """The status now, as the conductor read it."""
        reply = self.transport.call(self.topic, {"op": _OP}, timeout=self.timeout)
        if not isinstance(reply, dict) or not isinstance(reply.get("services"), list):
            raise RpcError(f"malformed status reply from topic {self.topic!r}")
        return reply
