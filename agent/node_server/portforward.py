"""Port-forward (`/portForward/{namespace}/{pod}` on :10250): the client's protocol on one side, the
runtime's on the other.

Client side, as kubelet serves it:
- SPDY/3.1 with protocol `portforward.k8s.io` (kubectl; through the API server either directly or tunnelled
  in WebSocket binary messages, which the API server unwraps). Every forwarded connection is a pair of
  client-opened streams with headers `streamType` (`error` or `data`), `port` and `requestID`; data flows
  on the data stream, FIN half-closes it, and a failure is text on the error stream. A pair whose second
  stream does not come within the stream creation timeout gets "timed out waiting for streams".
- WebSocket `v4.channel.k8s.io` (or no subprotocol) with `?port=80&port=443` (the official Python client):
  port i has channels 2i (data, both ways) and 2i+1 (error, to the client); each channel's first message
  is the port as a little-endian uint16. The connection closes once every port's forward has ended.

Runtime side: one SPDY session per client connection to the URL of CRI PortForward (containerd's streaming
server), where each forwarded connection is again an error + data stream pair (`Backend`, `Conduit`).

Bounds (PortForwardLimits): ports per WebSocket request, open streams per SPDY connection (more are
refused with RST_STREAM REFUSED_STREAM), port-forward connections per node server, the idle timeout of a
connection (kubelet's --streaming-connection-idle-timeout, 4h) and the stream creation timeout (30s).
Flow control is backpressure: a slow reader on either side stops us reading the other, as spdystream.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from agent.node_server.remotecommand import message_bytes
from agent.node_server.spdy import (GOAWAY, PING, RST_CANCEL, RST_PROTOCOL_ERROR, RST_REFUSED_STREAM, RST_STREAM,
                                    SYN_REPLY, SYN_STREAM, FrameParser, HeaderCodec, SpdyError, SpdySession,
                                    data_frame, ping_frame, rst_stream, syn_reply)

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
WEBSOCKET_PROTOCOLS = ("v4.channel.k8s.io",)
PORT_HEADER, STREAM_TYPE_HEADER, REQUEST_ID_HEADER = "port", "streamtype", "requestid"
STREAM_ERROR, STREAM_DATA = "error", "data"
CHUNK = 32 * 1024            # what we put in one DATA frame or WebSocket message
QUEUED_CHUNKS = 16           # per stream, before the sender waits
ERROR_TEXT_LIMIT = 64 * 1024
ERROR_WAIT = 5.0             # for the runtime's error text once the data stream ended


@dataclass(frozen=True)
class PortForwardLimits:
    max_ports: int = 64                  # ports in one WebSocket request
    max_streams: int = 256               # open streams of one SPDY connection (two per forwarded connection)
    max_sessions: int = 128              # port-forward connections a node server serves at once
    idle_timeout: float = 4 * 3600.0     # no frame either way for this long ends a connection (kubelet: 4h)
    stream_creation_timeout: float = 30.0


class PortForwardError(Exception):
    """A request or stream the protocol refuses; the message is kubelet's."""


