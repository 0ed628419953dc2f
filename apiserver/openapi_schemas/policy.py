"""policy/v1 PodDisruptionBudget, scheduling.k8s.io/v1 PriorityClass and core/v1 LimitRange."""
from __future__ import annotations

from apiserver.openapi_schemas.common import API_VERSION, KIND, METADATA, Definition, kind_fields

_RESOURCES = "map[string]Quantity"

POLICY: dict[str, Definition] = {
    "policy.PodDisruptionBudget": Definition(
        "A PodDisruptionBudget limits how many of the pods it selects voluntary disruptions (evictions, drains) "
        "may take down at once.",
        kind_fields(("policy.PodDisruptionBudgetSpec", "The pods and how many of them must stay available."),
                    ("policy.PodDisruptionBudgetStatus", "What the disruption controller last observed. "
                                                         "Read-only."))),
    "policy.PodDisruptionBudgetSpec": Definition("Desired protection of a PodDisruptionBudget.", {
        "minAvailable": ("IntOrString", "Pods (or percent of the expected pods) that must stay available after "
                                        "an eviction. Not with maxUnavailable."),
        "maxUnavailable": ("IntOrString", "Pods (or percent of the expected pods) that may be unavailable after "
                                          "an eviction. Not with minAvailable."),
        "selector": ("meta.LabelSelector", "Pods the budget covers; an empty selector selects every pod of the "
                                           "namespace, a missing one none."),
        "unhealthyPodEvictionPolicy": ("string", "IfHealthyBudget (default) or AlwaysAllow: when not-ready pods "
                                                 "may be evicted."),
    }),
    "policy.PodDisruptionBudgetStatus": Definition("Observed state of a PodDisruptionBudget.", {
        "observedGeneration": ("integer", "Generation of the spec this status was computed from."),
        "disruptedPods": ("map[string]Time", "Pods evicted but not deleted yet, with the time of their eviction."),
        "disruptionsAllowed": ("integer", "Pods that may be disrupted now."),
        "currentHealthy": ("integer", "Healthy (ready) pods."),
        "desiredHealthy": ("integer", "Healthy pods needed."),
        "expectedPods": ("integer", "Pods the budget counts (from their controllers' scale for percentages)."),
        "conditions": ("[]meta.Condition", "DisruptionAllowed."),
    }, required=("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")),
    "meta.Condition": Definition("A condition of an object.", {
        "type": ("string", "Type of the condition, CamelCase."),
        "status": ("string", "True, False or Unknown."),
        "observedGeneration": ("integer", "Generation the condition was set for."),
        "lastTransitionTime": ("Time", "When the status last changed."),
        "reason": ("string", "Machine-readable reason of the last change."),
        "message": ("string", "Human-readable details."),
    }, required=("type", "status", "lastTransitionTime", "reason", "message")),
    "scheduling.PriorityClass": Definition(
        "A PriorityClass maps a name to the priority pods naming it get (the scheduler's order and preemption).",
        {"apiVersion": API_VERSION, "kind": KIND, "metadata": METADATA,
         "value": ("integer", "The priority of pods naming this class. At most 1000000000 for user classes."),
         "globalDefault": ("boolean", "Whether pods naming no class get this one; at most one class may be the "
                                      "default."),
         "description": ("string", "When to use this class."),
         "preemptionPolicy": ("string", "PreemptLowerPriority (default) or Never.")},
        required=("value",)),
    "core.LimitRange": Definition(
        "A LimitRange sets defaults and bounds for the compute resources of the pods and containers of a "
        "namespace (applied when they are created).",
        kind_fields(("core.LimitRangeSpec", "The limits, one item per kind of object."))),
    "core.LimitRangeSpec": Definition("Limits of a LimitRange.", {
        "limits": ("[]core.LimitRangeItem", "One item per type (Pod, Container, PersistentVolumeClaim)."),
    }, required=("limits",)),
    "core.LimitRangeItem": Definition("Bounds and defaults for one type of object.", {
        "type": ("string", "Pod, Container or PersistentVolumeClaim."),
        "max": (_RESOURCES, "Most a resource may be."),
        "min": (_RESOURCES, "Least a resource may be."),
        "default": (_RESOURCES, "Limit given to containers that set none (defaults to max)."),
        "defaultRequest": (_RESOURCES, "Request given to containers that set none (defaults to default, then "
                                       "min)."),
        "maxLimitRequestRatio": (_RESOURCES, "Largest limit/request ratio allowed."),
    }, required=("type",)),
}
