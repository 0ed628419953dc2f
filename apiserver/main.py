"""`shipmate server`: storage → API → HTTP, plus the scheduler and namespace controller tasks."""
from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from aiohttp import web

from apiserver import kubernetes_service
from apiserver.api import API
from apiserver.config import ServerConfig, parse_args
from apiserver.controllers.wiring import workload_tasks
from apiserver.endpoint_tasks import endpoint_tasks
from apiserver.event_ttl import run_event_ttl
from apiserver.http.server import HTTPServer
from apiserver.informer import SharedInformers
from apiserver.kubeconfig import admin_kubeconfig, write_kubeconfig
from apiserver.namespace_controller import NamespaceController
from apiserver.node_lifecycle import LifecycleConfig
from apiserver.scheduling_tasks import scheduling_tasks
from apiserver.storage import open_storage
from apiserver.storage import sqlite_admin
from apiserver.storage.interface import StorageError
from shipmate.sd_notify import Notifier

log = logging.getLogger("apiserver")


async def serve(config: ServerConfig, ssl_context: ssl.SSLContext | None = None) -> None:
    storage = open_storage(config.datastore_endpoint, config.database_path, config.watch_history_size,
                           config.datastore_cafile, config.datastore_certfile, config.datastore_keyfile)
    data_dir_lock = None if config.datastore_endpoint else sqlite_admin.DataDirLock(config.database_path)
    if data_dir_lock:
        data_dir_lock.acquire()
    await storage.start()
    api = API(storage, config.cluster_cidr, config.node_cidr_mask_size,
              service_cluster_ip_range=config.service_cluster_ip_range,
              service_node_port_range=config.service_node_port_range)
    api.default_toleration_seconds = int(config.pod_eviction_timeout)
    await api.start()
    await kubernetes_service.reconcile(api, config.advertise_address, config.port)
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
    notifier = Notifier.from_environment()
    notifier.ready(f"serving on {config.bind_address}:{config.port}")
    informers = SharedInformers()  # one watch and one cache per resource for every control loop below
    control_loops = [*scheduling_tasks(api, informers, LifecycleConfig(
                         config.node_monitor_period, config.node_monitor_grace_period, config.pod_eviction_timeout)),
                     *endpoint_tasks(api, informers), *workload_tasks(api, informers)]
    tasks = [asyncio.create_task(notifier.run_watchdog(), name="systemd-watchdog"),
             asyncio.create_task(informers.run(), name="shared-informers"),  # after every loop registered
             *control_loops,
             asyncio.create_task(NamespaceController(api).run(), name="namespace-controller"),
             asyncio.create_task(run_event_ttl(api), name="event-ttl"),
             asyncio.create_task(kubernetes_service.run(api, config.advertise_address, config.port),
                                 name="kubernetes-service")]
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
        if data_dir_lock:
            data_dir_lock.release()
        log.info("stopped")


def _snapshot_or_restore(config: ServerConfig) -> int:
    try:
        if config.snapshot_path:
            summary = sqlite_admin.snapshot(config.database_path, config.snapshot_path)
            log.info("snapshot written file=%s revision=%d keys=%d", config.snapshot_path, summary.revision,
                     summary.keys)
        else:
            summary = sqlite_admin.restore(config.restore_path, config.database_path)
            log.info("store restored from=%s to=%s revision=%d keys=%d", config.restore_path,
                     config.database_path, summary.revision, summary.keys)
    except sqlite_admin.StoreAdminError as exc:
        log.error("%s", exc)
        return 1
    return 0


def main(argv: list[str]) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if config.snapshot_path or config.restore_path:
        return _snapshot_or_restore(config)
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        pass
    except (sqlite_admin.StoreAdminError, StorageError) as exc:  # data dir locked, etcd unreachable, bad TLS files
        log.error("%s", exc)
        return 1
    return 0
