"""gRPC failures map to CRIError / RuntimeUnavailable / NotFound with useful messages."""
from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from cri.channel import socket_path
from cri.errors import CRIError, NotFound, RuntimeUnavailable, error_from_rpc


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def test_unavailable_names_endpoint_and_missing_socket(tmp_path: Path) -> None:
    endpoint = f"unix://{tmp_path}/missing.sock"
    error = error_from_rpc(rpc_error(grpc.StatusCode.UNAVAILABLE, "connect: No such file or directory"),
                           endpoint=endpoint, method="Version")
    assert type(error) is RuntimeUnavailable
    assert error.code is grpc.StatusCode.UNAVAILABLE
    assert endpoint in error.message and "does not exist" in error.message
    assert "Version" in str(error)


def test_unavailable_says_when_socket_exists(tmp_path: Path) -> None:
    sock = tmp_path / "present.sock"
    sock.touch()
    error = error_from_rpc(rpc_error(grpc.StatusCode.UNAVAILABLE, "Connection refused"),
                           endpoint=f"unix://{sock}", method="Status")
    assert isinstance(error, RuntimeUnavailable)
    assert f"socket {sock} exists" in error.message and "Connection refused" in error.message


@pytest.mark.parametrize("code, details", [
    (grpc.StatusCode.NOT_FOUND, 'an error occurred when try to find container "abc": not found'),
    (grpc.StatusCode.UNKNOWN, 'failed to get sandbox "abc": does not exist'),
    (grpc.StatusCode.UNKNOWN, 'container "abc" in namespace "k8s.io": not found'),
])
def test_not_found(code: grpc.StatusCode, details: str) -> None:
    error = error_from_rpc(rpc_error(code, details), endpoint="unix:///run/c.sock", method="ContainerStatus")
    assert type(error) is NotFound
    assert error.code is code and error.message == details


@pytest.mark.parametrize("code, details", [
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
    (grpc.StatusCode.INVALID_ARGUMENT, "sandbox config must include metadata"),
    (grpc.StatusCode.UNKNOWN, "failed to create containerd task: OCI runtime create failed"),
])
def test_other_failures_are_plain_cri_errors(code: grpc.StatusCode, details: str) -> None:
    error = error_from_rpc(rpc_error(code, details), endpoint="unix:///run/c.sock", method="CreateContainer")
    assert type(error) is CRIError
    assert error.code is code and error.message == details and error.method == "CreateContainer"


def test_endpoint_forms() -> None:
    assert socket_path("unix:///run/containerd/containerd.sock") == "/run/containerd/containerd.sock"
    assert socket_path("/run/containerd/containerd.sock") == "/run/containerd/containerd.sock"
    for bad in ("tcp://127.0.0.1:1234", "unix://relative.sock", "containerd.sock"):
        with pytest.raises(ValueError):
            socket_path(bad)
