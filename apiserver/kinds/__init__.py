"""The kinds the server serves, each a ResourceInfo + Strategy."""
from __future__ import annotations

from apiserver.kinds.admissionregistration import webhook_configuration_strategies
from apiserver.kinds.apiservices import APIServiceStrategy
from apiserver.kinds.autoscaling import HorizontalPodAutoscalerStrategy
from apiserver.kinds.base import Strategy
from apiserver.kinds.batch import batch_strategies
from apiserver.kinds.apps_sets import apps_set_strategies
from apiserver.kinds.certificates import CSRStrategy
from apiserver.kinds.configmaps import ConfigMapStrategy, SecretStrategy
from apiserver.kinds.csistoragecapacities import CSIStorageCapacityStrategy
from apiserver.kinds.customresourcedefinitions import CustomResourceDefinitionStrategy
from apiserver.kinds.disruptionbudgets import PodDisruptionBudgetStrategy
from apiserver.kinds.endpoints import EndpointSliceStrategy, EndpointsStrategy
from apiserver.kinds.events import EventStrategy
from apiserver.kinds.leases import LeaseStrategy
from apiserver.kinds.limitranges import LimitRangeStrategy
from apiserver.kinds.namespaces import NamespaceStrategy
from apiserver.kinds.networking import networking_strategies
from apiserver.kinds.nodes import NodeStrategy
from apiserver.kinds.persistentvolumes import PersistentVolumeStrategy
from apiserver.kinds.pods import PodStrategy
from apiserver.kinds.priorityclasses import PriorityClassStrategy
from apiserver.kinds.quotas import ResourceQuotaStrategy
from apiserver.kinds.rbac import rbac_strategies
from apiserver.kinds.serviceaccounts import ServiceAccountStrategy
from apiserver.kinds.services import ServiceStrategy
from apiserver.kinds.storageclasses import StorageClassStrategy
from apiserver.kinds.workloads import workload_strategies
from apiserver.allocation.service_allocation import ServiceAllocator


def all_strategies(allocator: ServiceAllocator | None = None) -> list[Strategy]:
    services = ServiceStrategy(allocator=allocator) if allocator else ServiceStrategy()
    return [NamespaceStrategy(), NodeStrategy(), PodStrategy(), EventStrategy(), LeaseStrategy(),
            ConfigMapStrategy(), SecretStrategy(), services, EndpointsStrategy(), EndpointSliceStrategy(),
            ResourceQuotaStrategy(), *workload_strategies(), *rbac_strategies(), CSRStrategy(),
            *batch_strategies(), *apps_set_strategies(),
            *networking_strategies(), LimitRangeStrategy(), PriorityClassStrategy(),
            HorizontalPodAutoscalerStrategy(), PodDisruptionBudgetStrategy(), ServiceAccountStrategy(),
            PersistentVolumeStrategy(), StorageClassStrategy(), CSIStorageCapacityStrategy(),
            CustomResourceDefinitionStrategy(), *webhook_configuration_strategies(), APIServiceStrategy()]
