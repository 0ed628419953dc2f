"""The kinds the server serves, each a ResourceInfo + Strategy."""
from __future__ import annotations

from apiserver.kinds.base import Strategy
from apiserver.kinds.events import EventStrategy
from apiserver.kinds.leases import LeaseStrategy
from apiserver.kinds.namespaces import NamespaceStrategy
from apiserver.kinds.nodes import NodeStrategy
from apiserver.kinds.pods import PodStrategy


def all_strategies() -> list[Strategy]:
    return [NamespaceStrategy(), NodeStrategy(), PodStrategy(), EventStrategy(), LeaseStrategy()]
