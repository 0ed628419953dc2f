"""`shipmate server`: storage → API → HTTP, plus the scheduler and namespace controller tasks."""
from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from aiohttp import web

from apiserver.api import API
from apiserver.config import ServerConfig, parse_args
from apiserver.event_ttl import run_event_ttl
from apiserver.http.server import HTTPServer
from apiserver.kubeconfig import admin_kubeconfig, write_kubeconfig
from apiserver.namespace_controller import NamespaceController
from apiserver.scheduler.scheduler import Scheduler
from apiserver.storage.sqlite import SQLiteStorage

log = logging.getLogger("apiserver")


async def serve(config: ServerConfig, ssl_context: ssl.SSLContext | None = None) -> None:
    storage = SQLiteStorage(config.database_path, history_size=config.watch_history_size)
    await storage.start()
    api = API(storage, config.cluster_cidr, config.node_cidr_mask_size)
    await api.start()
    local_host = "127.0.0.1" if config.bind_address in ("0.0.0.0", "::") else config.bind_address
    scheme = "https" if ssl_context else "http"
    http = HTTPServer(api, f"{local_host}:{config.port}")
    runner = web.AppRunner(http.app, handler_cancellation=True, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, config.bind_address, config.port, ssl_context=ssl_context, reuse_address=True)
    await site.start()
    write_kubeconfig(config.admin_kubeconfig, admin_kubeconfig(f"{scheme}://{local_host}:{config.port}"))
    log.info("serving address=%s:%d data_dir=%s kubeconfig=%s", config.bind_address, config.port,
             config.data_dir, config.admin_kubeconfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(Scheduler(api).run(), name="scheduler"),
             asyncio.create_task(NamespaceController(api).run(), name="namespace-controller"),
             asyncio.create_task(run_event_ttl(api), name="event-ttl")]
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception():
                log.error("root task died task=%s error=%r", task.get_name(), task.exception())
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
        http.close_watches()
        await runner.cleanup()
        await storage.close()
        log.info("stopped")


def main(argv: list[str]) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        pass
    return 0
