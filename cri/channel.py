"""The gRPC channel to containerd's unix socket, shared by the CRI client and the events stream."""
from __future__ import annotations

from types import TracebackType
from typing import Self

import grpc

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"

_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a ListContainers of thousands; ExecSync caps each stream at 16 MiB

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    # gRPC's default reconnect backoff grows to 120 s; for a local socket that
    # would keep failing calls long after containerd has come back.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def socket_path(endpoint: str) -> str:
    """The filesystem path of a `unix://` endpoint (or of a bare absolute path)."""
    if endpoint.startswith("unix://"):
        path = endpoint[len("unix://"):]
    elif endpoint.startswith("/"):
        path = endpoint
    else:
        raise ValueError(f"unsupported container runtime endpoint {endpoint!r}: want unix:///path/to.sock")
    if not path.startswith("/"):
        raise ValueError(f"container runtime endpoint {endpoint!r} must name an absolute socket path")
    return path


def open_channel(endpoint: str) -> grpc.aio.Channel:
    """An insecure grpc.aio channel to the unix socket of endpoint; call from inside the event loop."""
    return grpc.aio.insecure_channel(f"unix://{socket_path(endpoint)}", options=CHANNEL_OPTIONS)


class ChannelClient:
    """Owns one channel to the endpoint; closes it on `close()` or at the end of `async with`."""

    def __init__(self, endpoint: str) -> None:
        self._channel = open_channel(endpoint)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()
