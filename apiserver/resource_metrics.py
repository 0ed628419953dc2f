"""Resource metrics (metrics.k8s.io/v1beta1) served by the API server itself, metrics-server's job in process:
every `resolution` seconds the server scrapes each node's `/metrics/resource` (the node server on :10250, with
its apiserver-kubelet-client certificate, as pods/log is proxied), keeps the last two scrapes per node and
answers NodeMetrics/PodMetrics from them: CPU = the rate of the cumulative CPU counter between the two scrapes
(window = the time between their samples), memory = the newest working set.

Bounds and staleness:
- memory: two scrapes per node (each one point per container of the node), nodes that are gone are dropped at
  the next cycle, so it is O(nodes × containers);
- a node's figures are served while its newest successful scrape is younger than `3 × resolution`; after that
  (agent down, node unreachable) the node and its pods have no metrics, as metrics-server drops what it could
  not scrape; a container needs samples in both scrapes with the same start time (a restarted container waits
  for its next scrape), except a container started 10 s to one resolution before its sample, whose start counts
  as its first point (metrics-server does the same, so a new pod has figures after one scrape);
- scraping runs only while metrics are asked for: the first request starts it, and it stops after
  `idle_stop` seconds without a request (the HPA controller asks every sync), so a server nobody asks costs
  nothing. The first answer after a start therefore has no metrics yet (kubectl top: "metrics not available
  yet"), the next scrape (≤ resolution later) gives them.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from apiserver.node_tls import node_address
from shipmate.quantity import QuantityFormat, format_quantity
from shipmate.timeutil import rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_RESOLUTION = 15.0            # metrics-server's --metric-resolution
FRESH_CONTAINER_MIN_SECONDS = 10     # metrics-server: a younger container's rate would be too inaccurate
SCRAPE_TIMEOUT = 10.0
IDLE_STOP = 600.0
MAX_CONCURRENT_SCRAPES = 16
MAX_SCRAPE_BYTES = 16 * 1024 * 1024  # a node's /metrics/resource answer beyond this is refused


class ScrapeError(Exception):
    pass


@dataclass(frozen=True)
class Point:
    timestamp_ns: int
    cpu_ns: int          # cumulative CPU time
    memory: int          # working set, bytes
    start_ns: int = 0    # containers: start time (a different one is another container)


@dataclass
class NodeScrape:
    at: float                                                   # monotonic time of the scrape
    node: Point | None = None
    containers: dict[tuple[str, str, str], Point] = field(default_factory=dict)   # (namespace, pod, container)


def parse_resource_metrics(text: str, at: float) -> NodeScrape:
    """A node server's /metrics/resource → one scrape (samples without a timestamp are dated now)."""
    scrape = NodeScrape(at)
    now_ns = time.time_ns()
    cpu: dict[tuple[str, str, str], tuple[int, int]] = {}
    memory: dict[tuple[str, str, str], int] = {}
    starts: dict[tuple[str, str, str], int] = {}
    node_cpu: tuple[int, int] | None = None
    node_memory: int | None = None
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as error:
        raise ScrapeError(f"unparseable metrics: {error}") from None
    for family in families:
        for sample in family.samples:
            stamp = int(sample.timestamp * 1e9) if sample.timestamp is not None else now_ns
            labels = sample.labels
            key = (labels.get("namespace", ""), labels.get("pod", ""), labels.get("container", ""))
            if sample.name == "container_cpu_usage_seconds_total":
                cpu[key] = (round(sample.value * 1e9), stamp)
            elif sample.name == "container_memory_working_set_bytes":
                memory[key] = int(sample.value)
            elif sample.name == "container_start_time_seconds":
                starts[key] = round(sample.value * 1e9)
            elif sample.name == "node_cpu_usage_seconds_total":
                node_cpu = (round(sample.value * 1e9), stamp)
            elif sample.name == "node_memory_working_set_bytes":
                node_memory = int(sample.value)
    for key, (cpu_ns, stamp) in cpu.items():
        if key in memory:
            scrape.containers[key] = Point(stamp, cpu_ns, memory[key], starts.get(key, 0))
    if node_cpu is not None and node_memory is not None:
        scrape.node = Point(node_cpu[1], node_cpu[0], node_memory)
    return scrape


@dataclass(frozen=True)
class Usage:
    timestamp_ns: int
    window_ns: int
    cpu_nano: int
    memory: int


def usage_between(previous: Point, current: Point) -> Usage | None:
    """metrics-server's rate: CPU used between two cumulative points over the time between them; None when
    they cannot give one (same or older sample, another container, a counter that went back)."""
    window = current.timestamp_ns - previous.timestamp_ns
    used = current.cpu_ns - previous.cpu_ns
    if window <= 0 or used < 0 or previous.start_ns != current.start_ns:
        return None
    return Usage(current.timestamp_ns, window, used * 1_000_000_000 // window, current.memory)


def format_window(ns: int) -> str:
    """metav1.Duration as Go prints it: 15.002s, 1m0.5s, 0s."""
    if ns <= 0:
        return "0s"
    minutes, rest = divmod(ns, 60 * 1_000_000_000)
    hours, minutes = divmod(minutes, 60)
    seconds = f"{rest // 1_000_000_000}"
    fraction = rest % 1_000_000_000
    if fraction:
        seconds += "." + f"{fraction:09d}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def cpu_quantity(nano: int) -> str:
    return format_quantity(Fraction(nano, 1_000_000_000))


def memory_quantity(size: int) -> str:
    return format_quantity(Fraction(size), QuantityFormat.BINARY_SI)


def usage_fields(usage: Usage) -> Obj:
    return {"timestamp": rfc3339_ns(usage.timestamp_ns), "window": format_window(usage.window_ns)}


def rfc3339_ns(ns: int) -> str:
    from datetime import datetime, timezone
    return rfc3339(datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc))


