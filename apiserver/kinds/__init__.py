"""The kinds the server serves, each a ResourceInfo + Strategy."""
from __future__ import annotations

from apiserver.kinds.base import Strategy
from apiserver.kinds.certificates import CSRStrategy
from apiserver.kinds.configmaps import ConfigMapStrategy, SecretStrategy
from apiserver.kinds.endpoints import EndpointSliceStrategy, EndpointsStrategy
from apiserver.kinds.events import EventStrategy
from apiserver.kinds.leases import LeaseStrategy
from apiserver.kinds.namespaces import NamespaceStrategy
from apiserver.kinds.nodes import NodeStrategy
from apiserver.kinds.pods import PodStrategy
from apiserver.kinds.quotas import ResourceQuotaStrategy
from apiserver.kinds.rbac import rbac_strategies
from apiserver.kinds.services import ServiceStrategy
from apiserver.kinds.workloads import workload_strategies
from apiserver.allocation.service_allocation import ServiceAllocator


def all_strategies(allocator: ServiceAllocator | None = None) -> list[Strategy]:
    services = ServiceStrategy(allocator=allocator) if allocator else ServiceStrategy()
    return [NamespaceStrategy(), NodeStrategy(), PodStrategy(), EventStrategy(), LeaseStrategy(),
            ConfigMapStrategy(), SecretStrategy(), services, EndpointsStrategy(), EndpointSliceStrategy(),
            ResourceQuotaStrategy(), *workload_strategies(), *rbac_strategies(), CSRStrategy()]
