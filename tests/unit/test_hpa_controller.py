"""The HPA controller against an in-process API (SQLite): reads the Deployment's scale and its pods, rescales
through `scale`, posts SuccessfulRescale, writes status (currentMetrics, conditions); without figures it says
FailedGetResourceMetric once; scale-down waits for the stabilization window."""
from __future__ import annotations

import asyncio

from apiserver.api import API
from apiserver.controllers.horizontal_pod_autoscaler import HorizontalPodAutoscalerController
from apiserver.informer import SharedInformers
from apiserver.resource_metrics import Usage
from apiserver.storage.sqlite import SQLiteStorage

S = 1_000_000_000


class FakeMetrics:
    def __init__(self) -> None:
        self.cpu_milli: dict[str, int] = {}

    def wanted(self) -> None:
        pass

    def pod_usage_of(self, pod: dict) -> dict[str, Usage]:
        name = pod["metadata"]["name"]
        if name not in self.cpu_milli:
            return {}
        return {"app": Usage(1_700_000_000 * S, 15 * S, self.cpu_milli[name] * 1_000_000, 1 << 20)}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _pod(name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}, "uid": name},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "busybox",
                                                       "resources": {"requests": {"cpu": "100m"}}}]},
            "status": {"phase": "Running", "startTime": "2023-01-01T00:00:00Z",
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": "2023-01-01T00:00:10Z"}]}}


def test_controller_scales_up_and_down_with_status_and_events(tmp_path):
    async def scenario() -> None:
        storage = SQLiteStorage(str(tmp_path / "state.db"))
        await storage.start()
        try:
            api = API(storage)
            await api.start()
            metrics = api.resource_metrics = FakeMetrics()
            deployments = api.registry("apps", "deployments")
            await api.create(deployments, "default", {
                "metadata": {"name": "web"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}})
            hpas = api.registry("autoscaling", "horizontalpodautoscalers")
            await api.create(hpas, "default", {
                "metadata": {"name": "web"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                         "minReplicas": 1, "maxReplicas": 5,
                         "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                             "type": "Utilization", "averageUtilization": 50}}}],
                         "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}})
            clock = Clock()
            controller = HorizontalPodAutoscalerController(api, SharedInformers(), clock=clock)
            controller.pods.cache = {"default/web-1": _pod("web-1")}

            async def sync() -> dict:
                controller.hpas.cache = {"default/web": await hpas.get("default", "web")}
                await controller.sync_key("default/web")
                return await hpas.get("default", "web")

            # no figures yet: ScalingActive False, one warning however many syncs
            hpa = await sync()
            await sync()
            active = {c["type"]: c for c in hpa["status"]["conditions"]}["ScalingActive"]
            assert (active["status"], active["reason"]) == ("False", "FailedGetResourceMetric")
            events, _ = await api.events.list("default")
            assert [e["reason"] for e in events].count("FailedGetResourceMetric") == 1

            metrics.cpu_milli = {"web-1": 200}           # 200 % of the request against a 50 % target
            hpa = await sync()
            assert (await deployments.get("default", "web"))["spec"]["replicas"] == 4
            status = hpa["status"]
            assert (status["currentReplicas"], status["desiredReplicas"]) == (1, 4)
            assert status["currentMetrics"] == [{"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageValue": "200m", "averageUtilization": 200}}}]
            conditions = {c["type"]: c for c in status["conditions"]}
            assert conditions["AbleToScale"]["reason"] == "SucceededRescale"
            assert conditions["ScalingActive"]["reason"] == "ValidMetricFound"
            assert conditions["ScalingActive"]["message"] == ("the HPA was able to successfully calculate a replica "
                                                              "count from cpu resource utilization (percentage of "
                                                              "request)")
            assert conditions["ScalingLimited"]["reason"] == "DesiredWithinRange"
            assert status["lastScaleTime"] and status["observedGeneration"] == 1
            events, _ = await api.events.list("default")
            rescale = [e for e in events if e["reason"] == "SuccessfulRescale"]
            assert rescale[0]["message"] == ("New size: 4; reason: cpu resource utilization (percentage of request) "
                                             "above target")

            controller.pods.cache = {f"default/web-{i}": _pod(f"web-{i}") for i in range(1, 5)}
            metrics.cpu_milli = {f"web-{i}": 5 for i in range(1, 5)}
            clock.now += 15
            hpa = await sync()                           # recent recommendation 4 holds within the 60 s window
            assert (await deployments.get("default", "web"))["spec"]["replicas"] == 4
            assert {c["type"]: c for c in hpa["status"]["conditions"]}["AbleToScale"]["reason"] == \
                "ScaleDownStabilized"
            clock.now += 61
            await sync()
            assert (await deployments.get("default", "web"))["spec"]["replicas"] == 1
            events, _ = await api.events.list("default")
            assert any(e["message"] == "New size: 1; reason: All metrics below target" for e in events)
        finally:
            await storage.close()
    asyncio.run(scenario())
