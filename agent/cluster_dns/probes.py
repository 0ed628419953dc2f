"""The DNS pod's HTTP endpoints, on CoreDNS's ports: liveness `/health` (8080), readiness `/ready`
(8181, once the server listens and Services and EndpointSlices are listed) and `/metrics` (9153,
Prometheus text). `respond` is pure; `serve_http` is a minimal HTTP/1.0-style asyncio responder.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0
REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


@dataclass(frozen=True)
class DNSState:
    serving: bool
    synced: bool
    requests: dict[str, int]
    forwarded: int


def respond(path: str, state: DNSState) -> tuple[int, str]:
    """(status, text body) for a GET of `path`."""
    path = path.split("?", 1)[0]
    if path == "/health":
        return (200, "OK") if state.serving else (503, "not serving")
    if path == "/ready":
        return (200, "OK") if state.serving and state.synced else (503, "not ready")
    if path == "/metrics":
        lines = ["# HELP shipmate_dns_requests_total DNS queries received, by transport.",
                 "# TYPE shipmate_dns_requests_total counter"]
        lines += [f'shipmate_dns_requests_total{{proto="{proto}"}} {count}'
                  for proto, count in sorted(state.requests.items())]
        lines += ["# HELP shipmate_dns_forward_requests_total Queries relayed to the upstream resolvers.",
                  "# TYPE shipmate_dns_forward_requests_total counter",
                  f"shipmate_dns_forward_requests_total {state.forwarded}"]
        return 200, "\n".join(lines) + "\n"
    return 404, "not found"


async def serve_http(host: str, port: int, state: Callable[[], DNSState]) -> asyncio.base_events.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            status, body = respond(path, state()) if method in ("GET", "HEAD") else (404, "not found")
            data = body.encode()
            writer.write(f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                         + (data if method == "GET" else b""))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    log.info("http endpoint listening address=%s port=%d", host, port)
    return server
