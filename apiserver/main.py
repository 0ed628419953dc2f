"""`shipmate server`: storage → API → HTTP, plus the scheduler and namespace controller tasks."""
from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web

from apiserver.controllers import kubernetes_service
from apiserver.api import API
from apiserver.auth import bootstrap_policy
from apiserver.config import ServerConfig, parse_args
from apiserver.controllers.manager import run_term
from apiserver.http.limits import HEADER_READ_TIMEOUT, InflightLimiter
from apiserver.http.serving import BoundedTCPSite, log_client_errors_at_debug
from apiserver.http.tls_buffers import limit_tls_read_buffer
from shipmate.memory import limit_heap_retention
from apiserver.http.server import HTTPServer
from apiserver.kinds.priorityclasses import ensure_system_priority_classes
from apiserver.kinds.storageclasses import ensure_local_path_class
from apiserver.kubeconfig import admin_kubeconfig, write_kubeconfig
from apiserver.leader_election import LeaderElector
from apiserver.auth.service_accounts import TokenIssuer
from apiserver.pki_bootstrap import PKIError, bootstrap as bootstrap_pki, load_or_create_service_account_key
from apiserver.podsecurity.labels import parse_default
from apiserver.resource_metrics import ResourceMetrics
from apiserver.storage import open_storage
from apiserver.storage import sqlite_admin
from apiserver.storage.interface import StorageError
from shipmate import event_loop
from shipmate.sd_notify import Notifier
from shipmate.supervisor import run_until_first_ends

log = logging.getLogger("apiserver")

# The cyclic garbage collector's first-generation threshold (CPython's default is 700 allocations). Every
# request leaves a few short-lived cycles (coroutines, futures, aiohttp request objects), so at the default
# a collection ran every ~3 creates and, with older generations, took ~8% of the server's CPU per create.
# Collecting every 10,000 allocations instead holds at most a few MB more garbage.
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collection() -> None:
    """Called once the server is up: what startup built (schemas, policy, caches, the TLS context) lives as
    long as the process, so it moves out of the collector's sight (gc.freeze) instead of being traversed
    by every full collection; young collections run less often (GC_YOUNG_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    limit_heap_retention()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def serve(config: ServerConfig) -> None:
    storage = open_storage(config.datastore_endpoint, config.database_path, config.watch_history_size,
                           config.datastore_cafile, config.datastore_certfile, config.datastore_keyfile)
    data_dir_lock = None if config.datastore_endpoint else sqlite_admin.DataDirLock(config.database_path)
    if data_dir_lock:
        data_dir_lock.acquire()
    await storage.start()
    api = API(storage, config.cluster_cidr, config.node_cidr_mask_size,
              service_cluster_ip_range=config.service_cluster_ip_range,
              service_node_port_range=config.service_node_port_range,
              allow_service_external_ips=config.allow_service_external_ips)
    api.default_tolerations.seconds = int(config.pod_eviction_timeout)
    api.pod_security.default = parse_default(config.pod_security_default)
    api.pod_security.exempt_namespaces = frozenset(config.pod_security_exempt_namespaces)
    await api.start()
    await bootstrap_policy.reconcile(api)  # default ClusterRoles/ClusterRoleBindings (RBAC)
    await ensure_system_priority_classes(api.registry("scheduling.k8s.io", "priorityclasses"))
    await ensure_local_path_class(api.registry("storage.k8s.io", "storageclasses"))
    api.pki = await bootstrap_pki(storage, config.data_dir, config.advertise_address,
                                  config.service_cluster_ip_range, config.tls_sans)
    api.token_issuer = TokenIssuer(await load_or_create_service_account_key(storage), config.service_account_issuers,
                                   config.api_audiences, config.service_account_jwks_uri
                                   or f"https://{_host(config.advertise_address)}:{config.port}/openid/v1/jwks")
    api.resource_metrics = ResourceMetrics(api, resolution=config.metric_resolution)  # metrics.k8s.io
    api.service_account.enabled = True  # ServiceAccount admission (the serviceaccount controller runs too)
    kubernetes = kubernetes_service.KubernetesService(api, config.advertise_address, config.port)
    await kubernetes.reconcile()
    local_host = "127.0.0.1" if config.bind_address in ("0.0.0.0", "::") else config.bind_address
    http = HTTPServer(api, f"{local_host}:{config.port}", token_auth_file=config.token_auth_file,
                      inflight=InflightLimiter(config.max_requests_inflight, config.max_mutating_requests_inflight))
    log_client_errors_at_debug()
    limit_tls_read_buffer()
    runner = web.AppRunner(http.app, handler_cancellation=True, access_log=None, shutdown_timeout=5,
                           keepalive_timeout=HEADER_READ_TIMEOUT)
    await runner.setup()
    site = BoundedTCPSite(runner, config.bind_address, config.port, ssl_context=api.pki.server_ssl_context(),
                          reuse_address=True, max_open_connections=config.max_open_connections)
    await site.start()
    admin_cert, admin_key = await asyncio.to_thread(api.pki.admin_credentials)
    write_kubeconfig(config.admin_kubeconfig, admin_kubeconfig(f"https://{local_host}:{config.port}",
                                                               api.pki.ca_cert_pem, admin_cert, admin_key))
    tune_garbage_collection()
    log.info("serving address=%s:%d data_dir=%s kubeconfig=%s", config.bind_address, config.port,
             config.data_dir, config.admin_kubeconfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    notifier = Notifier.from_environment()
    notifier.ready(f"serving on {config.bind_address}:{config.port}")
    # On etcd several servers share the data: the scheduler and controllers run only on the one holding
    # the kube-controller-manager Lease. On SQLite the data-dir lock already makes this server the only one.
    control_plane = LeaderElector(api, lambda: run_term(api, config)).run() if config.datastore_endpoint \
        else run_term(api, config)
    tasks = [asyncio.create_task(notifier.run_watchdog(), name="systemd-watchdog"),
             asyncio.create_task(control_plane, name="control-plane"),
             asyncio.create_task(kubernetes.run(), name="kubernetes-service"),
             asyncio.create_task(api.custom_resources.run(), name="custom-resources")]
    if config.datastore_endpoint:  # other servers write Services too: follow them for the allocator's view
        tasks.append(asyncio.create_task(api.follow_service_allocations(), name="service-allocations"))
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        for name, error in await run_until_first_ends([*tasks, stopper]):
            if error:
                log.error("root task died task=%s error=%r", name, error)
    finally:
        http.close_watches()
        await runner.cleanup()
        await storage.close()
        if data_dir_lock:
            data_dir_lock.release()
        log.info("stopped")


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


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
        event_loop.run(serve(config))
    except KeyboardInterrupt:
        pass
    except (sqlite_admin.StoreAdminError, StorageError, PKIError) as exc:  # + an unusable cluster CA
        log.error("%s", exc)
        return 1
    return 0
