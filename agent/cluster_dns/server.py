"""The DNS server: UDP and TCP on one address, cluster names from the Zone, the rest forwarded.

Forwarding relays the client's query bytes unchanged to the host's resolvers (in order, each
with a timeout) over the transport the client used, and relays the answer back; SERVFAIL when
none answers.
"""
from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from agent.cluster_dns import wire
from agent.cluster_dns.zone import Zone

log = logging.getLogger(__name__)

DNS_PORT = 53
FORWARD_TIMEOUT = 2.0
TCP_IDLE_TIMEOUT = 10.0


def answer_locally(zone: Zone, data: bytes, max_size: int | None) -> tuple[bytes | None, wire.Query | None]:
    """(response, query): a response when the zone (or an error) answers; (None, query) to forward."""
    try:
        query = wire.decode_query(data)
    except wire.FormatError:
        return wire.error_response(data, wire.RCODE_FORMERR), None
    if query.opcode != wire.OPCODE_QUERY:
        return wire.encode_response(query, wire.Answer(wire.RCODE_NOTIMP, authoritative=False)), query
    if len(query.questions) != 1:
        return wire.encode_response(query, wire.Answer(wire.RCODE_FORMERR, authoritative=False)), query
    question = query.questions[0]
    if not zone.is_ours(question):
        return None, query
    if not zone.synced:
        return wire.encode_response(query, wire.Answer(wire.RCODE_SERVFAIL, authoritative=False)), query
    size = None if max_size is None else min(max_size, query.udp_size)
    return wire.encode_response(query, zone.resolve(question), size), query


@dataclass
class Forwarder:
    servers: Sequence[str]
    timeout: float = FORWARD_TIMEOUT
    port: int = DNS_PORT

    async def forward(self, data: bytes, tcp: bool) -> bytes | None:
        for server in self.servers:
            try:
                return await asyncio.wait_for(
                    self._tcp(server, data) if tcp else self._udp(server, data), self.timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
                log.debug("forward failed server=%s error=%r", server, error)
        return None

    async def _udp(self, server: str, data: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[bytes] = loop.create_future()
        ident = wire.read_header_id(data)

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, message: bytes, addr: tuple) -> None:
                # Only the answer to this query ends the wait (a stray datagram is ignored).
                if wire.read_header_id(message) == ident and not reply.done():
                    reply.set_result(message)

            def error_received(self, exc: Exception) -> None:
                if not reply.done():
                    reply.set_exception(exc)

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(server, self.port))
        try:
            transport.sendto(data)
            return await reply
        finally:
            transport.close()

    async def _tcp(self, server: str, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(server, self.port)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            length = struct.unpack("!H", await reader.readexactly(2))[0]
            return await reader.readexactly(length)
        finally:
            writer.close()


class DNSServer:
    """Serves `zone` on `address:port` over UDP and TCP until `close()`."""

    def __init__(self, zone: Zone, forwarder: Forwarder, address: str, port: int = DNS_PORT):
        self.zone = zone
        self.forwarder = forwarder
        self.address = address
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._pending: set[asyncio.Task] = set()
        self.requests = {"udp": 0, "tcp": 0}   # queries received, by transport (the pod's /metrics)
        self.forwarded = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        server = self

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple) -> None:
                server._on_datagram(data, addr)

        self._udp, _ = await loop.create_datagram_endpoint(Protocol, local_addr=(self.address, self.port))
        # Port 0 (tests): TCP takes the port the kernel chose for UDP.
        self.port = self._udp.get_extra_info("sockname")[1]
        try:
            self._tcp = await asyncio.start_server(self._on_tcp, self.address, self.port, reuse_address=True)
        except OSError:
            self._udp.close()
            raise
        log.info("cluster dns serving address=%s port=%d domain=%s forward_to=%s", self.address, self.port,
                 self.zone.domain, ",".join(self.forwarder.servers) or "-")

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        for task in list(self._pending):
            task.cancel()

    def _on_datagram(self, data: bytes, addr: tuple) -> None:
        self.requests["udp"] += 1
        try:
            response, query = answer_locally(self.zone, data, wire.CLASSIC_UDP_SIZE)
        except Exception:  # noqa: BLE001 - one bad query must not stop the server
            log.exception("dns query failed client=%s", addr[0])
            response, query = wire.error_response(data, wire.RCODE_SERVFAIL), None
        if response is not None:
            self._send(response, addr)
        elif query is not None:
            self.forwarded += 1
            task = asyncio.create_task(self._forward_udp(data, query, addr))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _send(self, response: bytes, addr: tuple) -> None:
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(response, addr)

    async def _forward_udp(self, data: bytes, query: wire.Query, addr: tuple) -> None:
        reply = await self.forwarder.forward(data, tcp=False)
        if reply is None:
            reply = wire.encode_response(query, wire.Answer(wire.RCODE_SERVFAIL, authoritative=False))
        self._send(reply, addr)

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while True:   # RFC 7766: several queries may share a connection
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", header)[0]), TCP_IDLE_TIMEOUT)
                self.requests["tcp"] += 1
                response, query = answer_locally(self.zone, data, None)
                if response is None and query is not None:
                    self.forwarded += 1
                    response = await self.forwarder.forward(data, tcp=True) or wire.encode_response(
                        query, wire.Answer(wire.RCODE_SERVFAIL, authoritative=False))
                if response is None:
                    return
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except Exception:  # noqa: BLE001
            log.exception("dns tcp connection failed client=%s", peer)
        finally:
            writer.close()