def parse_ports(values: Sequence[str], limits: PortForwardLimits) -> list[int]:
    """`?port=` values of a WebSocket request (repeated and/or comma-separated), checked as kubelet's."""
    if not values:
        raise PortForwardError('query parameter "port" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise PortForwardError('query parameter "port" cannot be empty')
        for item in value.split(","):
            ports.append(parse_port(item, value))
    if len(ports) > limits.max_ports:
        raise PortForwardError(f"too many ports: {len(ports)} (at most {limits.max_ports} in one request)")
    return ports


def parse_port(text: str, shown: str | None = None) -> int:
    shown = text if shown is None else shown
    if not text.isdigit():
        raise PortForwardError(f'unable to parse "{shown}" as a port: invalid syntax')
    port = int(text)
    if port > 65535:
        raise PortForwardError(f'unable to parse "{shown}" as a port: value out of range')
    if port < 1:
        raise PortForwardError(f'port "{shown}" must be > 0')
    return port


def port_bytes(port: int) -> bytes:
    return struct.pack("<H", port)


# ------------------------------------------------------------------------------------------------ backends
class Conduit(ABC):
    """One forwarded TCP connection into the pod."""

    @abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abstractmethod
    async def write_eof(self) -> None: ...

    @abstractmethod
    async def read(self) -> bytes:
        """Bytes from the pod's port; b"" once that side ended."""

    @abstractmethod
    async def error(self) -> str:
        """After read() returned b"": the runtime's error text ("" when none)."""

    @abstractmethod
    def close(self) -> None:
        """Releases the connection (aborts it when it has not ended)."""


class Backend(ABC):
    @abstractmethod
    async def open(self, port: int) -> Conduit:
        """A connection to `port` in the pod; PortForwardError when it cannot even be asked for."""

    @abstractmethod
    async def close(self) -> None: ...

    @property
    @abstractmethod
    def open_conduits(self) -> int: ...


class _Inbox:
    """Chunks for one reader; the writer waits while QUEUED_CHUNKS are unread. end() never waits."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUED_CHUNKS)
        self.ended = False

    async def put(self, data: bytes) -> None:
        if not self.ended:
            await self._queue.put(data)

    def try_put(self, data: bytes) -> bool:
        if self.ended:
            return True
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            if self._queue.empty():
                self._queue.put_nowait(b"")

    async def get(self) -> bytes:
        """The next chunk; b"" once ended and drained."""
        if self.ended and self._queue.empty():
            return b""
        return await self._queue.get()


@dataclass
class _RuntimeStream:
    stream_id: int
    replied: asyncio.Event = field(default_factory=asyncio.Event)
    inbox: _Inbox = field(default_factory=_Inbox)
    reset: bool = False
    fin_sent: bool = False


class RuntimeBackend(Backend):
    """Forwarded connections as stream pairs on one SPDY session to the runtime's streaming server."""

    def __init__(self, session: SpdySession, reply_timeout: float = 30.0) -> None:
        self.session = session
        self.reply_timeout = reply_timeout
        self._streams: dict[int, _RuntimeStream] = {}
        self._request_ids = itertools.count()
        self._conduits = 0
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="portforward-runtime")

    @classmethod
    async def connect(cls, url: str) -> RuntimeBackend:
        return cls(await SpdySession.connect(url, [PROTOCOL]))

    @property
    def open_conduits(self) -> int:
        return self._conduits

    async def _read(self) -> None:
        try:
            async for frame in self.session.frames():
                stream = self._streams.get(frame.stream_id)
                if frame.control:
                    if frame.kind == SYN_REPLY and stream is not None:
                        stream.replied.set()
                        if frame.fin:
                            stream.inbox.end()
                    elif frame.kind == RST_STREAM and stream is not None:
                        stream.reset = True
                        stream.replied.set()
                        stream.inbox.end()
                    elif frame.kind == SYN_STREAM:       # the runtime opens no streams of its own here
                        self.session.writer.write(rst_stream(frame.stream_id, RST_REFUSED_STREAM))
                    elif frame.kind == GOAWAY:
                        return
                elif stream is not None:
                    if frame.data:
                        await stream.inbox.put(frame.data)
                    if frame.fin:
                        stream.inbox.end()
        except (SpdyError, OSError, ConnectionError) as error:
            log.info("port-forward runtime session ended error=%r", error)
        finally:
            for stream in self._streams.values():
                stream.reset = True
                stream.replied.set()
                stream.inbox.end()
            self.closed.set()

    def _open_stream(self, headers: dict[str, str]) -> _RuntimeStream:
        stream = _RuntimeStream(self.session.open_stream(headers))
        self._streams[stream.stream_id] = stream
        return stream

    async def open(self, port: int) -> Conduit:
        if self.closed.is_set():
            raise PortForwardError("the runtime's streaming session is closed")
        request_id = str(next(self._request_ids))
        headers = {"port": str(port), "requestID": request_id}
        error = self._open_stream({"streamType": STREAM_ERROR, **headers})
        data = self._open_stream({"streamType": STREAM_DATA, **headers})
        conduit = _RuntimeConduit(self, error, data)
        self._conduits += 1
        try:
            await asyncio.wait_for(asyncio.gather(error.replied.wait(), data.replied.wait()), self.reply_timeout)
        except asyncio.TimeoutError:
            conduit.close()
            raise PortForwardError(f"the runtime did not accept the streams for port {port}") from None
        if error.reset or data.reset:
            conduit.close()
            raise PortForwardError(f"the runtime refused the streams for port {port}")
        await self._send(error, b"", fin=True)      # we never write to the error stream
        return conduit

    async def _send(self, stream: _RuntimeStream, data: bytes, fin: bool = False) -> None:
        if stream.fin_sent or stream.reset or self.closed.is_set():
            return
        stream.fin_sent = stream.fin_sent or fin
        try:
            await self.session.send(stream.stream_id, data, fin)
        except (OSError, ConnectionError) as error:
            log.info("port-forward runtime write failed error=%r", error)

    def _release(self, conduit: _RuntimeConduit) -> None:
        self._conduits -= 1
        for stream in (conduit.error_stream, conduit.data_stream):
            ended = stream.inbox.ended and stream.fin_sent
            if not ended and not stream.reset and not self.closed.is_set():
                self.session.writer.write(rst_stream(stream.stream_id, RST_CANCEL))
            stream.inbox.end()
            self._streams.pop(stream.stream_id, None)

    async def close(self) -> None:
        await self.session.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class _RuntimeConduit(Conduit):
    def __init__(self, backend: RuntimeBackend, error_stream: _RuntimeStream, data_stream: _RuntimeStream) -> None:
        self.backend, self.error_stream, self.data_stream = backend, error_stream, data_stream
        self._closed = False

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), CHUNK):
            await self.backend._send(self.data_stream, data[start:start + CHUNK])

    async def write_eof(self) -> None:
        await self.backend._send(self.data_stream, b"", fin=True)

    async def read(self) -> bytes:
        return await self.data_stream.inbox.get()

    async def error(self) -> str:
        text = b""
        try:
            async with asyncio.timeout(ERROR_WAIT):
                while chunk := await self.error_stream.inbox.get():
                    text += chunk
                    if len(text) > ERROR_TEXT_LIMIT:
                        break
        except TimeoutError:
            pass
        return text[:ERROR_TEXT_LIMIT].decode(errors="replace")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.backend._release(self)


