"""Errors of the CRI client: gRPC failures mapped to three types callers can act on."""
from __future__ import annotations

import os
import re

import grpc

from cri.channel import socket_path

# containerd often wraps its errdefs.ErrNotFound into an UNKNOWN status whose
# text is the only trace left, e.g. `... "abc": not found` or `... does not exist`.
_NOT_FOUND_TEXT = re.compile(r"\bnot found\b|\bdoes not exist\b", re.IGNORECASE)


class CRIError(Exception):
    """A CRI call failed; code is the gRPC status code, message the runtime's own text."""

    def __init__(self, code: grpc.StatusCode, message: str, method: str = "") -> None:
        self.code = code
        self.message = message
        self.method = method
        prefix = f"{method}: " if method else ""
        super().__init__(f"{prefix}{code.name}: {message}")


class RuntimeUnavailable(CRIError):
    """The runtime cannot be reached: socket missing, connection refused, or gRPC UNAVAILABLE."""


class NotFound(CRIError):
    """The sandbox, container or image named in the call does not exist."""


def unavailable_message(endpoint: str, detail: str) -> str:
    """Names the endpoint and whether its socket file exists, the first thing to check."""
    path = socket_path(endpoint)
    presence = "exists" if os.path.exists(path) else "does not exist"
    return f"container runtime at {endpoint} is unavailable (socket {path} {presence}): {detail}"


def error_from_rpc(error: grpc.aio.AioRpcError, *, endpoint: str, method: str) -> CRIError:
    """Map a failed gRPC call to a CRIError subtype."""
    code = error.code()
    details = error.details() or code.name
    if code is grpc.StatusCode.UNAVAILABLE:
        return RuntimeUnavailable(code, unavailable_message(endpoint, details), method)
    if code is grpc.StatusCode.NOT_FOUND or (
        code is grpc.StatusCode.UNKNOWN and _NOT_FOUND_TEXT.search(details)
    ):
        return NotFound(code, details, method)
    return CRIError(code, details, method)
