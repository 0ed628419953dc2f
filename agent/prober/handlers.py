"""The four probe handlers (exec through CRI ExecSync, httpGet, tcpSocket, grpc), each returning a
ProbeOutcome as upstream's probers classify them. Result classification is pure."""
from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import grpc

from cri.client import CRIClient
from cri.errors import CRIError

from agent.prober.spec import ProbeSpec, Result, resolve_port
from agent.volumes.mounts import go_quote

Obj = dict[str, Any]
USER_AGENT = "kube-probe/1.35"
MAX_BODY = 10 * 1024
MAX_REDIRECTS = 10
GRPC_SERVING = 1
GRPC_STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


@dataclass(frozen=True)
class ProbeOutcome:
    result: Result
    output: str = ""
    warning: bool = False               # a success that deserves a ProbeWarning event (redirect)
    error: str = ""                     # the probe could not run at all: the result is thrown away


# ---------------------------------------------------------------------- pure classification
def classify_http(status: int, body: str) -> ProbeOutcome:
    if 200 <= status < 300:
        return ProbeOutcome(Result.SUCCESS, body)
    if 300 <= status < 400:
        return ProbeOutcome(Result.SUCCESS, f"Probe terminated redirects, Response body: {body}", warning=True)
    return ProbeOutcome(Result.FAILURE, f"HTTP probe failed with statuscode: {status}")


def follow_redirect(original_url: str, location: str, redirects_so_far: int) -> str | None:
    """The URL to follow for a redirect, or None to stop and use the 3xx response: kubelet follows
    redirects only to the same host, at most 10 of them."""
    target = urljoin(original_url, location)
    if urlsplit(target).hostname != urlsplit(original_url).hostname:
        return None
    if redirects_so_far >= MAX_REDIRECTS:
        raise RedirectLimit("stopped after 10 redirects")
    return target


class RedirectLimit(Exception):
    pass


def http_url(handler: Obj, container: Obj, pod_ip: str) -> str:
    scheme = (handler.get("scheme") or "HTTP").lower()
    host = handler.get("host") or pod_ip
    port = resolve_port(handler.get("port"), container)
    path = handler.get("path") or ""
    if path and not path.startswith("/"):
        path = "/" + path
    host_part = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host_part}:{port}{path}"


def http_headers(handler: Obj) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for header in handler.get("httpHeaders") or []:
        name = header.get("name", "")
        existing = next((key for key in headers if key.lower() == name.lower()), None)
        if existing is not None:
            del headers[existing]
        headers[name] = header.get("value", "")
    return headers


