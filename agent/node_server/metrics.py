"""The node server's /metrics: process RSS/CPU, kubelet's pod worker duration histogram, the PLEG relist
duration, the pod workers' queue depth and the open port-forward connections and streams."""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# kubelet's buckets for kubelet_pod_worker_duration_seconds (exponential from 5 ms).
POD_WORKER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class NodeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.pod_worker_duration = Histogram(
            "kubelet_pod_worker_duration_seconds",
            "Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync",
            ["operation"], buckets=POD_WORKER_BUCKETS, registry=self.registry)
        self.relist_duration = Histogram(
            "kubelet_pleg_relist_duration_seconds", "Duration in seconds for relisting pods in PLEG.",
            buckets=POD_WORKER_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge(
            "kubelet_pod_worker_queue_depth", "Number of pods with an update waiting for their pod worker.",
            registry=self.registry)

        self.portforward_sessions = Gauge(
            "shipmate_node_portforward_sessions", "Port-forward connections the node server is serving.",
            registry=self.registry)
        self.portforward_streams = Gauge(
            "shipmate_node_portforward_streams",
            "Open port-forward client streams (SPDY) or forwarded ports (WebSocket) across connections.",
            registry=self.registry)

    def track_port_forward(self, sessions: Callable[[], int], streams: Callable[[], int]) -> None:
        """Read at scrape time, from the scrape's thread (plain int reads)."""
        self.portforward_sessions.set_function(sessions)
        self.portforward_streams.set_function(streams)

    def observe_pod_sync(self, seconds: float, operation: str = "sync") -> None:
        self.pod_worker_duration.labels(operation=operation).observe(seconds)

    def observe_relist(self, seconds: float) -> None:
        self.relist_duration.observe(seconds)

    def track_queue_depth(self, depth: Callable[[], int]) -> None:
        """Read at scrape time, from the scrape's thread: `depth` must be safe to call from there."""
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
