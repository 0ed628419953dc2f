"""The listening socket: aiohttp's TCPSite with a bounded TLS handshake (asyncio's default is 60 s, during
which a client that never sends its ClientHello holds a connection)."""
from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_runner import BaseSite

from apiserver.http.limits import TLS_HANDSHAKE_TIMEOUT


class BoundedTCPSite(web.TCPSite):
    def __init__(self, *args, ssl_handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT, **kwargs):
        super().__init__(*args, **kwargs)
        self._ssl_handshake_timeout = ssl_handshake_timeout

    async def start(self) -> None:
        await BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._ssl_handshake_timeout if self._ssl_context else None)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
