"""Port-forward protocol code (agent/node_server/portforward.py): the SPDY server kubectl talks to, the WebSocket
channel protocol the Python client talks, the runtime-side SPDY client, and every bound.

A fake runtime streaming server is our own SPDY server (over a real HTTP upgrade, shipmate/raw_upgrade.py) whose
backend dials loopback TCP echo servers: the runtime client (`RuntimeBackend`) is tested against it, and so is a
hand-written SPDY client speaking kubectl's frames."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from agent.node_server import spdy
from agent.node_server.portforward import (Backend, Conduit, PortForwardError, PortForwardLimits, RuntimeBackend,
                                           SessionCounter, SpdyServer, parse_ports, port_bytes, serve_websocket)
from shipmate.raw_upgrade import RawUpgradeResponse, UpgradeRefused, open_upgrade, parse_response_head


# ------------------------------------------------------------------------------------------ fixtures
class TcpConduit(Conduit):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def write_eof(self) -> None:
        if self.writer.can_write_eof():
            self.writer.write_eof()

    async def read(self) -> bytes:
        return await self.reader.read(65536)

    async def error(self) -> str:
        return ""

    def close(self) -> None:
        self.writer.close()


class TcpBackend(Backend):
    """Dials 127.0.0.1:<port> (what containerd does inside the pod's netns)."""

    def __init__(self) -> None:
        self.conduits = 0

    async def open(self, port: int) -> Conduit:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as error:
            raise PortForwardError(f"failed to dial {port}: {error}") from None
        self.conduits += 1
        return TcpConduit(reader, writer)

    async def close(self) -> None:
        pass

    @property
    def open_conduits(self) -> int:
        return self.conduits


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@contextlib.asynccontextmanager
async def http_server(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def fake_runtime(limits: PortForwardLimits, servers: list[SpdyServer], counter: SessionCounter | None = None
                 ) -> web.Application:
    """A streaming server speaking portforward.k8s.io over SPDY, forwarding to loopback ports."""
    async def handler(request: web.Request) -> web.StreamResponse:
        response = RawUpgradeResponse("SPDY/3.1", {"X-Stream-Protocol-Version": "portforward.k8s.io"})
        await response.prepare(request)
        server = SpdyServer(response.read, response.write, TcpBackend(), limits, counter, "fake")
        servers.append(server)
        await server.serve()
        return response

    async def websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await ws.prepare(request)
        await serve_websocket(ws, parse_ports(request.query.getall("port", []), limits), TcpBackend(), limits, "fake")
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_post("/portforward", handler)
    app.router.add_get("/ws", websocket)
    return app


class KubectlClient:
    """SPDY frames as kubectl's port-forward sends them: per connection an error stream (closed at once) and a
    data stream with headers streamType, port and requestID."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.codec, self.parser = spdy.HeaderCodec(), spdy.FrameParser(spdy.HeaderCodec())
        self.next_id, self.next_request = 1, 0
        self.frames: list[spdy.Frame] = []

    @classmethod
    async def connect(cls, url: str) -> KubectlClient:
        reader, writer, headers = await open_upgrade(url, "SPDY/3.1", [("X-Stream-Protocol-Version",
                                                                         "portforward.k8s.io")])
        assert headers["x-stream-protocol-version"] == ["portforward.k8s.io"]
        return cls(reader, writer)

    def syn(self, headers: dict[str, str], fin: bool = False) -> int:
        stream_id, self.next_id = self.next_id, self.next_id + 2
        self.writer.write(spdy.syn_stream(self.codec, stream_id, headers, fin))
        return stream_id

    def pair(self, port: int, request_id: str | None = None) -> tuple[int, int]:
        request_id = request_id if request_id is not None else str(self.next_request)
        self.next_request += 1
        error = self.syn({"streamType": "error", "port": str(port), "requestID": request_id})
        self.writer.write(spdy.data_frame(error, b"", fin=True))
        data = self.syn({"streamType": "data", "port": str(port), "requestID": request_id})
        return error, data

    def send(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        self.writer.write(spdy.data_frame(stream_id, data, fin))

    async def _more(self, timeout: float) -> None:
        chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
        if not chunk:
            raise EOFError("connection closed")
        self.frames += self.parser.feed(chunk)

    async def frame(self, timeout: float = 5) -> spdy.Frame:
        """The next frame not yet taken (by this or by collect())."""
        while not self.frames:
            await self._more(timeout)
        return self.frames.pop(0)

    async def collect(self, stream_id: int, timeout: float = 5) -> tuple[bytes, bool, list[spdy.Frame]]:
        """Data of `stream_id` until its FIN or RST, leaving other streams' frames; (data, ended by FIN, [RST])."""
        data = b""
        while True:
            mine = next((f for f in self.frames if f.stream_id == stream_id
                         and not (f.control and f.kind in (spdy.SYN_REPLY, spdy.PING))), None)
            if mine is None:
                await self._more(timeout)
                continue
            self.frames.remove(mine)
            if mine.control:
                return data, False, [mine]
            data += mine.data
            if mine.fin:
                return data, True, []

    def close(self) -> None:
        self.writer.close()


LIMITS = PortForwardLimits()


# ------------------------------------------------------------------------------------------ parsing
def test_websocket_ports_parse_as_kubelet_does() -> None:
    assert parse_ports(["80", "443,8080"], LIMITS) == [80, 443, 8080]
    assert port_bytes(8080) == b"\x90\x1f"
    for values, message in (([], 'query parameter "port" is required'),
                            ([""], 'query parameter "port" cannot be empty'),
                            (["x"], 'unable to parse "x" as a port'),
                            (["70000"], 'unable to parse "70000" as a port'),
                            (["0"], 'port "0" must be > 0')):
        with pytest.raises(PortForwardError, match=message):
            parse_ports(values, LIMITS)


def test_more_ports_than_the_bound_are_refused() -> None:
    limits = PortForwardLimits(max_ports=3)
    assert parse_ports(["1,2,3"], limits) == [1, 2, 3]
    with pytest.raises(PortForwardError, match="too many ports: 4"):
        parse_ports(["1,2", "3,4"], limits)


def test_syn_reply_and_goaway_frames_parse() -> None:
    codec = spdy.HeaderCodec()
    parser = spdy.FrameParser(spdy.HeaderCodec())
    reply, away = parser.feed(spdy.syn_reply(codec, 7, {"a": "b"}) + spdy.goaway_frame(9, 0))
    assert (reply.kind, reply.stream_id, reply.headers) == (spdy.SYN_REPLY, 7, {"a": "b"})
    assert (away.kind, away.stream_id) == (spdy.GOAWAY, 9)


def test_upgrade_response_head_parses_repeated_headers() -> None:
    status, headers = parse_response_head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\n"
                                          b"X-A: 1\r\nx-a: 2\r\n\r\n")
    assert status == 101 and headers["x-a"] == ["1", "2"] and headers["upgrade"] == ["SPDY/3.1"]


# ------------------------------------------------------------------------------------------ SPDY server
async def test_kubectl_frames_forward_several_ports_and_connections() -> None:
    servers: list[SpdyServer] = []
    async with echo_server() as port_a, echo_server() as port_b, http_server(fake_runtime(LIMITS, servers)) as url:
        client = await KubectlClient.connect(url + "/portforward")
        streams = [client.pair(port_a), client.pair(port_b), client.pair(port_a)]
        for index, (_, data) in enumerate(streams):
            client.send(data, f"hello {index}".encode(), fin=True)
        for index, (error, data) in enumerate(streams):
            echoed, fin, _ = await client.collect(data)
            assert (echoed, fin) == (f"hello {index}".encode(), True)
        # every pair's error stream ends without text, and the server forgets the pairs
        await asyncio.sleep(0.2)
        assert servers[0].open_streams == 0
        client.close()


async def test_a_port_nothing_listens_on_gets_its_error_on_the_error_stream() -> None:
    servers: list[SpdyServer] = []
    async with http_server(fake_runtime(LIMITS, servers)) as url:
        client = await KubectlClient.connect(url + "/portforward")
        error, data = client.pair(1)
        text, fin, _ = await client.collect(error)
        assert fin and b"error forwarding port 1" in text and b"failed to dial 1" in text
        client.close()


async def test_headers_are_checked_as_kubelet_does() -> None:
    async with http_server(fake_runtime(LIMITS, [])) as url:
        client = await KubectlClient.connect(url + "/portforward")
        for headers in ({"streamType": "data"}, {"port": "x", "streamType": "data"},
                        {"port": "80", "streamType": "stdin"}, {"port": "80"}):
            stream_id = client.syn(headers)
            frame = await client.frame()
            assert (frame.kind, frame.stream_id, frame.status) == (spdy.RST_STREAM, stream_id, spdy.RST_CANCEL)
        client.close()


async def test_pings_are_answered() -> None:
    async with http_server(fake_runtime(LIMITS, [])) as url:
        client = await KubectlClient.connect(url + "/portforward")
        client.writer.write(spdy.ping_frame(41))
        frame = await client.frame()
        assert (frame.kind, frame.status) == (spdy.PING, 41)
        client.close()


async def test_streams_past_the_bound_are_refused() -> None:
    limits = PortForwardLimits(max_streams=4)
    servers: list[SpdyServer] = []
    async with echo_server() as port, http_server(fake_runtime(limits, servers)) as url:
        client = await KubectlClient.connect(url + "/portforward")
        first, second = client.pair(port), client.pair(port)
        third_error = client.syn({"streamType": "error", "port": str(port), "requestID": "9"})
        refused = None
        while refused is None:
            frame = await client.frame()
            if frame.control and frame.kind == spdy.RST_STREAM:
                refused = frame
        assert (refused.stream_id, refused.status) == (third_error, spdy.RST_REFUSED_STREAM)
        assert servers[0].refused == 1 and servers[0].open_streams == 4
        # the open ones still work, and once they end new ones are accepted
        for _, data in (first, second):
            client.send(data, b"ok", fin=True)
            assert (await client.collect(data))[:2] == (b"ok", True)
        await asyncio.sleep(0.2)
        error, data = client.pair(port)
        client.send(data, b"again", fin=True)
        assert (await client.collect(data))[:2] == (b"again", True)
        client.close()


async def test_an_incomplete_pair_times_out() -> None:
    limits = PortForwardLimits(stream_creation_timeout=0.3)
    servers: list[SpdyServer] = []
    async with http_server(fake_runtime(limits, servers)) as url:
        client = await KubectlClient.connect(url + "/portforward")
        error = client.syn({"streamType": "error", "port": "80", "requestID": "5"})
        text, fin, _ = await client.collect(error)
        assert fin and b"timed out waiting for streams" in text and b"request=5" in text
        await asyncio.sleep(0.05)
        assert servers[0].open_streams == 0
        client.close()


async def test_an_idle_connection_is_closed() -> None:
    limits = PortForwardLimits(idle_timeout=0.3)
    async with echo_server() as port, http_server(fake_runtime(limits, [])) as url:
        client = await KubectlClient.connect(url + "/portforward")
        error, data = client.pair(port)
        client.send(data, b"x")
        with pytest.raises(EOFError):
            while True:
                await client.frame(timeout=3)
        client.close()


async def test_a_client_reset_aborts_the_forward_and_the_connection_close_ends_everything() -> None:
    servers: list[SpdyServer] = []
    counter = SessionCounter(LIMITS)
    async with echo_server() as port, http_server(fake_runtime(LIMITS, servers, counter)) as url:
        client = await KubectlClient.connect(url + "/portforward")
        error, data = client.pair(port)
        client.send(data, b"ping")
        assert (await client.frame()).kind == spdy.SYN_REPLY
        client.writer.write(spdy.rst_stream(data))
        await asyncio.sleep(0.2)
        assert servers[0].open_streams == 0
        client.pair(port)
        await asyncio.sleep(0.2)
        assert counter.streams == 2
        client.close()
        await asyncio.sleep(0.3)
        assert counter.streams == 0


# ------------------------------------------------------------------------------------------ runtime client
async def test_runtime_backend_speaks_to_a_spdy_streaming_server() -> None:
    servers: list[SpdyServer] = []
    async with echo_server() as port, http_server(fake_runtime(LIMITS, servers)) as url:
        backend = await RuntimeBackend.connect(url + "/portforward")
        conduits = [await backend.open(port) for _ in range(3)]
        for index, conduit in enumerate(conduits):
            await conduit.write(b"x" * 100_000 + bytes([index]))
            await conduit.write_eof()
        for index, conduit in enumerate(conduits):
            received = b""
            while chunk := await conduit.read():
                received += chunk
            assert received == b"x" * 100_000 + bytes([index])
            assert await conduit.error() == ""
            conduit.close()
        assert backend.open_conduits == 0
        failing = await backend.open(1)
        assert await failing.read() == b""
        assert "failed to dial 1" in await failing.error()
        failing.close()
        await backend.close()


async def test_runtime_refusal_is_an_upgrade_error() -> None:
    app = web.Application()
    async def refuse(_request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such token")
    app.router.add_post("/portforward", refuse)
    async with http_server(app) as url:
        with pytest.raises(UpgradeRefused, match="no such token"):
            await open_upgrade(url + "/portforward", "SPDY/3.1")


# ------------------------------------------------------------------------------------------ WebSocket
async def test_websocket_channels_carry_each_port_and_its_error() -> None:
    async with echo_server() as port, http_server(fake_runtime(LIMITS, [])) as url:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{url}/ws?port={port}&port=1",
                                          protocols=("v5.channel.k8s.io", "v4.channel.k8s.io")) as ws:
                assert ws.protocol == "v4.channel.k8s.io"
                first = [(await ws.receive()).data for _ in range(4)]
                assert sorted(first) == sorted([b"\x00" + port_bytes(port), b"\x01" + port_bytes(port),
                                                b"\x02" + port_bytes(1), b"\x03" + port_bytes(1)])
                await ws.send_bytes(b"\x00hello")
                await ws.send_str("\x00 text")          # text messages count as their bytes
                got, errors = b"", b""
                while got != b"hello text" or not errors:
                    message = await asyncio.wait_for(ws.receive(), 5)
                    if message.data[0] == 0:
                        got += message.data[1:]
                    elif message.data[0] == 3:
                        errors += message.data[1:]
                assert b"failed to dial 1" in errors
                await ws.close()


async def test_websocket_closes_once_every_port_ended() -> None:
    async with http_server(fake_runtime(LIMITS, [])) as url:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{url}/ws?port=1,2", protocols=("v4.channel.k8s.io",)) as ws:
                messages = []
                while (message := await asyncio.wait_for(ws.receive(), 5)).type == aiohttp.WSMsgType.BINARY:
                    messages.append(message.data)
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert {m[0] for m in messages if len(m) > 3} == {1, 3}


async def test_an_idle_websocket_is_closed() -> None:
    limits = PortForwardLimits(idle_timeout=0.3)
    async with echo_server() as port, http_server(fake_runtime(limits, [])) as url:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{url}/ws?port={port}", protocols=("v4.channel.k8s.io",)) as ws:
                while (message := await asyncio.wait_for(ws.receive(), 5)).type == aiohttp.WSMsgType.BINARY:
                    pass
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


# ------------------------------------------------------------------------------------------ the node server route
class FakeRuntime:
    def __init__(self, sandboxes: int = 1) -> None:
        self.sandboxes, self.forwards = sandboxes, 0

    async def list_pod_sandbox(self, _filter):  # noqa: ANN001
        from cri.gen import api_pb2
        return [api_pb2.PodSandbox(id=f"sb{i}", created_at=i) for i in range(self.sandboxes)]

    async def port_forward(self, _sandbox: str, _ports: list[int]) -> str:
        self.forwards += 1
        raise AssertionError("a refused request must not reach the runtime")


def node_server(runtime: FakeRuntime, limits: PortForwardLimits):  # noqa: ANN201
    from agent.node_server.metrics import NodeMetrics
    from agent.node_server.server import NodeServer, NodeServerConfig
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"}, "spec": {"containers": []}}
    return NodeServer(runtime, lambda ns, name: pod if name == "web" else None,  # type: ignore[arg-type]
                      NodeServerConfig(0, "/nonexistent", "n1", "/nonexistent", port_forward=limits),
                      NodeMetrics(), authorizer=None)  # type: ignore[arg-type]


def forward_request(path: str, upgrade: str = "websocket"):  # noqa: ANN201
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict
    headers = CIMultiDict({"Upgrade": upgrade, "Connection": "Upgrade"})
    if upgrade == "SPDY/3.1":
        headers["X-Stream-Protocol-Version"] = "portforward.k8s.io"
    request = make_mocked_request("GET", path, headers=headers)
    parts = path.split("?")[0].split("/")
    request.match_info.update({"namespace": parts[2], "pod": parts[3]})   # type: ignore[attr-defined]
    return request


async def test_the_node_server_refuses_past_its_port_forward_bounds() -> None:
    runtime = FakeRuntime()
    server = node_server(runtime, PortForwardLimits(max_ports=2, max_sessions=1))
    too_many = await server.port_forward(forward_request("/portForward/default/web?port=1,2,3"))
    assert too_many.status == 400 and "too many ports: 3" in too_many.text
    missing = await server.port_forward(forward_request("/portForward/default/gone?port=1"))
    assert missing.status == 404
    assert server.port_forwards.try_acquire()            # one connection is being served
    busy = await server.port_forward(forward_request("/portForward/default/web", "SPDY/3.1"))
    assert busy.status == 429 and "too many port-forward connections (1)" in busy.text
    server.port_forwards.release()
    no_sandbox = await node_server(FakeRuntime(0), LIMITS).port_forward(forward_request("/portForward/default/web",
                                                                                         "SPDY/3.1"))
    assert no_sandbox.status == 400 and "no running sandbox" in no_sandbox.text
    plain = await server.port_forward(forward_request("/portForward/default/web", ""))
    assert plain.status == 400 and "unable to upgrade" in plain.text
    assert runtime.forwards == 0
