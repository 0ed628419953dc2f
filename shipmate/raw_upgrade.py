"""HTTP/1.1 upgrades to a protocol other than WebSocket (SPDY/3.1), both ends, over aiohttp and asyncio.

Server side: aiohttp upgrades only to WebSocket; `RawUpgradeResponse` answers 101 and turns the rest of the
connection into a byte stream both ways. It installs itself as the connection's payload parser before the
101 goes out (a SPDY client sends nothing before it reads the 101), so every later byte is ours, and reads
are flow-controlled: past `buffer_limit` unread bytes the transport stops reading until we catch up.

Client side: `open_upgrade` writes the upgrade request on a fresh (TLS) connection and reads the answer;
a 101 gives the connection, anything else an `UpgradeRefused` with the status and the peer's body.
"""
from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

DEFAULT_BUFFER_LIMIT = 256 * 1024
MAX_RESPONSE_HEAD = 64 * 1024
MAX_REFUSAL_BODY = 64 * 1024


class UpgradeRefused(Exception):
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        super().__init__(f"HTTP {status}: {body.strip()}")
        self.status, self.headers, self.body = status, headers, body


class _Feed:
    """What aiohttp's request handler feeds the bytes after the 101 to (its payload parser interface)."""

    def __init__(self, transport: asyncio.Transport | None, limit: int) -> None:
        self._transport, self._limit = transport, limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._paused = False
        self._ready = asyncio.Event()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self._chunks.append(bytes(data))
            self._size += len(data)
            self._ready.set()
            if self._size > self._limit and not self._paused and self._transport is not None:
                self._paused = True
                self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._ready.set()

    async def read(self) -> bytes:
        """The next bytes the peer sent; b"" once it closed."""
        while not self._chunks:
            if self._eof:
                return b""
            self._ready.clear()
            await self._ready.wait()
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size <= self._limit // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk


class RawUpgradeResponse(web.StreamResponse):
    """`101 Switching Protocols` to `upgrade`; then `read()`/`write()` carry that protocol's bytes."""

    def __init__(self, upgrade: str, headers: dict[str, str] | None = None,
                 buffer_limit: int = DEFAULT_BUFFER_LIMIT) -> None:
        super().__init__(status=101, headers={"Connection": "Upgrade", "Upgrade": upgrade, **(headers or {})})
        self.force_close()
        self._buffer_limit = buffer_limit
        self._feed: _Feed | None = None

    async def prepare(self, request: web.BaseRequest):  # type: ignore[override]
        if self._feed is None:
            self._feed = _Feed(request.transport, self._buffer_limit)
            request.protocol.set_parser(self._feed)     # type: ignore[arg-type]
            request.protocol.keep_alive(False)
        return await super().prepare(request)

    async def read(self) -> bytes:
        assert self._feed is not None, "prepare() first"
        return await self._feed.read()


def upgrade_request_head(url: str, upgrade: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: Upgrade", f"Upgrade: {upgrade}",
             *(f"{name}: {value}" for name, value in headers), "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_response_head(head: bytes) -> tuple[int, dict[str, list[str]]]:
    """Status and headers (lower-cased names, every value) of an HTTP/1.1 response head."""
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise ValueError(f"bad HTTP response: {lines[0]!r}") from None
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers


async def open_upgrade(url: str, upgrade: str, headers: Iterable[tuple[str, str]] = (),
                       tls: ssl.SSLContext | None = None, timeout: float = 10.0
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, list[str]]]:
    """Connects to `url` (http or https) and upgrades; the connection and the 101's headers."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        host, port, ssl=tls if secure else None, server_hostname=host if secure else None,
        limit=MAX_RESPONSE_HEAD), timeout)
    try:
        writer.write(upgrade_request_head(url, upgrade, headers))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status, answer = parse_response_head(head)
        if status != 101:
            length = min(int((answer.get("content-length") or ["0"])[0] or 0), MAX_REFUSAL_BODY)
            body = b""
            try:
                body = await asyncio.wait_for(reader.readexactly(length) if length else reader.read(MAX_REFUSAL_BODY),
                                              timeout)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError) as error:
                body = getattr(error, "partial", b"")
            raise UpgradeRefused(status, {k: v[0] for k, v in answer.items()}, body.decode(errors="replace"))
    except BaseException:
        writer.close()
        raise
    return reader, writer, answer
