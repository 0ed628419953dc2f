"""One leadership term of the control plane: the scheduler and every controller on fresh shared informers.

Runs only on the server holding the kube-controller-manager Lease (apiserver/leader_election.py); a new
term starts from new informers (a fresh list + watch), so nothing is carried over from an earlier term.
"""
from __future__ import annotations

import asyncio
import logging

from apiserver.api import API
from apiserver.auth.aggregation import aggregation_tasks
from apiserver.certificates.tasks import csr_tasks
from apiserver.config import ServerConfig
from apiserver.controllers.wiring import workload_tasks
from apiserver.endpoint_tasks import endpoint_tasks
from apiserver.event_ttl import run_event_ttl
from apiserver.informer import SharedInformers
from apiserver.namespace_controller import NamespaceController
from apiserver.node_lifecycle import LifecycleConfig
from apiserver.scheduling_tasks import scheduling_tasks
from shipmate.supervisor import run_until_first_ends

log = logging.getLogger(__name__)


def control_loop_tasks(api: API, config: ServerConfig) -> list[asyncio.Task]:
    informers = SharedInformers()  # one watch and one cache per resource for every control loop below
    lifecycle = LifecycleConfig(config.node_monitor_period, config.node_monitor_grace_period,
                                config.pod_eviction_timeout)
    loops = [*scheduling_tasks(api, informers, lifecycle), *endpoint_tasks(api, informers),
             *workload_tasks(api, informers), *csr_tasks(api, informers, int(config.cluster_signing_duration)),
             *aggregation_tasks(api, informers)]
    return [asyncio.create_task(informers.run(), name="shared-informers"),  # after every loop registered
            *loops,
            asyncio.create_task(NamespaceController(api).run(), name="namespace-controller"),
            asyncio.create_task(run_event_ttl(api), name="event-ttl")]


async def run_term(api: API, config: ServerConfig) -> None:
    """Run the control loops until cancelled (leadership lost or shutdown) or one of them dies."""
    tasks = control_loop_tasks(api, config)
    log.info("control loops started tasks=%d", len(tasks))
    try:
        for name, error in await run_until_first_ends(tasks):
            if error:
                raise RuntimeError(f"control loop {name} died: {error!r}")
    finally:
        log.info("control loops stopped")
