"""Figures of the server's control loops (`workqueue_*`, scheduler attempts) in one process-wide registry,
`CONTROL_LOOPS`, that the controllers and the scheduler record into; the HTTP server's /metrics
(http/metrics.py) exposes it with upstream's metric names."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WORK_DURATION_BUCKETS = tuple(1e-6 * 10 ** i for i in range(10))
SCHEDULING_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))


class ControlLoopMetrics:
    """Figures of the server's control loops, in one registry every loop may record into."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds", "How long in seconds processing an item from workqueue takes.",
            ["name"], buckets=WORK_DURATION_BUCKETS, registry=self.registry)
        self.depth = Gauge("workqueue_depth", "Current depth of workqueue", ["name"], registry=self.registry)
        self.retries = Counter("workqueue_retries", "Total number of retries handled by workqueue", ["name"],
                               registry=self.registry)
        self.scheduling_attempt = Histogram(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)", ["result", "profile"],
            buckets=SCHEDULING_BUCKETS, registry=self.registry)

    @contextmanager
    def sync(self, queue_name: str) -> Iterator[None]:
        """`with CONTROL_LOOPS.sync("deployment"): await sync(key)` times one work item."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.work_duration.labels(name=queue_name).observe(time.perf_counter() - started)

    def observe_scheduling(self, seconds: float, result: str = "scheduled") -> None:
        self.scheduling_attempt.labels(result=result, profile="default-scheduler").observe(seconds)


CONTROL_LOOPS = ControlLoopMetrics()
