"""The HorizontalPodAutoscaler controller (kube-controller-manager's podautoscaler, autoscaling/v2): every
--horizontal-pod-autoscaler-sync-period each HPA reads its target's `scale` subresource (any kind serving one),
the pods of the scale's selector and their resource metrics (the server's metrics.k8s.io figures,
apiserver/resource_metrics.py), computes the desired replicas (pure rules: hpa_rules.py), stabilizes and limits
them (the downscale window, or `behavior`), writes the target's scale when it changes (event `SuccessfulRescale`
"New size: N; reason: …") and the HPA's status: currentReplicas, desiredReplicas, currentMetrics, lastScaleTime,
observedGeneration and the conditions AbleToScale, ScalingActive, ScalingLimited with upstream's reasons and
messages. Resource and ContainerResource metrics (Utilization and AverageValue) are served; Pods, Object and
External metrics need a custom/external metrics API this server does not have (ScalingActive False, as upstream
without one)."""
from __future__ import annotations

import copy
import logging
import time
from fractions import Fraction
from typing import Any, Callable

from apiserver import errors
from apiserver.api import API
from apiserver.controllers import hpa_rules as rules
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.controllers.writes import modify
from apiserver.informer import RegistryInformer, SharedInformers
from apiserver.kinds.base import Obj
from apiserver.kinds.scale import get_scale, update_scale
from apiserver.registry import Registry
from shipmate.quantity import format_quantity, parse_quantity, QuantityError
from shipmate.selectors import SelectorError, parse_label_selector
from shipmate.timeutil import parse_rfc3339, rfc3339

log = logging.getLogger(__name__)

COMPONENT = "horizontal-pod-autoscaler"
DEFAULT_SYNC_PERIOD = 15.0
DEFAULT_DOWNSCALE_WINDOW = 300.0
_NOT_SERVED = {"Pods": ("FailedGetPodsMetric", "custom.metrics.k8s.io"),
               "Object": ("FailedGetObjectMetric", "custom.metrics.k8s.io"),
               "External": ("FailedGetExternalMetric", "external.metrics.k8s.io")}


def _ignore(event_type: str, obj: Obj, old: Obj | None) -> None:
    return None


def _key(obj: Obj) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def _epoch(text: Any) -> float | None:
    if not text:
        return None
    try:
        return parse_rfc3339(text).timestamp()
    except ValueError:
        return None


def set_condition(conditions: list[Obj], kind: str, status: str, reason: str, message: str, now: str) -> None:
    """upstream's setCondition: lastTransitionTime moves only when the status changes."""
    for condition in conditions:
        if condition.get("type") == kind:
            if condition.get("status") != status:
                condition["lastTransitionTime"] = now
            condition.update({"status": status, "reason": reason, "message": message})
            return
    conditions.append({"type": kind, "status": status, "lastTransitionTime": now, "reason": reason,
                       "message": message})


def _milli_quantity(milli: int) -> str:
    return format_quantity(Fraction(milli, 1000))


def pod_request_milli(pod: Obj, resource: str, container: str = "") -> tuple[int | None, str]:
    """Sum of the (selected) containers' requests in milli units; (None, name) naming one without a request."""
    total = 0
    for spec in (pod.get("spec") or {}).get("containers") or []:
        if container and spec.get("name") != container:
            continue
        raw = ((spec.get("resources") or {}).get("requests") or {}).get(resource)
        if raw is None:
            return None, spec.get("name", "")
        try:
            total += parse_quantity(raw).milli_value()
        except QuantityError:
            return None, spec.get("name", "")
    return total, ""