# ------------------------------------------------------------------------------------------------ sessions
class SessionCounter:
    """Port-forward connections open on this node server, against PortForwardLimits.max_sessions."""

    def __init__(self, limits: PortForwardLimits) -> None:
        self.limits = limits
        self.sessions = 0
        self.streams = 0          # open client streams (SPDY) or ports (WebSocket) across sessions

    def try_acquire(self) -> bool:
        if self.sessions >= self.limits.max_sessions:
            return False
        self.sessions += 1
        return True

    def release(self) -> None:
        self.sessions -= 1


class _Idle:
    """The time of the last frame either way; `watch()` returns once none came for `timeout` seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()

    async def watch(self) -> None:
        while True:
            left = self.last + self.timeout - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)


# ------------------------------------------------------------------------------------------------ SPDY server
ByteReader = Callable[[], Awaitable[bytes]]
ByteWriter = Callable[[bytes], Awaitable[None]]


@dataclass
class _ClientStream:
    stream_id: int
    kind: str
    fin_received: bool = False
    fin_sent: bool = False


@dataclass
class _Pair:
    request_id: str
    port: int
    error: _ClientStream | None = None
    data: _ClientStream | None = None
    inbox: _Inbox = field(default_factory=_Inbox)
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


class SpdyServer:
    """One client connection speaking SPDY port-forward; serve() returns when it ends."""

    def __init__(self, read: ByteReader, write: ByteWriter, backend: Backend, limits: PortForwardLimits,
                 counter: SessionCounter | None = None, name: str = "") -> None:
        self._read, self._write = read, write
        self.backend, self.limits, self.counter, self.name = backend, limits, counter, name
        self._codec = HeaderCodec()
        self._parser = FrameParser(HeaderCodec())
        self._streams: dict[int, tuple[_ClientStream, _Pair]] = {}
        self._pairs: dict[str, _Pair] = {}
        self._last_client_id = 0
        self._idle = _Idle(limits.idle_timeout)
        self._tasks: set[asyncio.Task] = set()
        self._write_lock = asyncio.Lock()
        self.refused = 0

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def serve(self) -> None:
        reader = asyncio.create_task(self._read_loop())
        idle = asyncio.create_task(self._idle.watch())
        try:
            done, _ = await asyncio.wait({reader, idle}, return_when=asyncio.FIRST_COMPLETED)
            if idle in done:
                log.info("port-forward connection idle for %ss, closing session=%s", self.limits.idle_timeout,
                         self.name)
            elif reader.exception() is not None:
                log.info("port-forward connection ended session=%s error=%r", self.name, reader.exception())
        finally:
            for task in (reader, idle, *self._tasks):
                task.cancel()
            await asyncio.gather(reader, idle, *self._tasks, return_exceptions=True)
            if self.counter is not None:
                self.counter.streams -= len(self._streams)
            self._streams.clear()
            self._pairs.clear()

    # ------------------------------------------------------------ writing
    async def _send(self, frame: bytes) -> None:
        self._idle.touch()
        async with self._write_lock:
            await self._write(frame)

    async def _send_reply(self, stream_id: int) -> None:
        async with self._write_lock:       # compression state: encode and write in the same order
            await self._write(syn_reply(self._codec, stream_id, {}))

    async def _send_data(self, stream: _ClientStream, data: bytes, fin: bool = False) -> None:
        if stream.fin_sent:
            return
        if fin:
            stream.fin_sent = True
        for start in range(0, max(len(data), 1), CHUNK):
            chunk = data[start:start + CHUNK]
            last = start + CHUNK >= len(data)
            await self._send(data_frame(stream.stream_id, chunk, fin and last))

    # ------------------------------------------------------------ reading
    async def _read_loop(self) -> None:
        while True:
            chunk = await self._read()
            if not chunk:
                return
            self._idle.touch()
            for frame in self._parser.feed(chunk):
                if frame.control:
                    if frame.kind == SYN_STREAM:
                        await self._on_syn_stream(frame.stream_id, frame.headers, frame.fin)
                    elif frame.kind == RST_STREAM:
                        self._on_reset(frame.stream_id)
                    elif frame.kind == PING:
                        await self._send(ping_frame(frame.status))
                    elif frame.kind == GOAWAY:
                        return
                    # SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY: nothing to do (no flow control, as spdystream)
                else:
                    await self._on_data(frame.stream_id, frame.data, frame.fin)

    async def _reject(self, stream_id: int, status: int, why: str) -> None:
        log.info("port-forward stream refused session=%s stream=%d: %s", self.name, stream_id, why)
        self.refused += 1
        await self._send(rst_stream(stream_id, status))

    async def _on_syn_stream(self, stream_id: int, headers: Mapping[str, str], fin: bool) -> None:
        if stream_id % 2 == 0 or stream_id <= self._last_client_id:
            await self._reject(stream_id, RST_PROTOCOL_ERROR, "stream id not a new odd id")
            return
        self._last_client_id = stream_id
        if len(self._streams) >= self.limits.max_streams:
            await self._reject(stream_id, RST_REFUSED_STREAM,
                               f"{len(self._streams)} streams open, the limit of one connection")
            return
        try:
            port, kind = _validated(headers)
        except PortForwardError as error:
            await self._reject(stream_id, RST_CANCEL, str(error))
            return
        request_id = headers.get(REQUEST_ID_HEADER) or str(stream_id if kind == STREAM_ERROR else stream_id - 2)
        pair = self._pairs.get(request_id)
        if pair is None:
            pair = self._pairs[request_id] = _Pair(request_id, port)
            self._spawn(self._monitor(pair))
        if getattr(pair, kind) is not None:
            await self._reject(stream_id, RST_CANCEL, f"{kind} stream already assigned for request {request_id}")
            if pair.error is not None:
                await self._send_data(pair.error, f"error processing stream for request {request_id}: "
                                                  f"{kind} stream already assigned".encode())
            return
        stream = _ClientStream(stream_id, kind, fin_received=fin)
        setattr(pair, kind, stream)
        self._streams[stream_id] = (stream, pair)
        if self.counter is not None:
            self.counter.streams += 1
        await self._send_reply(stream_id)
        if fin and kind == STREAM_DATA:
            pair.inbox.end()
        if pair.error is not None and pair.data is not None:
            pair.complete.set()
            pair.task = self._spawn(self._forward(pair))

    async def _on_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        entry = self._streams.get(stream_id)
        if entry is None:
            return       # a stream we already closed or refused
        stream, pair = entry
        if stream.kind == STREAM_DATA and data:
            if pair.task is not None:
                await pair.inbox.put(data)
            elif not pair.inbox.try_put(data):     # no forward yet to drain it: refuse rather than wait
                await self._reject(stream_id, RST_CANCEL, "data before the pair was complete")
                self._end_pair(pair)
                return
        if fin:
            stream.fin_received = True
            if stream.kind == STREAM_DATA:
                pair.inbox.end()
        self._forget_if_done(pair)

    def _on_reset(self, stream_id: int) -> None:
        entry = self._streams.get(stream_id)
        if entry is not None:
            self._end_pair(entry[1])

    # ------------------------------------------------------------ pairs
    def _spawn(self, coroutine: Awaitable[None]) -> asyncio.Task:
        task = asyncio.create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _drop_streams(self, pair: _Pair) -> None:
        for stream in (pair.error, pair.data):
            if stream is not None and self._streams.pop(stream.stream_id, None) is not None:
                if self.counter is not None:
                    self.counter.streams -= 1
        if self._pairs.get(pair.request_id) is pair:
            del self._pairs[pair.request_id]

    def _end_pair(self, pair: _Pair) -> None:
        """The client reset a stream: abort the forward and forget the pair."""
        pair.inbox.end()
        if pair.task is not None:
            pair.task.cancel()
        self._drop_streams(pair)

    def _forget_if_done(self, pair: _Pair) -> None:
        streams = [s for s in (pair.error, pair.data) if s is not None]
        if pair.task is not None and pair.task.done() and all(s.fin_sent and s.fin_received for s in streams):
            self._drop_streams(pair)

    async def _monitor(self, pair: _Pair) -> None:
        try:
            await asyncio.wait_for(pair.complete.wait(), self.limits.stream_creation_timeout)
        except asyncio.TimeoutError:
            message = f"(conn={self.name}, request={pair.request_id}) timed out waiting for streams"
            log.info("port-forward %s", message)
            for stream in (pair.error, pair.data):
                if stream is not None:
                    await self._send_data(stream, message.encode() if stream is pair.error else b"", fin=True)
            self._drop_streams(pair)

    async def _forward(self, pair: _Pair) -> None:
        assert pair.error is not None and pair.data is not None
        error_stream, data_stream = pair.error, pair.data
        conduit: Conduit | None = None
        upload: asyncio.Task | None = None
        try:
            try:
                conduit = await self.backend.open(pair.port)
            except PortForwardError as error:
                await self._send_data(error_stream, f"error forwarding port {pair.port} to pod {self.name}: "
                                                    f"{error}".encode())
                return
            upload = asyncio.create_task(_upload(pair.inbox, conduit))
            while data := await conduit.read():
                await self._send_data(data_stream, data)
            text = await conduit.error()
            if text:
                await self._send_data(error_stream, text.encode())
        finally:
            if upload is not None:
                upload.cancel()
                await asyncio.gather(upload, return_exceptions=True)
            if conduit is not None:
                conduit.close()
            try:
                await self._send_data(data_stream, b"", fin=True)
                await self._send_data(error_stream, b"", fin=True)
            except (OSError, ConnectionError):
                pass
            # The client FINs its side once it read ours (kubectl does at once); what it sends after that
            # is dropped. Streams it never ends are forgotten here all the same: nothing more flows.
            self._drop_streams(pair)


async def _upload(inbox: _Inbox, conduit: Conduit) -> None:
    while data := await inbox.get():
        await conduit.write(data)
    await conduit.write_eof()


def _validated(headers: Mapping[str, str]) -> tuple[int, str]:
    port_text = headers.get(PORT_HEADER, "")
    if not port_text:
        raise PortForwardError('"port" header is required')
    port = parse_port(port_text)
    kind = headers.get(STREAM_TYPE_HEADER, "")
    if not kind:
        raise PortForwardError('"streamType" header is required')
    if kind not in (STREAM_ERROR, STREAM_DATA):
        raise PortForwardError(f'invalid stream type "{kind}"')
    return port, kind


# ------------------------------------------------------------------------------------------------ WebSocket
async def serve_websocket(ws: web.WebSocketResponse, ports: list[int], backend: Backend,
                          limits: PortForwardLimits, name: str = "") -> None:
    """Forwards each port once, channels 2i/2i+1; returns (and the caller closes) when all ended."""
    idle = _Idle(limits.idle_timeout)
    send_lock = asyncio.Lock()
    conduits: dict[int, Conduit] = {}
    inboxes = [_Inbox() for _ in ports]

    async def send(channel: int, data: bytes) -> None:
        idle.touch()
        async with send_lock:
            await ws.send_bytes(bytes([channel]) + data)

    async def forward(index: int, port: int) -> None:
        data_channel, error_channel = 2 * index, 2 * index + 1
        try:
            conduit = conduits[index] = await backend.open(port)
        except PortForwardError as error:
            await send(error_channel, f"error forwarding port {port} to pod {name}: {error}".encode())
            return
        upload = asyncio.create_task(_upload(inboxes[index], conduit))
        try:
            while data := await conduit.read():
                await send(data_channel, data)
            text = await conduit.error()
            if text:
                await send(error_channel, text.encode())
        finally:
            upload.cancel()
            await asyncio.gather(upload, return_exceptions=True)
            conduit.close()

    async def from_client() -> None:
        async for message in ws:
            raw = message_bytes(message)
            if raw is None:
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return
                continue
            idle.touch()
            if len(raw) < 2:
                continue
            channel = raw[0]
            if channel % 2 == 0 and channel // 2 < len(ports):
                await inboxes[channel // 2].put(raw[1:])
            # anything on an error channel or past the ports is ignored, as wsstream's write-only channels

    for index, port in enumerate(ports):
        await send(2 * index, port_bytes(port))
        await send(2 * index + 1, port_bytes(port))
    forwards = asyncio.gather(*(forward(i, p) for i, p in enumerate(ports)), return_exceptions=True)
    client = asyncio.create_task(from_client())
    watchdog = asyncio.create_task(idle.watch())
    forwarding = asyncio.ensure_future(forwards)
    try:
        done, _ = await asyncio.wait({forwarding, client, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        if watchdog in done:
            log.info("port-forward WebSocket idle for %ss, closing pod=%s", limits.idle_timeout, name)
    finally:
        for inbox in inboxes:
            inbox.end()
        for task in (client, watchdog, forwarding):
            task.cancel()
        await asyncio.gather(client, watchdog, forwarding, return_exceptions=True)
        for conduit in conduits.values():
            conduit.close()
