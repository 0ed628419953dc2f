"""SPDY/3.1 framing and a small client session: how the agent talks to containerd's CRI streaming server
(the server side of port-forward, where kubectl is the client, is in portforward.py).

containerd 1.6's streaming server speaks the remote command protocol over SPDY or WebSocket v4, but
WebSocket v4 cannot half-close stdin (that is what v5's CLOSE signal added), so `kubectl exec -i`
with piped input would never see EOF. Over SPDY, stdin is its own stream and a FIN ends it.

Frames: SYN_STREAM, SYN_REPLY, DATA, RST_STREAM, PING and GOAWAY both ways. The peer (moby/spdystream) does no flow control, so WINDOW_UPDATE and
SETTINGS are accepted and ignored.
"""
from __future__ import annotations

import asyncio
import struct
import zlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shipmate.stream_limits import MAX_STREAM_MESSAGE_BYTES

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
# RST_STREAM status codes (SPDY/3 section 2.6.3) we send or read.
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_REFUSED_STREAM, RST_CANCEL = 1, 2, 3, 5
MAX_DATA_LENGTH = (1 << 24) - 1
# What one incoming frame may make us hold: its payload (the protocol allows 16 MiB; the runtime writes
# 32 KiB chunks) and its decompressed header block (a few hundred bytes in practice; a zlib "bomb" of
# repeated bytes would otherwise inflate ~1000-fold).
MAX_FRAME_LENGTH = MAX_STREAM_MESSAGE_BYTES
MAX_HEADER_BLOCK_BYTES = 256 * 1024

# The preset zlib dictionary of SPDY/3 header blocks (draft 3, section 2.6.10.1): a protocol constant.
HEADER_DICTIONARY = (
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\x00\x06delete"
    b"\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-encoding"
    b"\x00\x00\x00\x0faccept-language\x00\x00\x00\x0daccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow"
    b"\x00\x00\x00\x0dauthorization\x00\x00\x00\x0dcache-control\x00\x00\x00\x0aconnection\x00\x00\x00\x0c"
    b"content-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10content-language\x00\x00\x00\x0e"
    b"content-length\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range"
    b"\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00"
    b"\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11"
    b"if-modified-since\x00\x00\x00\x0dif-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13"
    b"if-unmodified-since\x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards"
    b"\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization\x00\x00\x00"
    b"\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te"
    b"\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\x0a"
    b"user-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate"
    b"\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\x07"
    b"version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\x0aset-cookie"
    b"\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin100101201202205206300302303304305306307402405406407408"
    b"409410411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    b"400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    b"503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, "
    b"Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,"
    b"text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,"
    b"*,enq=0."
)


class SpdyError(Exception):
    """The peer broke the protocol or the upgrade was refused."""


