"""Resource usage of the node and its containers from cgroups (kubelet's cAdvisor role): the node server's
/stats/summary and /metrics/resource."""
from agent.stats.provider import Snapshot, StatsProvider

__all__ = ["Snapshot", "StatsProvider"]
