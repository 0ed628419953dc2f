"""The listening socket: aiohttp's TCPSite with a bounded TLS handshake (asyncio's default is 60 s, during
which a client that never sends its ClientHello holds a connection), a bounded number of open connections,
and a collection of the cyclic garbage closed connections leave.

Why the collection: a connection whose request aiohttp cannot parse (a request line over its limit, say)
ends as a reference cycle (the parser's exception, its traceback, the protocol, the TLS object with its
buffers). Only the cyclic collector frees it, and its oldest generation runs rarely (apiserver.main
raises the young threshold, and the oldest waits for a 25 % growth of long-lived objects): a client
sending such requests in a loop made the server's RSS grow by ~5 MB/s. A full collection after every
COLLECT_AFTER_CLOSED closed connections bounds that garbage to a few dozen connections (~15 MB); it costs
about what the TLS handshakes of those connections cost."""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_runner import BaseSite

from apiserver.bounds import MAX_OPEN_CONNECTIONS
from apiserver.http.limits import TLS_HANDSHAKE_TIMEOUT
from shipmate.memory import release_freed_memory

log = logging.getLogger(__name__)

COLLECT_AFTER_CLOSED = 64


class _ClientErrorsAtDebug(logging.Filter):
    """aiohttp logs a request it cannot parse (a request line over its limit, a bad header) at ERROR with its
    traceback: a client could fill the log with them. They are the client's fault and already answered 400."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            log.debug("request not parsed: %s", error)
            return False
        return True


def log_client_errors_at_debug() -> None:
    logging.getLogger("aiohttp.server").addFilter(_ClientErrorsAtDebug())


class ConnectionLimiter:
    """Wraps the server's protocol factory: past `max_open` open connections (0: no limit) a new one is
    closed as soon as it is made; every COLLECT_AFTER_CLOSED closed connections, a full collection."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], max_open: int,
                 collect_after: int = COLLECT_AFTER_CLOSED) -> None:
        self.factory = factory
        self.max_open = max_open
        self.collect_after = collect_after
        self.open = 0
        self.refused = 0
        self.closed_since_collect = 0

    def __call__(self) -> asyncio.Protocol:
        if self.max_open and self.open >= self.max_open:
            self.refused += 1
            return _Refused()
        self.open += 1
        return _Counted(self.factory(), self)

    def closed(self) -> None:
        self.open -= 1
        self.closed_since_collect += 1
        if self.closed_since_collect >= self.collect_after:
            self.closed_since_collect = 0
            started = time.perf_counter()
            freed = gc.collect()
            release_freed_memory()
            log.debug("collected after %d closed connections freed=%d seconds=%.3f", self.collect_after, freed,
                      time.perf_counter() - started)


class _Counted(asyncio.Protocol):
    """The aiohttp protocol of one connection, which tells the limiter when it ends."""
    __slots__ = ("_inner", "_limiter")

    def __init__(self, inner: asyncio.Protocol, limiter: ConnectionLimiter) -> None:
        self._inner = inner
        self._limiter = limiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._inner.connection_lost(exc)
        finally:
            limiter, self._limiter = self._limiter, None
            if limiter is not None:
                limiter.closed()


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()


class BoundedTCPSite(web.TCPSite):
    def __init__(self, *args, ssl_handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
                 max_open_connections: int = MAX_OPEN_CONNECTIONS, **kwargs):
        super().__init__(*args, **kwargs)
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self.connections: ConnectionLimiter | None = None
        self._max_open_connections = max_open_connections

    async def start(self) -> None:
        await BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self.connections = ConnectionLimiter(server, self._max_open_connections)
        self._server = await asyncio.get_running_loop().create_server(
            self.connections, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._ssl_handshake_timeout if self._ssl_context else None)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
