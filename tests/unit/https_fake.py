"""A self-made cluster CA and fake API servers (aiohttp apps) serving HTTPS with it on loopback."""
from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from shipmate import pki


@dataclass(frozen=True)
class ClusterCA:
    cert: bytes
    key: bytes
    directory: Path

    @classmethod
    def create(cls, directory: Path) -> "ClusterCA":
        cert, key = pki.make_ca("test-cluster-ca")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ca.crt").write_bytes(cert)
        return cls(cert, key, directory)

    @property
    def cert_path(self) -> str:
        return str(self.directory / "ca.crt")

    def client_pem(self, name: str, common_name: str, organizations: tuple[str, ...] = (),
                   seconds: int = 3600) -> str:
        """A file holding a client certificate + key signed by this CA."""
        cert, key = pki.issue(self.cert, self.key, common_name, organizations, client=True, seconds=seconds)
        path = self.directory / name
        path.write_bytes(cert + key)
        path.chmod(0o600)
        return str(path)

    def server_context(self) -> ssl.SSLContext:
        """Serving 127.0.0.1 / localhost; client certificates are optional but must chain to the CA."""
        cert, key = pki.issue(self.cert, self.key, "fake-apiserver", dns_names=["localhost"],
                              ip_addresses=["127.0.0.1"], server=True)
        path = self.directory / "server.pem"
        path.write_bytes(cert + key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(path))
        context.load_verify_locations(cadata=self.cert.decode())
        context.verify_mode = ssl.CERT_OPTIONAL
        return context


def peer_common_name(request: web.Request) -> str:
    """The CN of the client certificate the TLS handshake verified ("" without one)."""
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    for rdn in (peer or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return ""


class HttpsServer:
    """One fake server on a fixed port, which can be stopped and started again (a dying server)."""

    def __init__(self, app: web.Application, context: ssl.SSLContext, port: int = 0) -> None:
        self.app, self.context, self.port = app, context, port
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.context, reuse_address=True)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@contextlib.asynccontextmanager
async def serving(*servers: HttpsServer) -> AsyncIterator[None]:
    for server in servers:
        await server.start()
    try:
        yield
    finally:
        for server in servers:
            await server.stop()
