"""The DNS pod's pieces: its HTTP endpoints (CoreDNS's /health, /ready, /metrics ports) and its flags."""
from __future__ import annotations

import asyncio

from agent.cluster_dns.pod import parse_args, read_resolv_conf
from agent.cluster_dns.probes import DNSState, respond, serve_http

STARTING = DNSState(serving=False, synced=False, requests={}, forwarded=0)
LISTING = DNSState(serving=True, synced=False, requests={"udp": 0, "tcp": 0}, forwarded=0)
READY = DNSState(serving=True, synced=True, requests={"udp": 3, "tcp": 1}, forwarded=2)


def test_ready_only_once_serving_and_the_zone_is_listed() -> None:
    # CoreDNS's `ready` plugin: 200 once every plugin (kubernetes: its informers synced) is ready, 503 before.
    assert [respond("/ready", state)[0] for state in (STARTING, LISTING, READY)] == [503, 503, 200]
    assert [respond("/health", state)[0] for state in (STARTING, LISTING, READY)] == [503, 200, 200]
    assert respond("/nothing", READY)[0] == 404


def test_metrics_are_prometheus_text() -> None:
    status, body = respond("/metrics", READY)
    assert status == 200
    assert 'shipmate_dns_requests_total{proto="tcp"} 1\n' in body
    assert 'shipmate_dns_requests_total{proto="udp"} 3\n' in body
    assert "shipmate_dns_forward_requests_total 2\n" in body
    assert "# TYPE shipmate_dns_requests_total counter" in body


async def test_http_endpoint_answers_a_kubelet_probe() -> None:
    state = [LISTING]
    server = await serve_http("127.0.0.1", 0, lambda: state[0])
    port = server.sockets[0].getsockname()[1]

    async def get(path: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 10.244.0.5:8181\r\nUser-Agent: kube-probe/1.35\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        return data
    try:
        assert (await get("/ready")).startswith(b"HTTP/1.1 503 ")
        state[0] = READY
        answer = await get("/ready")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nOK")
    finally:
        server.close()
        await server.wait_closed()


def test_flags_default_to_coredns_ports_and_the_pods_resolv_conf(tmp_path) -> None:
    args = parse_args([])
    assert (args.listen, args.port, args.domain, args.health_port, args.ready_port, args.metrics_port) == \
        ("0.0.0.0", 53, "cluster.local", 8080, 8181, 9153)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\nsearch example.org\n")
    assert read_resolv_conf(str(resolv)).servers == ["192.0.2.53"]
    assert read_resolv_conf(str(tmp_path / "missing")).servers == []


async def test_http_endpoint_bounds_what_a_client_can_make_it_hold(monkeypatch) -> None:
    """Anyone who reaches the pod's address may connect: a header past the stream limit (64 KiB) and a client
    that sends nothing are both cut off, and the endpoint still answers the next probe."""
    from agent.cluster_dns import probes
    monkeypatch.setattr(probes, "REQUEST_TIMEOUT", 0.2)
    server = await serve_http("127.0.0.1", 0, lambda: READY)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ready HTTP/1.1\r\nX-Filler: " + b"x" * 200_000)
        assert await asyncio.wait_for(reader.read(), 5) == b""      # closed without an answer
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""      # silent: closed after the timeout
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ready HTTP/1.1\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200 OK")
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