class ResourceMetrics:
    """The scrapes of every node and the figures derived from them (see the module's docstring)."""

    def __init__(self, api: Any, resolution: float = DEFAULT_RESOLUTION, timeout: float = SCRAPE_TIMEOUT,
                 idle_stop: float = IDLE_STOP, clock: Callable[[], float] = time.monotonic) -> None:
        self.api, self.resolution, self.timeout, self.idle_stop, self.clock = api, resolution, timeout, idle_stop, clock
        self._scrapes: dict[str, tuple[NodeScrape | None, NodeScrape]] = {}
        self._last_wanted = 0.0
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tls: dict[str, ssl.SSLContext] = {}

    @property
    def stale_after(self) -> float:
        return 3 * self.resolution

    # ------------------------------------------------------------------ scraping
    def wanted(self) -> None:
        """Someone asks for metrics: scraping runs (starting now when it was idle)."""
        self._last_wanted = self.clock()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="resource-metrics")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        try:
            while self.clock() - self._last_wanted < self.idle_stop:
                started = self.clock()
                try:
                    await self.scrape_all()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the next cycle tries again
                    log.exception("resource metrics cycle failed")
                await asyncio.sleep(max(0.0, self.resolution - (self.clock() - started)))
            log.info("resource metrics idle for %.0fs: scraping stopped", self.idle_stop)
            self._scrapes.clear()
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None

    def _node_tls(self, name: str) -> ssl.SSLContext | bool:
        pki = getattr(self.api, "pki", None)
        if pki is None:
            return False
        if name not in self._tls:
            self._tls[name] = pki.kubelet_client_ssl_context(name)
        return self._tls[name]

    async def scrape_all(self) -> None:
        nodes, _ = await self.api.nodes.list()
        names = {n["metadata"]["name"] for n in nodes}
        for gone in set(self._scrapes) - names:
            del self._scrapes[gone]
        for gone in set(self._tls) - names:
            del self._tls[gone]
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        limit = asyncio.Semaphore(MAX_CONCURRENT_SCRAPES)

        async def one(node: Obj) -> None:
            async with limit:
                name = node["metadata"]["name"]
                try:
                    scrape = await self.scrape_node(node)
                except (ScrapeError, aiohttp.ClientError, asyncio.TimeoutError, OSError, ssl.SSLError) as error:
                    log.info("resource metrics scrape failed node=%s error=%s", name, error)
                    return
                self.record(name, scrape)
        await asyncio.gather(*(one(n) for n in nodes))

    async def scrape_node(self, node: Obj) -> NodeScrape:
        host, port = node_address(node)
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        assert self._session is not None
        async with self._session.get(f"https://{netloc}/metrics/resource",
                                     ssl=self._node_tls(node["metadata"]["name"])) as answer:
            if answer.status != 200:
                raise ScrapeError(f"{answer.status} {(await answer.text())[:200].strip()}")
            body = await answer.content.read(MAX_SCRAPE_BYTES + 1)
        if len(body) > MAX_SCRAPE_BYTES:
            raise ScrapeError(f"answer larger than {MAX_SCRAPE_BYTES} bytes")
        return parse_resource_metrics(body.decode("utf-8", "replace"), self.clock())

    def record(self, node: str, scrape: NodeScrape) -> None:
        """Keep the newest two scrapes of a node (a scrape with nothing newer than the last one replaces it)."""
        previous = self._scrapes.get(node)
        if previous is None:
            self._scrapes[node] = (None, scrape)
            return
        self._scrapes[node] = (previous[1], scrape)

    # ------------------------------------------------------------------ figures
    def _fresh(self, node: str) -> tuple[NodeScrape, NodeScrape] | None:
        pair = self._scrapes.get(node)
        if pair is None or pair[0] is None or self.clock() - pair[1].at > self.stale_after:
            return None
        return pair[0], pair[1]

    def node_usage(self, node: str) -> Usage | None:
        pair = self._fresh(node)
        if pair is None or pair[0].node is None or pair[1].node is None:
            return None
        return usage_between(pair[0].node, pair[1].node)

    def pod_usage(self, node: str, namespace: str, pod: str) -> dict[str, Usage]:
        """Container name → usage, for the containers of a pod with figures in both scrapes, or fresh ones (see
        `previous_point`)."""
        pair = self._scrapes.get(node)
        if pair is None or self.clock() - pair[1].at > self.stale_after:
            return {}
        before, after = pair
        result = {}
        for (ns, name, container), point in after.containers.items():
            if ns != namespace or name != pod:
                continue
            previous = self.previous_point(point, before.containers.get((ns, name, container)) if before else None)
            usage = usage_between(previous, point) if previous is not None else None
            if usage is not None:
                result[container] = usage
        return result

    def previous_point(self, point: Point, scraped: Point | None) -> Point | None:
        """metrics-server's rule for a container started between FRESH_CONTAINER_MIN_SECONDS and one resolution
        before its newest sample: its start is the previous point (no CPU used yet), so a new pod has figures after
        one scrape; otherwise the container's point of the scrape before."""
        age_ns = point.timestamp_ns - point.start_ns
        if point.start_ns and FRESH_CONTAINER_MIN_SECONDS * 1_000_000_000 <= age_ns < self.resolution * 1_000_000_000:
            return Point(point.start_ns, 0, point.memory, point.start_ns)
        return scraped

    def pod_usage_of(self, pod: Obj) -> dict[str, Usage]:
        """The figures of a pod's containers (none for a pod not on a node, or finished)."""
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return {}
        meta = pod["metadata"]
        return self.pod_usage(node, meta.get("namespace", ""), meta["name"])

    def nodes_known(self) -> int:
        return len(self._scrapes)
