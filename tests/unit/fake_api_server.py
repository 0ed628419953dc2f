"""Serves a fake API (an aiohttp app) on a free port and hands out a KubeClient pointed at it."""
from __future__ import annotations

import contextlib
from typing import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestServer

from shipmate.kubeclient import KubeClient, KubeConfig


@contextlib.asynccontextmanager
async def client_for(app: web.Application) -> AsyncIterator[KubeClient]:
    server = TestServer(app)
    await server.start_server()
    client = KubeClient(KubeConfig(server=str(server.make_url("")).rstrip("/")))
    try:
        yield client
    finally:
        await client.close()
        await server.close()
