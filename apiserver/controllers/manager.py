"""The control loops the server runs (kube-controller-manager and kube-scheduler, in one process): ONE table,
`CONTROLLERS` (name → factory, as kube-controller-manager's NewControllerDescriptors), and one place that
starts them, `run_term`: one leadership term on fresh shared informers.

Runs only on the server holding the kube-controller-manager Lease (apiserver/leader_election.py); a new
term starts from new informers (a fresh list + watch), so nothing is carried over from an earlier term.
The `kubernetes` Service reconciler (kubernetes_service.py) is kube-apiserver's own and runs on every server
(apiserver/main.py starts it).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine, Iterable

from shipmate.supervisor import run_until_first_ends
from apiserver.api import API
from apiserver.certificates.policy import DEFAULT_SIGNING_SECONDS
from apiserver.config import ServerConfig
from apiserver.controllers.apiservices import APIServiceController
from apiserver.controllers.clusterrole_aggregation import aggregation_controller
from apiserver.controllers.csr_approver import CSRApprover
from apiserver.controllers.cronjob import CronJobController
from apiserver.controllers.crd import CRDController
from apiserver.controllers.csr_signer import CSRSigner
from apiserver.controllers.daemonset import DaemonSetController
from apiserver.controllers.deployment import DeploymentController
from apiserver.controllers.disruption import DisruptionController
from apiserver.controllers.endpoints import EndpointsController
from apiserver.controllers.endpointslice import EndpointSliceController
from apiserver.controllers.endpointslice_mirroring import EndpointSliceMirroringController
from apiserver.controllers.event_ttl import run_event_ttl
from apiserver.controllers.garbage_collector import GarbageCollector
from apiserver.controllers.horizontal_pod_autoscaler import HorizontalPodAutoscalerController
from apiserver.controllers.job import JobController
from apiserver.controllers.local_path import LocalPathProvisioner
from apiserver.controllers.namespace import NamespaceController
from apiserver.controllers.node_lifecycle import LifecycleConfig, NodeLifecycleController
from apiserver.controllers.persistentvolume import PersistentVolumeController
from apiserver.controllers.replicaset import ReplicaSetController
from apiserver.controllers.resourcequota import QuotaController
from apiserver.controllers.service_lb import ServiceLBController
from apiserver.controllers.statefulset import StatefulSetController
from apiserver.controllers.serviceaccounts import (RootCACertPublisher, ServiceAccountsController,
                                                   ServiceAccountTokensController)
from apiserver.controllers.token_cleaner import run_token_cleaner
from apiserver.controllers.ttl_after_finished import TTLAfterFinishedController
from apiserver.controllers.volume_protection import PVCProtectionController, PVProtectionController
from apiserver.informer import SharedInformers
from apiserver.scheduler.scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass
class ControllerContext:
    """What a factory builds its loop from. Loops register their handlers on `informers` when built; the
    caller runs the informers once every loop is built (one watch and cache per resource for all)."""
    api: API
    informers: SharedInformers = field(default_factory=SharedInformers)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    signing_seconds: int = DEFAULT_SIGNING_SECONDS
    hpa_sync_period: float = 15.0
    hpa_downscale_stabilization: float = 300.0


Factory = Callable[[ControllerContext], Coroutine[Any, Any, None]]

# name (the task's name, in logs) → factory of the loop's coroutine. Adding a controller is one line here.
CONTROLLERS: dict[str, Factory] = {
    "scheduler": lambda c: Scheduler(c.api, c.informers).run(),
    "node-lifecycle-controller": lambda c: NodeLifecycleController(c.api, c.informers, c.lifecycle).run(),
    "resourcequota-controller": lambda c: QuotaController(c.api, c.informers).run(),
    "endpoints-controller": lambda c: EndpointsController(c.api, c.informers).run(),
    "endpointslice-controller": lambda c: EndpointSliceController(c.api, c.informers).run(),
    "endpointslice-mirroring-controller": lambda c: EndpointSliceMirroringController(c.api, c.informers).run(),
    "service-lb-controller": lambda c: ServiceLBController(c.api, c.informers).run(),
    "replicaset-controller": lambda c: ReplicaSetController.for_replica_sets(c.api, c.informers).run(),
    "replication-controller": lambda c: ReplicaSetController.for_replication_controllers(c.api, c.informers).run(),
    "deployment-controller": lambda c: DeploymentController(c.api, c.informers).run(),
    "job-controller": lambda c: JobController(c.api, c.informers).run(),
    "cronjob-controller": lambda c: CronJobController(c.api, c.informers).run(),
    "ttl-after-finished-controller": lambda c: TTLAfterFinishedController(c.api, c.informers).run(),
    "daemonset-controller": lambda c: DaemonSetController(c.api, c.informers).run(),
    "statefulset-controller": lambda c: StatefulSetController(c.api, c.informers).run(),
    "garbage-collector": lambda c: GarbageCollector(c.api, c.informers).run(),
    "disruption-controller": lambda c: DisruptionController(c.api, c.informers).run(),
    "horizontal-pod-autoscaler-controller": lambda c: HorizontalPodAutoscalerController(
        c.api, c.informers, c.hpa_sync_period, c.hpa_downscale_stabilization).run(),
    "csrapproving": lambda c: CSRApprover(c.api, c.informers).run(),
    "csrsigning": lambda c: CSRSigner(c.api, c.informers, c.signing_seconds).run(),
    "tokencleaner": lambda c: run_token_cleaner(c.api),
    "clusterrole-aggregation": lambda c: aggregation_controller(c.api, c.informers),
    "namespace-controller": lambda c: NamespaceController(c.api).run(),
    "crd-controller": lambda c: CRDController(c.api, c.informers).run(),
    "apiservice-controller": lambda c: APIServiceController(c.api).run(),
    "event-ttl": lambda c: run_event_ttl(c.api),
    "serviceaccount-controller": lambda c: ServiceAccountsController(c.api, c.informers).run(),
    "root-ca-certificate-publisher-controller": lambda c: RootCACertPublisher(c.api, c.informers).run(),
    "serviceaccount-token-controller": lambda c: ServiceAccountTokensController(c.api, c.informers).run(),
    "persistentvolume-binder-controller": lambda c: PersistentVolumeController(c.api, c.informers).run(),
    "persistentvolumeclaim-protection-controller": lambda c: PVCProtectionController(c.api, c.informers).run(),
    "persistentvolume-protection-controller": lambda c: PVProtectionController(c.api, c.informers).run(),
    "local-path-provisioner": lambda c: LocalPathProvisioner(c.api, c.informers).run(),
}


def start_controllers(context: ControllerContext, names: Iterable[str] | None = None,
                      run_informers: bool = True) -> list[asyncio.Task]:
    """The named loops (all of them by default) as tasks, then (unless the caller runs them itself) the
    shared informers they registered on."""
    tasks = [asyncio.create_task(CONTROLLERS[name](context), name=name)
             for name in (CONTROLLERS if names is None else names)]
    if run_informers:
        tasks.append(asyncio.create_task(context.informers.run(), name="shared-informers"))
    return tasks


def context_from(api: API, config: ServerConfig) -> ControllerContext:
    return ControllerContext(api, SharedInformers(),
                             LifecycleConfig(config.node_monitor_period, config.node_monitor_grace_period,
                                             config.pod_eviction_timeout),
                             int(config.cluster_signing_duration), config.hpa_sync_period,
                             config.hpa_downscale_stabilization)


async def run_term(api: API, config: ServerConfig) -> None:
    """Run the control loops until cancelled (leadership lost or shutdown) or one of them dies."""
    tasks = start_controllers(context_from(api, config))
    log.info("control loops started tasks=%d", len(tasks))
    try:
        for name, error in await run_until_first_ends(tasks):
            if error:
                raise RuntimeError(f"control loop {name} died: {error!r}")
    finally:
        log.info("control loops stopped")
