"""Remote calls between services of different releases.

A :class:`Transport` carries plain messages (call and cast); the
:class:`ObjectSerializer` turns objects in arguments and results into
envelopes at the versions the receiver reads, and asks a newer peer for a
backport when it receives a version it does not know; a :class:`Conductor`
runs remote methods for services without store access, which reach it
through :class:`RemoteIndirection`. The in-process transport is the embedded
default; :mod:`rollsafe.rpc.messaging` carries the same messages over
oslo.messaging (RabbitMQ) and is imported only when used.
"""

from rollsafe.rpc.conductor import Conductor, RemoteIndirection, RetryPolicy
from rollsafe.rpc.fleet import SERVICES, Fleet, ServiceRecord, ServiceTooOldError
from rollsafe.rpc.inprocess import InProcessTransport
from rollsafe.rpc.membership import FleetMembership
from rollsafe.rpc.releases import ReleaseHistory
from rollsafe.rpc.requests import (
    RPC_REQUESTS,
    RpcRequest,
    current_unit,
    joined_unit,
    same_request_id,
)
from rollsafe.rpc.serializer import ObjectSerializer
from rollsafe.rpc.transport import (
    RemoteError,
    RetryableRpcError,
    RpcError,
    RpcTimeoutError,
    Transport,
)

__all__ = [
    "RPC_REQUESTS",
    "SERVICES",
    "Conductor",
    "Fleet",
    "FleetMembership",
    "InProcessTransport",
    "ObjectSerializer",
    "ReleaseHistory",
    "RemoteError",
    "RemoteIndirection",
    "RetryPolicy",
    "RetryableRpcError",
    "RpcError",
    "RpcRequest",
    "RpcTimeoutError",
    "ServiceRecord",
    "ServiceTooOldError",
    "Transport",
    "current_unit",
    "joined_unit",
    "same_request_id",
]
