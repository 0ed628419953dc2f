"""The DNS server over real UDP and TCP sockets on loopback, with a fake upstream on loopback."""
from __future__ import annotations

import asyncio
import struct

from agent.cluster_dns import wire
from agent.cluster_dns.server import DNSServer, Forwarder, answer_locally
from agent.cluster_dns.service import ClusterDNS, upstream_servers
from agent.cluster_dns.zone import Zone
from agent.dns import ResolvConf

SERVICE = {"metadata": {"name": "db-service", "namespace": "dev"},
           "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}


class FakeUpstream(asyncio.DatagramProtocol):
    """Answers every query with one A record 192.0.2.99 (only ever reached on 127.0.0.1)."""

    def __init__(self) -> None:
        self.queries: list[bytes] = []

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.queries.append(data)
        query = wire.decode_query(data)
        answer = wire.Answer(answers=[wire.Record(query.questions[0].name, wire.TYPE_A, 60, ("192.0.2.99",))],
                             authoritative=False)
        self.transport.sendto(wire.encode_response(query, answer), addr)


async def udp_ask(port: int, name: str, qtype: int = wire.TYPE_A, ident: int = 77) -> wire.DecodedResponse:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple) -> None:
            reply.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(wire.encode_query(ident, name, qtype))
        return wire.decode_response(await asyncio.wait_for(reply, 3))
    finally:
        transport.close()


async def tcp_ask(port: int, *names: str) -> list[wire.DecodedResponse]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    responses = []
    try:
        for ident, name in enumerate(names):
            query = wire.encode_query(ident, name, wire.TYPE_A)
            writer.write(struct.pack("!H", len(query)) + query)
            length = struct.unpack("!H", await reader.readexactly(2))[0]
            responses.append(wire.decode_response(await reader.readexactly(length)))
    finally:
        writer.close()
    return responses


async def test_serves_cluster_names_over_udp_and_tcp_and_forwards_the_rest() -> None:
    loop = asyncio.get_running_loop()
    upstream_transport, upstream = await loop.create_datagram_endpoint(FakeUpstream, local_addr=("127.0.0.1", 0))
    upstream_port = upstream_transport.get_extra_info("sockname")[1]
    zone = Zone("cluster.local")
    zone.set_service(SERVICE)
    before_sync = answer_locally(zone, wire.encode_query(1, "nothing.dev.svc.cluster.local", wire.TYPE_A), 512)[0]
    assert wire.decode_response(before_sync).rcode == wire.RCODE_SERVFAIL   # not listed yet: no NXDOMAIN
    zone.services_synced = zone.slices_synced = True
    server = DNSServer(zone, Forwarder(["127.0.0.1"], timeout=1.0, port=upstream_port), "127.0.0.1", 0)
    await server.start()
    try:
        answer = await udp_ask(server.port, "db-service.dev.svc.cluster.local")
        assert answer.id == 77 and answer.rcode == wire.RCODE_NOERROR
        assert [r.rdata for r in answer.answers] == [("10.96.0.10",)]
        missing = await udp_ask(server.port, "nothing.dev.svc.cluster.local")
        assert missing.rcode == wire.RCODE_NXDOMAIN and missing.authority[0].rtype == wire.TYPE_SOA
        assert upstream.queries == []

        forwarded = await udp_ask(server.port, "example.org", ident=4242)
        assert forwarded.id == 4242 and [r.rdata for r in forwarded.answers] == [("192.0.2.99",)]
        assert len(upstream.queries) == 1

        over_tcp = await tcp_ask(server.port, "db-service.dev.svc.cluster.local", "nope.svc.cluster.local")
        assert [r.rcode for r in over_tcp] == [wire.RCODE_NOERROR, wire.RCODE_NXDOMAIN]
    finally:
        await server.close()
        upstream_transport.close()


async def test_unreachable_upstream_gives_servfail() -> None:
    # An upstream port on loopback where nothing listens: ICMP unreachable, then SERVFAIL.
    loop = asyncio.get_running_loop()
    probe, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    dead_port = probe.get_extra_info("sockname")[1]
    probe.close()
    server = DNSServer(Zone(), Forwarder(["127.0.0.1"], timeout=0.5, port=dead_port), "127.0.0.1", 0)
    await server.start()
    try:
        answer = await udp_ask(server.port, "example.org")
        assert answer.rcode == wire.RCODE_SERVFAIL
    finally:
        await server.close()


def test_answer_locally_edge_cases() -> None:
    zone = Zone()
    response, query = answer_locally(zone, b"\x12\x34\x01\x00" + b"\x00\x01" + b"\0" * 6 + b"\x05", 512)
    assert query is None and wire.decode_response(response).rcode == wire.RCODE_FORMERR
    notify = bytearray(wire.encode_query(1, "cluster.local", wire.TYPE_SOA))
    notify[2] |= 4 << 3   # opcode NOTIFY
    response, _ = answer_locally(zone, bytes(notify), 512)
    assert wire.decode_response(response).rcode == wire.RCODE_NOTIMP
    assert answer_locally(zone, wire.encode_query(1, "example.org", wire.TYPE_A), 512)[0] is None


def test_cluster_dns_follows_informer_changes_and_never_forwards_to_itself() -> None:
    dns = ClusterDNS("169.254.20.10", "cluster.local",
                     ResolvConf(servers=["169.254.20.10", "10.255.255.53"]), manage_interface=False)
    assert dns.forwarder.servers == ["10.255.255.53"]
    assert upstream_servers(ResolvConf(servers=["169.254.20.10"]), "169.254.20.10") == []
    question = wire.Question("db-service.dev.svc.cluster.local", wire.TYPE_A)
    dns.on_service_change("ADDED", SERVICE, None)
    dns.on_services_synced()
    assert not dns.zone.synced
    dns.on_endpoint_slices_synced()
    assert dns.zone.synced
    assert dns.zone.resolve(question).answers
    dns.on_service_change("DELETED", SERVICE, SERVICE)
    assert dns.zone.resolve(question).rcode == wire.RCODE_NXDOMAIN
