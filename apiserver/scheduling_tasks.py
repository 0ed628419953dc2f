"""The scheduler, the node lifecycle controller and the quota controller, on the server's shared informers
(one watch and cache per resource for every control loop, as kube-controller-manager's informer factory)."""
from __future__ import annotations

import asyncio

from apiserver.api import API
from apiserver.informer import SharedInformers
from apiserver.controllers.node_lifecycle import LifecycleConfig, NodeLifecycleController
from apiserver.controllers.resourcequota import QuotaController
from apiserver.scheduler.scheduler import Scheduler


def scheduling_tasks(api: API, informers: SharedInformers, lifecycle: LifecycleConfig) -> list[asyncio.Task]:
    """The caller runs `informers` once every control loop has registered its handlers."""
    scheduler = Scheduler(api, informers)
    node_lifecycle = NodeLifecycleController(api, informers, lifecycle)
    quotas = QuotaController(api, informers)
    return [asyncio.create_task(scheduler.run(), name="scheduler"),
            asyncio.create_task(node_lifecycle.run(), name="node-lifecycle-controller"),
            asyncio.create_task(quotas.run(), name="resourcequota-controller")]