def dial_error(address: str, error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return f"dial tcp {address}: i/o timeout"
    if isinstance(error, ConnectionRefusedError) or getattr(error, "errno", None) == errno.ECONNREFUSED:
        return f"dial tcp {address}: connect: connection refused"
    if isinstance(error, OSError) and error.strerror:
        return f"dial tcp {address}: connect: {error.strerror.lower()}"
    return f"dial tcp {address}: {error}"


def grpc_health_request(service: str) -> bytes:
    encoded = service.encode()
    return (b"\x0a" + _varint(len(encoded)) + encoded) if encoded else b""


def grpc_health_status(response: bytes) -> int:
    """HealthCheckResponse.status (field 1, varint); 0 when absent."""
    index = 0
    while index < len(response):
        key, index = _read_varint(response, index)
        if key == 0x08:
            value, _ = _read_varint(response, index)
            return value
        if key & 7 == 0:
            _, index = _read_varint(response, index)
        elif key & 7 == 2:
            length, index = _read_varint(response, index)
            index += length
        else:
            break
    return 0


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while index < len(data):
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return value, index


# ---------------------------------------------------------------------- effects
async def run_probe(spec: ProbeSpec, container: Obj, container_id: str, pod_ip: str,
                    runtime: CRIClient) -> ProbeOutcome:
    try:
        if spec.handler_kind == "exec":
            return await exec_probe(runtime, container_id, list(spec.handler.get("command") or []), spec.timeout)
        if spec.handler_kind == "httpGet":
            return await http_probe(http_url(spec.handler, container, pod_ip), http_headers(spec.handler),
                                    spec.timeout)
        if spec.handler_kind == "tcpSocket":
            host = spec.handler.get("host") or pod_ip
            return await tcp_probe(host, resolve_port(spec.handler.get("port"), container), spec.timeout)
        port = int(spec.handler.get("port") or 0)
        return await grpc_probe(pod_ip, port, spec.handler.get("service") or "", spec.timeout)
    except ValueError as error:
        return ProbeOutcome(Result.UNKNOWN, error=str(error))


async def exec_probe(runtime: CRIClient, container_id: str, command: list[str], timeout: int) -> ProbeOutcome:
    try:
        response = await runtime.exec_sync(container_id, command, timeout)
    except CRIError as error:
        if error.code == grpc.StatusCode.DEADLINE_EXCEEDED or "deadline exceeded" in error.message \
                or "timeout" in error.message:
            return ProbeOutcome(Result.FAILURE, f"command {go_quote(' '.join(command))} timed out")
        return ProbeOutcome(Result.UNKNOWN, error=error.message)
    output = (response.stdout + response.stderr).decode(errors="replace")
    return ProbeOutcome(Result.SUCCESS if response.exit_code == 0 else Result.FAILURE, output)


async def http_probe(url: str, headers: dict[str, str], timeout: int) -> ProbeOutcome:
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    connector = aiohttp.TCPConnector(force_close=True, ssl=False)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout, skip_auto_headers=("User-Agent",),
                                     auto_decompress=True) as session:
        target, redirects = url, 0
        try:
            while True:
                async with session.get(target, headers=headers, allow_redirects=False) as response:
                    body = (await response.content.read(MAX_BODY)).decode(errors="replace")
                    location = response.headers.get("Location")
                    if 300 <= response.status < 400 and location:
                        following = follow_redirect(url, location, redirects)
                        if following is not None:
                            target, redirects = following, redirects + 1
                            continue
                    return classify_http(response.status, body)
        except RedirectLimit as error:
            return ProbeOutcome(Result.FAILURE, f'Get {go_quote(target)}: {error}')
        except asyncio.TimeoutError:
            return ProbeOutcome(Result.FAILURE, f"Get {go_quote(target)}: context deadline exceeded "
                                                "(Client.Timeout exceeded while awaiting headers)")
        except aiohttp.ClientConnectorError as error:
            parts = urlsplit(target)
            return ProbeOutcome(Result.FAILURE, f"Get {go_quote(target)}: "
                                + dial_error(f"{parts.hostname}:{parts.port}", error.os_error))
        except aiohttp.ClientError as error:
            return ProbeOutcome(Result.FAILURE, f"Get {go_quote(target)}: {error}")


async def tcp_probe(host: str, port: int, timeout: int) -> ProbeOutcome:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError) as error:
        return ProbeOutcome(Result.FAILURE, dial_error(address, error))
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return ProbeOutcome(Result.SUCCESS)


async def grpc_probe(host: str, port: int, service: str, timeout: int) -> ProbeOutcome:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    async with grpc.aio.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            response = await check(grpc_health_request(service), timeout=timeout,
                                   metadata=(("user-agent", USER_AGENT),))
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                return ProbeOutcome(Result.FAILURE, "this server does not implement the grpc health protocol "
                                                    f"(grpc.health.v1.Health): {error.details()}")
            if error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                return ProbeOutcome(Result.FAILURE, f"timeout: failed to connect service {go_quote(address)} "
                                                    f"within {timeout}s: context deadline exceeded")
            return ProbeOutcome(Result.FAILURE, f"rpc error: code = {error.code().name} desc = {error.details()}")
    status = grpc_health_status(response)
    if status != GRPC_SERVING:
        name = GRPC_STATUS_NAMES.get(status, str(status))
        return ProbeOutcome(Result.FAILURE, f"service unhealthy (responded with {go_quote(name)})")
    return ProbeOutcome(Result.SUCCESS)