class HorizontalPodAutoscalerController(KeyedController):
    name = "horizontal-pod-autoscaler"

    def __init__(self, api: API, informers: SharedInformers, sync_period: float = DEFAULT_SYNC_PERIOD,
                 downscale_window: float = DEFAULT_DOWNSCALE_WINDOW, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.api, self.clock = api, clock
        self.resync_interval = sync_period
        self.downscale_window = downscale_window
        self.registry = api.registry("autoscaling", "horizontalpodautoscalers")
        self.hpas = informers.informer(self.registry, self._on_hpa)
        self.pods = informers.informer(api.pods, _ignore)
        self.recommendations: dict[str, list[rules.Recommendation]] = {}
        self.up_events: dict[str, list[rules.ScaleEvent]] = {}
        self.down_events: dict[str, list[rules.ScaleEvent]] = {}
        self.last_warning: dict[str, tuple[str, str]] = {}

    def informers(self) -> list[RegistryInformer]:
        return [self.hpas, self.pods]

    def all_keys(self) -> set[str]:
        return set(self.hpas.cache)

    def _on_hpa(self, event_type: str, obj: Obj, old: Obj | None) -> None:
        if event_type == "MODIFIED" and old is not None and obj.get("spec") == old.get("spec"):
            return       # our own status write: the next period looks again
        self.enqueue(_key(obj))

    # ------------------------------------------------------------------ one HPA
    async def sync_key(self, key: str) -> None:
        hpa = self.hpas.cache.get(key)
        if hpa is None:
            for table in (self.recommendations, self.up_events, self.down_events, self.last_warning):
                table.pop(key, None)
            return
        await self.reconcile(key, copy.deepcopy(hpa))

    def _target_registry(self, ref: Obj) -> Registry:
        api_version = ref.get("apiVersion") or ""
        group = api_version.split("/")[0] if "/" in api_version else ""
        kind = ref.get("kind", "")
        registry = next((r for r in self.api.registries.values() if r.info.group == group and r.info.kind == kind),
                        None)
        if registry is None:
            raise errors.APIError(404, "NotFound", f'no matches for kind "{kind}" in group "{group}"')
        if "scale" not in registry.info.subresources:
            raise errors.APIError(404, "NotFound", f"{registry.info.plural}{'.' + group if group else ''} does not "
                                  "implement the scale subresource")
        return registry

    async def _event(self, hpa: Obj, kind: str, reason: str, message: str) -> None:
        """Events as upstream's; a warning repeated sync after sync is posted once (upstream's recorder folds
        repeats into one Event's count; each of ours would be a new object)."""
        key = _key(hpa)
        if kind == "Warning":
            if self.last_warning.get(key) == (reason, message):
                return
            self.last_warning[key] = (reason, message)
        else:
            self.last_warning.pop(key, None)
        await self.api.record_event(hpa, kind, reason, message, COMPONENT)

    async def reconcile(self, key: str, hpa: Obj) -> None:
        spec, namespace = hpa.get("spec") or {}, hpa["metadata"].get("namespace", "")
        status = copy.deepcopy(hpa.get("status") or {})
        conditions: list[Obj] = status.setdefault("conditions", [])
        now_text = rfc3339(self.api.clock())
        ref = spec.get("scaleTargetRef") or {}
        try:
            registry = self._target_registry(ref)
            scale = await get_scale(registry, namespace, ref.get("name", ""))
        except errors.APIError as error:
            set_condition(conditions, "AbleToScale", "False", "FailedGetScale",
                          f"the HPA controller was unable to get the target's current scale: {error.message}",
                          now_text)
            await self._event(hpa, "Warning", "FailedGetScale", error.message)
            await self._write_status(hpa, status)
            return
        set_condition(conditions, "AbleToScale", "True", "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale", now_text)
        current = int(scale["spec"].get("replicas", 0))
        minimum, maximum = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
        behavior = spec.get("behavior")
        status["currentMetrics"] = status.get("currentMetrics") or None
        rescale_reason, desired = "", current
        if current == 0 and minimum != 0:
            desired = 0
            set_condition(conditions, "ScalingActive", "False", "ScalingDisabled",
                          "scaling is disabled since the replica count of the target is zero", now_text)
        elif current > maximum:
            rescale_reason, desired = "Current number of replicas above Spec.MaxReplicas", maximum
        elif current < minimum:
            rescale_reason, desired = "Current number of replicas below Spec.MinReplicas", minimum
        else:
            try:
                proposal, metric_name, statuses = await self._replicas_for_metrics(hpa, scale, current, conditions,
                                                                                   now_text)
            except rules.MetricError as error:
                set_condition(conditions, "ScalingActive", "False", error.reason,
                              f"the HPA was unable to compute the replica count: {error.message}", now_text)
                await self._event(hpa, "Warning", error.reason, error.message)
                status["currentMetrics"] = None
                await self._write_status(hpa, status, current, current)
                return
            status["currentMetrics"] = statuses
            self.last_warning.pop(key, None)      # metrics are back: a later failure is news again
            if behavior:
                desired = self._normalize_with_behavior(key, hpa, current, proposal, conditions, now_text)
            else:
                desired = self._normalize(key, current, proposal, minimum, maximum, conditions, now_text)
            if desired > current:
                rescale_reason = f"{metric_name} above target"
            elif desired < current:
                rescale_reason = "All metrics below target"
        if desired != current and rescale_reason:
            try:
                await update_scale(registry, namespace, ref.get("name", ""), {"spec": {"replicas": desired}})
            except errors.APIError as error:
                set_condition(conditions, "AbleToScale", "False", "FailedUpdateScale",
                              f"the HPA controller was unable to update the target scale: {error.message}", now_text)
                await self._event(hpa, "Warning", "FailedRescale",
                                  f"New size: {desired}; reason: {rescale_reason}; error: {error.message}")
                await self._write_status(hpa, status, current, desired)
                return
            set_condition(conditions, "AbleToScale", "True", "SucceededRescale",
                          f"the HPA controller was able to update the target scale to {desired}", now_text)
            await self._event(hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {rescale_reason}")
            rules.record_scale_event(self._behavior(hpa), self.up_events.setdefault(key, []),
                                     self.down_events.setdefault(key, []), current, desired, self.clock())
            log.info("hpa rescaled hpa=%s target=%s/%s from=%d to=%d reason=%s", key, ref.get("kind"),
                     ref.get("name"), current, desired, rescale_reason)
            status["lastScaleTime"] = now_text
        await self._write_status(hpa, status, current, desired)

    def _behavior(self, hpa: Obj) -> Obj | None:
        """The HPA's behavior with the scale-down window defaulted from the controller's flag."""
        behavior = copy.deepcopy((hpa.get("spec") or {}).get("behavior"))
        if not behavior:
            return None
        down = behavior.setdefault("scaleDown", {})
        if down.get("stabilizationWindowSeconds") is None:
            down["stabilizationWindowSeconds"] = int(self.downscale_window)
        return behavior

    def _normalize(self, key: str, current: int, desired: int, minimum: int, maximum: int, conditions: list[Obj],
                   now_text: str) -> int:
        stabilized = rules.stabilize(self.recommendations.setdefault(key, []), desired, self.clock(),
                                     self.downscale_window)
        if stabilized != desired:
            set_condition(conditions, "AbleToScale", "True", "ScaleDownStabilized",
                          "recent recommendations were higher than current one, applying the highest recent "
                          "recommendation", now_text)
        else:
            set_condition(conditions, "AbleToScale", "True", "ReadyForNewScale",
                          "recommended size matches current size", now_text)
        result, reason, message = rules.limit_without_behavior(current, stabilized, minimum, maximum)
        set_condition(conditions, "ScalingLimited", "False" if result == stabilized else "True", reason, message,
                      now_text)
        return result

    def _normalize_with_behavior(self, key: str, hpa: Obj, current: int, desired: int, conditions: list[Obj],
                                 now_text: str) -> int:
        spec = hpa["spec"]
        behavior = self._behavior(hpa) or {}
        now = self.clock()
        up_window = float((behavior.get("scaleUp") or {}).get("stabilizationWindowSeconds") or 0)
        down_window = float(behavior["scaleDown"]["stabilizationWindowSeconds"])
        stabilized, reason, message = rules.stabilize_with_behavior(self.recommendations.setdefault(key, []), current,
                                                                    desired, now, up_window, down_window)
        if stabilized != desired:
            set_condition(conditions, "AbleToScale", "True", reason, message, now_text)
        else:
            set_condition(conditions, "AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size",
                          now_text)
        result, reason, message = rules.limit_with_behavior(
            current, stabilized, int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1),
            self.up_events.setdefault(key, []), self.down_events.setdefault(key, []), behavior, now)
        set_condition(conditions, "ScalingLimited", "False" if result == stabilized else "True", reason, message,
                      now_text)
        return result

    # ------------------------------------------------------------------ metrics
    async def _replicas_for_metrics(self, hpa: Obj, scale: Obj, current: int, conditions: list[Obj],
                                    now_text: str) -> tuple[int, str, list[Obj]]:
        selector_text = (scale.get("status") or {}).get("selector") or ""
        if not selector_text:
            raise rules.MetricError("InvalidSelector", "selector is required")
        try:
            selector = parse_label_selector(selector_text)
        except SelectorError as error:
            raise rules.MetricError("InvalidSelector", f"couldn't convert selector into a corresponding internal "
                                    f"selector object: {error}") from None
        namespace = hpa["metadata"].get("namespace", "")
        pods = [p for p in self.pods.cache.values() if p["metadata"].get("namespace") == namespace
                and selector.matches(p["metadata"].get("labels") or {})]
        metrics_source = getattr(self.api, "resource_metrics", None)
        if metrics_source is not None:
            metrics_source.wanted()        # keeps the nodes' scraping running while HPAs need it
        best, best_name, statuses, invalid, last_error = -1, "", [], 0, None
        specs = (hpa.get("spec") or {}).get("metrics") or []
        for metric in specs:
            try:
                replicas, name, metric_status = self._one_metric(metric, pods, current, metrics_source,
                                                                 (hpa.get("spec") or {}).get("behavior"))
            except rules.MetricError as error:
                invalid += 1
                last_error = error
                continue
            statuses.append(metric_status)
            if replicas > best:
                best, best_name = replicas, name
        if last_error is not None and (invalid >= len(specs) or best < current):
            raise last_error
        set_condition(conditions, "ScalingActive", "True", "ValidMetricFound",
                      f"the HPA was able to successfully calculate a replica count from {best_name}", now_text)
        return best, best_name, statuses

    def _one_metric(self, metric: Obj, pods: list[Obj], current: int, source: Any,
                    behavior: Obj | None) -> tuple[int, str, Obj]:
        kind = metric.get("type")
        if kind in _NOT_SERVED:
            reason, api_group = _NOT_SERVED[kind]
            field = {"Pods": "pods", "Object": "object", "External": "external"}[kind]
            name = ((metric.get(field) or {}).get("metric") or {}).get("name", "")
            raise rules.MetricError(reason, f"unable to get metric {name}: no {api_group} API is served")
        container = ""
        if kind == "ContainerResource":
            source_spec = metric.get("containerResource") or {}
            container = source_spec.get("container", "")
        else:
            source_spec = metric.get("resource") or {}
        resource = source_spec.get("name", "")
        target = source_spec.get("target") or {}
        utilization = target.get("averageUtilization") if target.get("type") == "Utilization" else None
        what = f"{resource} container resource" if container else f"{resource} resource"
        prefix = f"failed to get {resource} utilization: " if utilization is not None else \
            f"failed to get {resource} usage: "
        if source is None:
            raise rules.MetricError("FailedGetResourceMetric" if not container else "FailedGetContainerResourceMetric",
                                    prefix + "no metrics API is served")
        values: dict[str, rules.PodMetric] = {}
        infos = []
        now = self.clock()
        for pod in pods:
            meta, status = pod["metadata"], pod.get("status") or {}
            ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
            request, missing = pod_request_milli(pod, resource, container)
            infos.append(rules.PodInfo(
                meta["name"], status.get("phase", "Pending"), bool(meta.get("deletionTimestamp")),
                None if ready is None else ready.get("status") == "True",
                _epoch((ready or {}).get("lastTransitionTime")) or 0.0, _epoch(status.get("startTime")),
                request, missing))
            usages = source.pod_usage_of(pod)
            if container:
                usages = {c: u for c, u in usages.items() if c == container}
            if not usages:
                continue
            newest = max(usages.values(), key=lambda u: u.timestamp_ns)
            if resource == "cpu":
                value = sum(u.cpu_nano for u in usages.values()) // 1_000_000
            elif resource == "memory":
                value = sum(u.memory for u in usages.values()) * 1000
            else:
                raise rules.MetricError("FailedGetResourceMetric", prefix + f"unable to get metrics for resource "
                                        f"{resource}: no metrics returned from resource metrics API")
            values[meta["name"]] = rules.PodMetric(value, newest.timestamp_ns / 1e9, newest.window_ns / 1e9)
        if not values:
            raise rules.MetricError("FailedGetResourceMetric" if not container else "FailedGetContainerResourceMetric",
                                    prefix + f"unable to get metrics for resource {resource}: no metrics returned "
                                    "from resource metrics API")
        tolerances = rules.tolerances_of(behavior)
        try:
            if utilization is not None:
                proposal = rules.resource_replicas(current, infos, values, resource, now,
                                                   target_utilization=int(utilization), tolerances=tolerances)
            else:
                average = parse_quantity(target.get("averageValue") or "0").milli_value()
                if average <= 0:
                    raise rules.MetricError("FailedGetResourceMetric", prefix + "invalid target averageValue")
                proposal = rules.resource_replicas(current, infos, values, resource, now, target_average_milli=average,
                                                   tolerances=tolerances)
        except rules.MetricError as error:
            raise rules.MetricError(error.reason, prefix + error.message) from None
        current_value: Obj = {"averageValue": _milli_quantity(proposal.average_milli)}
        if proposal.utilization is not None:
            current_value["averageUtilization"] = proposal.utilization
        body: Obj = {"name": resource, "current": current_value}
        if container:
            body["container"] = container
            status = {"type": "ContainerResource", "containerResource": body}
        else:
            status = {"type": "Resource", "resource": body}
        name = f"{what} utilization (percentage of request)" if utilization is not None else what
        return proposal.replicas, name, status

    # ------------------------------------------------------------------ status
    async def _write_status(self, hpa: Obj, status: Obj, current: int | None = None,
                            desired: int | None = None) -> None:
        if current is not None:
            status["currentReplicas"] = current
        if desired is not None:
            status["desiredReplicas"] = desired
        if status.get("currentMetrics") is None:
            status.pop("currentMetrics", None)
        status["observedGeneration"] = hpa["metadata"].get("generation", 1)
        order = {"AbleToScale": 0, "ScalingActive": 1, "ScalingLimited": 2}
        status["conditions"] = sorted(status.get("conditions") or [], key=lambda c: order.get(c.get("type"), 3))
        if status == (hpa.get("status") or {}):
            return

        def change(obj: Obj) -> Obj:
            obj["status"] = status
            return obj
        await modify(self.registry, hpa, change, subresource="status")
