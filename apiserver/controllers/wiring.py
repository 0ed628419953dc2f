"""The workload controllers and the garbage collector as root tasks of the server."""
from __future__ import annotations

import asyncio

from apiserver.api import API
from apiserver.controllers.deployment import DeploymentController
from apiserver.controllers.garbage_collector import GarbageCollector
from apiserver.controllers.replicaset import ReplicaSetController
from apiserver.informer import SharedInformers


def workload_tasks(api: API, informers: SharedInformers) -> list[asyncio.Task]:
    """The four controllers on the server's shared informers (pods, replicasets, … every kind for the garbage
    collector), which the caller runs once every control loop has registered."""
    controllers = {"replicaset-controller": ReplicaSetController.for_replica_sets(api, informers),
                   "replication-controller": ReplicaSetController.for_replication_controllers(api, informers),
                   "deployment-controller": DeploymentController(api, informers),
                   "garbage-collector": GarbageCollector(api, informers)}
    return [asyncio.create_task(c.run(), name=name) for name, c in controllers.items()]
