"""The API server's /metrics (Prometheus text format), with upstream kube-apiserver's metric names.

- `apiserver_request_total{verb,dry_run,group,version,resource,subresource,scope,component,code}` and
  `apiserver_request_duration_seconds{verb,dry_run,group,version,resource,subresource,scope,component}`
  (upstream's labels and buckets), recorded by a middleware that sees every response;
- `apiserver_longrunning_requests{verb,group,version,resource,subresource,scope,component}`: open WATCH
  and CONNECT requests;
- `apiserver_storage_objects{resource}`: stored objects per resource, counted at scrape time (at most
  every `STORAGE_COUNT_INTERVAL` seconds, as upstream refreshes it periodically);
- process figures (`process_resident_memory_bytes`, `process_cpu_seconds_total`, ...);
- the control loops' figures from `CONTROL_LOOPS` (`workqueue_*`, scheduler attempts: apiserver/
  control_loop_metrics.py), a process-wide registry the controllers and the scheduler record into.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from apiserver.control_loop_metrics import CONTROL_LOOPS, ControlLoopMetrics
from apiserver.requestinfo import RequestInfo, parse_resource_path

if TYPE_CHECKING:
    from apiserver.api import API

COMPONENT = "apiserver"
STORAGE_COUNT_INTERVAL = 10.0
# Upstream's buckets for apiserver_request_duration_seconds.
REQUEST_DURATION_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15,
                            20, 30, 45, 60)
# client-go workqueue and kube-scheduler buckets (exponential from 1 µs, resp. 1 ms).
_CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})
# Upstream's cleanVerb: any other method is counted as "other", so clients cannot mint label values.
_VERBS = frozenset({"APPLY", "CONNECT", "CREATE", "DELETE", "DELETECOLLECTION", "GET", "HEAD", "LIST", "OPTIONS",
                    "PATCH", "POST", "PROXY", "PUT", "UPDATE", "WATCH", "WATCHLIST"})
OTHER_VERB = "other"
# A resource path naming no served resource (group, version, resource, subresource) is counted under this
# one value for each of those labels: the series stay bounded whatever URLs clients send.
UNKNOWN = "unknown"
_REQUEST_LABELS = ("verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component")


@dataclass(frozen=True)
class RequestLabels:
    verb: str
    dry_run: str
    group: str
    version: str
    resource: str
    subresource: str
    scope: str
    component: str = COMPONENT

    @property
    def long_running(self) -> bool:
        return self.verb in ("WATCH", "CONNECT")

    def values(self) -> tuple[str, ...]:
        return (self.verb, self.dry_run, self.group, self.version, self.resource, self.subresource, self.scope,
                self.component)


def clean_verb(method: str) -> str:
    method = method.upper()
    return method if method in _VERBS else OTHER_VERB


def request_labels(method: str, path: str, query: Mapping[str, str], content_type: str = "",
                   served: Callable[[RequestInfo], bool] = lambda info: True) -> RequestLabels:
    """Upstream's labels for one request (pure): verbs GET/LIST/WATCH/POST/PUT/PATCH/APPLY/DELETE/
    DELETECOLLECTION/CONNECT, scope resource/namespace/cluster; non-resource paths get the method only.
    Only resources `served` are named; any other resource path is labelled `unknown`."""
    dry_run = "All" if query.get("dryRun") else ""
    info = parse_resource_path(path)
    if info is None:
        return RequestLabels(clean_verb(method), dry_run, "", "", "", "", "")
    if not served(info):
        info = RequestInfo(UNKNOWN, UNKNOWN, UNKNOWN, info.namespace, info.name,
                           UNKNOWN if info.subresource else "")
    method = clean_verb(method)
    if info.subresource in _CONNECT_SUBRESOURCES:
        verb = "CONNECT"
    elif method == "GET" and query.get("watch") in ("1", "true", "True"):
        verb = "WATCH"
    elif method == "GET":
        verb = "GET" if info.name else "LIST"
    elif method == "DELETE" and not info.name:
        verb = "DELETECOLLECTION"
    elif method == "PATCH" and content_type.startswith("application/apply-patch"):
        verb = "APPLY"
    else:
        verb = method
    scope = "resource" if info.name else "namespace" if info.namespace else "cluster"
    return RequestLabels(verb, dry_run, info.group, info.version, info.resource, info.subresource, scope)


class ServerMetrics:
    """Request, storage and process figures of one HTTP server; `install(app)` adds /metrics."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, api: API, control_loops: ControlLoopMetrics = CONTROL_LOOPS):
        self.api = api
        self.control_loops = control_loops
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter("apiserver_request", "Counter of apiserver requests broken out for each verb, "
                                "dry run value, group, version, resource, scope, component, and HTTP response code.",
                                [*_REQUEST_LABELS, "code"], registry=self.registry)
        self.durations = Histogram("apiserver_request_duration_seconds", "Response latency distribution in seconds "
                                   "for each verb, dry run value, group, version, resource, subresource, scope and "
                                   "component.", _REQUEST_LABELS, buckets=REQUEST_DURATION_BUCKETS,
                                   registry=self.registry)
        self.long_running = Gauge("apiserver_longrunning_requests", "Gauge of all active long-running apiserver "
                                  "requests broken out by verb, group, version, resource, scope and component.",
                                  [label for label in _REQUEST_LABELS if label != "dry_run"], registry=self.registry)
        self.storage_objects = Gauge("apiserver_storage_objects", "Number of stored objects at the time of last "
                                     "check split by kind.", ["resource"], registry=self.registry)
        self._counted_at = -STORAGE_COUNT_INTERVAL
        self._count_lock = asyncio.Lock()
        # Request label values → (duration histogram, counters by code): the children prometheus_client holds
        # anyway, without its per-call label checks and lock.
        self._request_children: dict[tuple[str, ...], tuple[Histogram, dict[str, Counter]]] = {}

    def install(self, app: web.Application) -> None:
        app.middlewares.insert(0, self._middleware)  # outermost: sees the final status of every request
        app.router.add_get("/metrics", self.handle)

    def served(self, info: RequestInfo) -> bool:
        """Whether the request names a resource (and subresource) this server serves."""
        registry = self.api.registries.get((info.group, info.resource))
        if registry is None:
            return False
        resource = getattr(registry, "info", None)
        if resource is None:  # a registry without its description (tests): the name is enough
            return True
        return info.version == resource.version and (
            not info.subresource or info.subresource in resource.subresources
            or info.subresource in resource.proxied_subresources)

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        labels = request_labels(request.method, request.path, request.query, request.headers.get("Content-Type", ""),
                                self.served)
        gauge = None
        if labels.long_running:
            gauge = self.long_running.labels(labels.verb, labels.group, labels.version, labels.resource,
                                             labels.subresource, labels.scope, labels.component)
            gauge.inc()
        started = time.perf_counter()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            values = labels.values()
            children = self._request_children.get(values)
            if children is None:
                children = self._request_children[values] = (self.durations.labels(*values), {})
            duration, counters = children
            duration.observe(time.perf_counter() - started)
            code_text = str(code)
            counter = counters.get(code_text)
            if counter is None:
                counter = counters[code_text] = self.requests.labels(*values, code_text)
            counter.inc()
            if gauge is not None:
                gauge.dec()

    async def count_storage_objects(self) -> None:
        """Refresh `apiserver_storage_objects`: one key listing per stored prefix (kinds sharing a prefix,
        like core and events.k8s.io events, are counted once, under the core name)."""
        async with self._count_lock:
            if time.monotonic() - self._counted_at < STORAGE_COUNT_INTERVAL:
                return
            by_prefix: dict[str, str] = {}
            for (group, plural), registry in sorted(self.api.registries.items()):
                by_prefix.setdefault(registry.prefix(), f"{plural}.{group}" if group else plural)
            for prefix, resource in by_prefix.items():
                items, _ = await self.api.storage.list(prefix)
                self.storage_objects.labels(resource=resource).set(len(items))
            self._counted_at = time.monotonic()

    async def render(self) -> bytes:
        await self.count_storage_objects()
        return generate_latest(self.registry) + generate_latest(self.control_loops.registry)

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.render(), headers={"Content-Type": self.content_type})
