"""autoscaling/v2 HorizontalPodAutoscaler."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

_TARGET = ("autoscaling.MetricTarget", "The value the metric should have.")
_CURRENT = ("autoscaling.MetricValueStatus", "The value the metric has.")
_METRIC = ("autoscaling.MetricIdentifier", "The metric.")

AUTOSCALING: dict[str, Definition] = {
    "autoscaling.HorizontalPodAutoscaler": Definition(
        "A HorizontalPodAutoscaler sets the replica count of a scalable workload from observed metrics.",
        kind_fields(("autoscaling.HorizontalPodAutoscalerSpec", "The workload, the metrics and the bounds."),
                    ("autoscaling.HorizontalPodAutoscalerStatus", "What the autoscaler last observed. Read-only."))),
    "autoscaling.HorizontalPodAutoscalerSpec": Definition("Desired behaviour of an autoscaler.", {
        "scaleTargetRef": ("autoscaling.CrossVersionObjectReference", "The workload to scale (it must have a scale "
                                                                      "subresource)."),
        "minReplicas": ("integer", "Fewest replicas. Default 1."),
        "maxReplicas": ("integer", "Most replicas."),
        "metrics": ("[]autoscaling.MetricSpec", "Metrics to scale on; the largest proposal wins. Default: 80% "
                                                "average CPU utilization."),
        "behavior": ("autoscaling.HorizontalPodAutoscalerBehavior", "How fast to scale up and down."),
    }, required=("scaleTargetRef", "maxReplicas")),
    "autoscaling.CrossVersionObjectReference": Definition("An object of the same namespace.", {
        "kind": ("string", "Kind of the object."),
        "name": ("string", "Name of the object."),
        "apiVersion": ("string", "API version of the object."),
    }, required=("kind", "name")),
    "autoscaling.MetricSpec": Definition("A metric to scale on; exactly the source of its type is set.", {
        "type": ("string", "ContainerResource, External, Object, Pods or Resource."),
        "object": ("autoscaling.ObjectMetricSource", "A metric of another object."),
        "pods": ("autoscaling.PodsMetricSource", "A metric averaged over the pods."),
        "resource": ("autoscaling.ResourceMetricSource", "A resource (cpu, memory) of the pods."),
        "containerResource": ("autoscaling.ContainerResourceMetricSource", "A resource of one container of the "
                                                                          "pods."),
        "external": ("autoscaling.ExternalMetricSource", "A metric from outside the cluster."),
    }, required=("type",)),
    "autoscaling.ObjectMetricSource": Definition("A metric describing another object.", {
        "describedObject": ("autoscaling.CrossVersionObjectReference", "The object."), "target": _TARGET,
        "metric": _METRIC}, required=("describedObject", "target", "metric")),
    "autoscaling.PodsMetricSource": Definition("A metric averaged over the scaled pods.", {
        "metric": _METRIC, "target": _TARGET}, required=("metric", "target")),
    "autoscaling.ResourceMetricSource": Definition("A resource of the scaled pods.", {
        "name": ("string", "The resource (cpu, memory)."), "target": _TARGET}, required=("name", "target")),
    "autoscaling.ContainerResourceMetricSource": Definition("A resource of one container of the scaled pods.", {
        "name": ("string", "The resource (cpu, memory)."), "target": _TARGET,
        "container": ("string", "The container.")}, required=("name", "target", "container")),
    "autoscaling.ExternalMetricSource": Definition("A metric from outside the cluster.", {
        "metric": _METRIC, "target": _TARGET}, required=("metric", "target")),
    "autoscaling.MetricIdentifier": Definition("A metric by name and selector.", {
        "name": ("string", "Name of the metric."),
        "selector": ("meta.LabelSelector", "Labels narrowing the metric."),
    }, required=("name",)),
    "autoscaling.MetricTarget": Definition("A target value of a metric.", {
        "type": ("string", "Utilization, Value or AverageValue."),
        "value": ("Quantity", "Target value of the metric."),
        "averageValue": ("Quantity", "Target value averaged over the pods."),
        "averageUtilization": ("integer", "Target percent of the pods' requests."),
    }, required=("type",)),
    "autoscaling.HorizontalPodAutoscalerBehavior": Definition("Scaling speed in each direction.", {
        "scaleUp": ("autoscaling.HPAScalingRules", "Rules for scaling up (default: 4 pods or 100% per 15 s)."),
        "scaleDown": ("autoscaling.HPAScalingRules", "Rules for scaling down (default: 100% per 15 s after a 300 s "
                                                     "window)."),
    }),
    "autoscaling.HPAScalingRules": Definition("How fast one direction may scale.", {
        "stabilizationWindowSeconds": ("integer", "Seconds of past proposals considered (0-3600)."),
        "selectPolicy": ("string", "Max (default), Min or Disabled."),
        "policies": ("[]autoscaling.HPAScalingPolicy", "Allowed changes per period."),
        "tolerance": ("Quantity", "Relative metric change ignored."),
    }),
    "autoscaling.HPAScalingPolicy": Definition("An allowed change per period.", {
        "type": ("string", "Pods or Percent."),
        "value": ("integer", "Pods or percent allowed per period."),
        "periodSeconds": ("integer", "Length of the period (1-1800 s)."),
    }, required=("type", "value", "periodSeconds")),
    "autoscaling.HorizontalPodAutoscalerStatus": Definition("Observed state of an autoscaler.", {
        "observedGeneration": ("integer", "Generation last acted on."),
        "lastScaleTime": ("Time", "When the replica count last changed."),
        "currentReplicas": ("integer", "Replicas seen last."),
        "desiredReplicas": ("integer", "Replicas wanted at the last calculation."),
        "currentMetrics": ("[]autoscaling.MetricStatus", "Metric values seen last."),
        "conditions": ("[]autoscaling.HorizontalPodAutoscalerCondition", "AbleToScale, ScalingActive, "
                                                                          "ScalingLimited."),
    }, required=("desiredReplicas",)),
    "autoscaling.MetricStatus": Definition("A metric's observed value.", {
        "type": ("string", "ContainerResource, External, Object, Pods or Resource."),
        "object": ("autoscaling.ObjectMetricStatus", "Of another object."),
        "pods": ("autoscaling.PodsMetricStatus", "Averaged over the pods."),
        "resource": ("autoscaling.ResourceMetricStatus", "A resource of the pods."),
        "containerResource": ("autoscaling.ContainerResourceMetricStatus", "A resource of one container."),
        "external": ("autoscaling.ExternalMetricStatus", "From outside the cluster."),
    }, required=("type",)),
    "autoscaling.ObjectMetricStatus": Definition("Observed value of an object metric.", {
        "metric": _METRIC, "current": _CURRENT,
        "describedObject": ("autoscaling.CrossVersionObjectReference", "The object.")}),
    "autoscaling.PodsMetricStatus": Definition("Observed value of a pods metric.", {
        "metric": _METRIC, "current": _CURRENT}),
    "autoscaling.ResourceMetricStatus": Definition("Observed value of a resource metric.", {
        "name": ("string", "The resource."), "current": _CURRENT}),
    "autoscaling.ContainerResourceMetricStatus": Definition("Observed value of a container resource metric.", {
        "name": ("string", "The resource."), "current": _CURRENT, "container": ("string", "The container.")}),
    "autoscaling.ExternalMetricStatus": Definition("Observed value of an external metric.", {
        "metric": _METRIC, "current": _CURRENT}),
    "autoscaling.MetricValueStatus": Definition("A metric value.", {
        "value": ("Quantity", "The value."),
        "averageValue": ("Quantity", "The value averaged over the pods."),
        "averageUtilization": ("integer", "Percent of the pods' requests."),
    }),
    "autoscaling.HorizontalPodAutoscalerCondition": Definition("A condition of an autoscaler.", {
        "type": ("string", "AbleToScale, ScalingActive or ScalingLimited."),
        "status": ("string", "True, False or Unknown."),
        "lastTransitionTime": ("Time", "When the status last changed."),
        "reason": ("string", "Machine-readable reason."),
        "message": ("string", "Human-readable details."),
    }, required=("type", "status")),
}