@dataclass
class Frame:
    control: bool
    kind: int               # control frame type; 0 for DATA
    flags: int
    stream_id: int = 0
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0         # RST_STREAM / GOAWAY status, PING id

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class HeaderCodec:
    """One zlib stream per direction for the whole session, preset with the SPDY dictionary."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zdict=HEADER_DICTIONARY)
        self._decompressor = zlib.decompressobj(zdict=HEADER_DICTIONARY)

    def encode(self, headers: dict[str, str]) -> bytes:
        block = struct.pack(">I", len(headers))
        for name, value in headers.items():
            raw_name, raw_value = name.lower().encode(), value.encode()
            block += struct.pack(">I", len(raw_name)) + raw_name + struct.pack(">I", len(raw_value)) + raw_value
        return self._compressor.compress(block) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, compressed: bytes) -> dict[str, str]:
        try:
            block = self._decompressor.decompress(compressed, MAX_HEADER_BLOCK_BYTES + 1)
        except zlib.error as error:
            raise SpdyError(f"bad header block: {error}") from None
        if len(block) > MAX_HEADER_BLOCK_BYTES or self._decompressor.unconsumed_tail:
            raise SpdyError(f"header block larger than {MAX_HEADER_BLOCK_BYTES} bytes once decompressed")
        return parse_header_block(block)


def parse_header_block(block: bytes) -> dict[str, str]:
    try:
        (count,), offset, headers = struct.unpack_from(">I", block), 4, {}
        for _ in range(count):
            (length,) = struct.unpack_from(">I", block, offset)
            name = block[offset + 4:offset + 4 + length].decode()
            offset += 4 + length
            (length,) = struct.unpack_from(">I", block, offset)
            headers[name] = block[offset + 4:offset + 4 + length].decode()
            offset += 4 + length
    except (struct.error, UnicodeDecodeError) as error:
        raise SpdyError(f"bad header block: {error}") from None
    return headers


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def syn_stream(codec: HeaderCodec, stream_id: int, headers: dict[str, str], fin: bool = False) -> bytes:
    payload = struct.pack(">IIH", stream_id, 0, 0) + codec.encode(headers)
    return _control(SYN_STREAM, FLAG_FIN if fin else 0, payload)


def syn_reply(codec: HeaderCodec, stream_id: int, headers: dict[str, str], fin: bool = False) -> bytes:
    payload = struct.pack(">I", stream_id & 0x7FFFFFFF) + codec.encode(headers)
    return _control(SYN_REPLY, FLAG_FIN if fin else 0, payload)


def goaway_frame(last_good_stream_id: int, status: int = 0) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_good_stream_id & 0x7FFFFFFF, status))


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    if len(data) > MAX_DATA_LENGTH:
        raise ValueError("SPDY data frame too large")
    return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


def ping_frame(ping_id: int) -> bytes:
    return _control(PING, 0, struct.pack(">I", ping_id))


def rst_stream(stream_id: int, status: int = RST_CANCEL) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


class FrameParser:
    """Incremental: feed bytes, get whole frames (header blocks decompressed in arrival order)."""

    def __init__(self, codec: HeaderCodec) -> None:
        self._codec = codec
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buffer += chunk
        frames = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer)
            length = second & 0xFFFFFF
            if length > MAX_FRAME_LENGTH:  # refused before its payload is buffered
                raise SpdyError(f"frame of {length} bytes is larger than the limit of {MAX_FRAME_LENGTH}")
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            flags = second >> 24
            if first & 0x80000000:
                frames.append(self._control_frame((first >> 16) & 0x7FFF, first & 0xFFFF, flags, payload))
            else:
                frames.append(Frame(False, 0, flags, first & 0x7FFFFFFF, payload))
        return frames

    def _control_frame(self, version: int, kind: int, flags: int, payload: bytes) -> Frame:
        if version != VERSION:
            raise SpdyError(f"unsupported SPDY version {version}")
        if kind in (SYN_REPLY, HEADERS):
            (stream_id,) = struct.unpack_from(">I", payload)
            return Frame(True, kind, flags, stream_id & 0x7FFFFFFF, headers=self._codec.decode(payload[4:]))
        if kind == SYN_STREAM:
            (stream_id,) = struct.unpack_from(">I", payload)
            return Frame(True, kind, flags, stream_id & 0x7FFFFFFF, headers=self._codec.decode(payload[10:]))
        if kind in (RST_STREAM, GOAWAY):
            stream_id, status = struct.unpack_from(">II", payload)
            return Frame(True, kind, flags, stream_id & 0x7FFFFFFF, status=status)
        if kind == PING:
            return Frame(True, kind, flags, status=struct.unpack_from(">I", payload)[0])
        return Frame(True, kind, flags, data=payload)


def upgrade_request(url: str, protocols: list[str]) -> bytes:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"POST {target or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Connection: Upgrade",
             "Upgrade: SPDY/3.1", *(f"X-Stream-Protocol-Version: {p}" for p in protocols), "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_upgrade_response(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and headers (lower-cased names) of an HTTP/1.1 response head."""
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise SpdyError(f"bad upgrade response: {lines[0]!r}") from None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


class SpdySession:
    """A client session over an upgraded connection; streams are opened by us (odd ids)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: str) -> None:
        self.reader, self.writer, self.protocol = reader, writer, protocol
        self._codec = HeaderCodec()
        self._parser = FrameParser(self._codec)
        self._next_id = 1

    @classmethod
    async def connect(cls, url: str, protocols: list[str], timeout: float = 10.0) -> SpdySession:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise SpdyError(f"streaming URL scheme {parts.scheme!r} is not supported (want http)")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 80), timeout)
        try:
            writer.write(upgrade_request(url, protocols))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status, headers = parse_upgrade_response(head)
            if status != 101:
                body = await asyncio.wait_for(reader.read(4096), timeout)
                detail = body.decode(errors="replace").strip()
                raise SpdyError(f"runtime refused the stream upgrade: HTTP {status}: {detail}")
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, headers.get("x-stream-protocol-version", ""))

    def open_stream(self, headers: dict[str, str]) -> int:
        stream_id, self._next_id = self._next_id, self._next_id + 2
        self.writer.write(syn_stream(self._codec, stream_id, headers))
        return stream_id

    async def send(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        self.writer.write(data_frame(stream_id, data, fin))
        await self.writer.drain()

    async def frames(self):
        """Frames from the peer until it closes the connection; PINGs are answered here."""
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            for frame in self._parser.feed(chunk):
                if frame.control and frame.kind == PING:
                    self.writer.write(ping_frame(frame.status))
                    continue
                yield frame

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
