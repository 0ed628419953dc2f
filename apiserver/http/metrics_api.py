"""metrics.k8s.io/v1beta1 (NodeMetrics, PodMetrics) served by the API server itself, in metrics-server's shapes
(`kubectl top nodes|pods`, the HPA controller): get and list, labelSelector (and metadata.name/namespace field
selectors), authorized by RBAC like any resource (`get`/`list` on `pods.metrics.k8s.io`, `nodes.metrics.k8s.io`).
The figures come from apiserver/resource_metrics.py; a request is what keeps its scraping running.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from apiserver import errors
from apiserver.kinds.base import ResourceInfo
from apiserver.resource_metrics import (ResourceMetrics, Usage, cpu_quantity, memory_quantity, usage_fields)
from shipmate.selectors import FieldSelector, LabelSelector, SelectorError, parse_field_selector, parse_label_selector
from shipmate.timeutil import rfc3339

Obj = dict[str, Any]
GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
BASE = f"/apis/{API_VERSION}"
NODE_METRICS = ResourceInfo(GROUP, VERSION, "NodeMetrics", "nodes", "", False, verbs=("get", "list"))
POD_METRICS = ResourceInfo(GROUP, VERSION, "PodMetrics", "pods", "", True, verbs=("get", "list"))


def _now() -> str:
    return rfc3339(datetime.now(timezone.utc))


def node_metrics_object(node: Obj, usage: Usage) -> Obj:
    meta = node["metadata"]
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": meta["name"], "creationTimestamp": _now(), "labels": meta.get("labels") or {}},
            **usage_fields(usage),
            "usage": {"cpu": cpu_quantity(usage.cpu_nano), "memory": memory_quantity(usage.memory)}}


def pod_metrics_object(pod: Obj, usages: dict[str, Usage]) -> Obj:
    meta = pod["metadata"]
    names = [c.get("name") for key in ("initContainers", "containers") for c in (pod.get("spec") or {}).get(key) or []]
    ordered = [name for name in names if name in usages] + sorted(set(usages) - set(names))
    newest = max(usages.values(), key=lambda u: u.timestamp_ns)
    return {"kind": "PodMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace", ""), "creationTimestamp": _now(),
                         "labels": meta.get("labels") or {}},
            **usage_fields(newest),
            "containers": [{"name": name, "usage": {"cpu": cpu_quantity(usages[name].cpu_nano),
                                                    "memory": memory_quantity(usages[name].memory)}}
                           for name in ordered]}


class MetricsRoutes:
    def __init__(self, api: Any) -> None:
        self.api = api
        if getattr(api, "resource_metrics", None) is None:
            api.resource_metrics = ResourceMetrics(api)

    @property
    def metrics(self) -> ResourceMetrics:
        return self.api.resource_metrics

    def add_routes(self, app: web.Application) -> None:
        """Register before the generic /apis catch-all route."""
        app.router.add_get(f"{BASE}/nodes", self.list_nodes)
        app.router.add_get(f"{BASE}/nodes/{{name}}", self.get_node)
        app.router.add_get(f"{BASE}/pods", self.list_pods)
        app.router.add_get(f"{BASE}/namespaces/{{namespace}}/pods", self.list_pods)
        app.router.add_get(f"{BASE}/namespaces/{{namespace}}/pods/{{name}}", self.get_pod)
        self.api.extra_resources.extend(info for info in (NODE_METRICS, POD_METRICS)
                                        if info not in self.api.extra_resources)
        app.on_cleanup.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        await self.metrics.close()

    @staticmethod
    def _selectors(request: web.Request) -> tuple[LabelSelector, FieldSelector]:
        try:
            return (parse_label_selector(request.query.get("labelSelector")),
                    parse_field_selector(request.query.get("fieldSelector")))
        except SelectorError as exc:
            raise errors.bad_request(f"unable to parse requirement: {exc}") from None

    @staticmethod
    def _list(kind: str, items: list[Obj]) -> web.Response:
        return web.json_response({"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items})

    async def get_node(self, request: web.Request) -> web.Response:
        self.metrics.wanted()
        name = request.match_info["name"]
        node = await self.api.nodes.get("", name)
        usage = self.metrics.node_usage(name)
        if usage is None:
            raise errors.not_found(GROUP, "nodemetrics", name)
        return web.json_response(node_metrics_object(node, usage))

    async def list_nodes(self, request: web.Request) -> web.Response:
        self.metrics.wanted()
        labels, fields = self._selectors(request)
        nodes, _ = await self.api.nodes.list("", labels)
        items = []
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            usage = self.metrics.node_usage(node["metadata"]["name"])
            if usage is not None and fields.matches({"metadata.name": node["metadata"]["name"]}):
                items.append(node_metrics_object(node, usage))
        return self._list("NodeMetricsList", items)

    async def get_pod(self, request: web.Request) -> web.Response:
        self.metrics.wanted()
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        pod = await self.api.pods.get(namespace, name)
        usages = self.metrics.pod_usage_of(pod)
        if not usages:
            raise errors.not_found(GROUP, "podmetrics", f"{namespace}/{name}")
        return web.json_response(pod_metrics_object(pod, usages))

    async def list_pods(self, request: web.Request) -> web.Response:
        self.metrics.wanted()
        labels, fields = self._selectors(request)
        namespace = request.match_info.get("namespace", "")
        pods, _ = await self.api.pods.list(namespace, labels)
        items = []
        for pod in sorted(pods, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
            meta = pod["metadata"]
            if not fields.matches({"metadata.name": meta["name"], "metadata.namespace": meta.get("namespace", "")}):
                continue
            usages = self.metrics.pod_usage_of(pod)
            if usages:
                items.append(pod_metrics_object(pod, usages))
        return self._list("PodMetricsList", items)
