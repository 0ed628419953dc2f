"""Protobuf schemas (upstream generated.proto field numbers) of policy/v1 PodDisruptionBudget (`kubectl create
pdb`), scheduling.k8s.io/v1 PriorityClass (`kubectl create priorityclass`), core/v1 LimitRange and
autoscaling/v2 HorizontalPodAutoscaler (`kubectl autoscale`)."""
from __future__ import annotations

from apiserver.protobuf.fields import OBJECT_META, TIME, Field
from apiserver.protobuf.workloads import LABEL_SELECTOR

PDB_SPEC = {1: Field("minAvailable", "intorstring", keep_zero=True), 2: Field("selector", "message", LABEL_SELECTOR),
            3: Field("maxUnavailable", "intorstring", keep_zero=True),
            4: Field("unhealthyPodEvictionPolicy", "string", keep_zero=True)}
PDB_STATUS = {1: Field("observedGeneration", "int"), 3: Field("disruptionsAllowed", "int", keep_zero=True),
              4: Field("currentHealthy", "int", keep_zero=True), 5: Field("desiredHealthy", "int", keep_zero=True),
              6: Field("expectedPods", "int", keep_zero=True)}
PDB = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", PDB_SPEC),
       3: Field("status", "message", PDB_STATUS)}
PRIORITY_CLASS = {1: Field("metadata", "message", OBJECT_META), 2: Field("value", "int", keep_zero=True),
                  3: Field("globalDefault", "bool"), 4: Field("description", "string"),
                  5: Field("preemptionPolicy", "string", keep_zero=True)}
LIMIT_RANGE = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", {1: Field(
    "limits", "message", {1: Field("type", "string", keep_zero=True), 2: Field("max", "quantitymap"),
                          3: Field("min", "quantitymap"), 4: Field("default", "quantitymap"),
                          5: Field("defaultRequest", "quantitymap"), 6: Field("maxLimitRequestRatio", "quantitymap")},
    repeated=True)})}

_REFERENCE = {1: Field("kind", "string", keep_zero=True), 2: Field("name", "string", keep_zero=True),
              3: Field("apiVersion", "string")}
_IDENTIFIER = {1: Field("name", "string", keep_zero=True), 2: Field("selector", "message", LABEL_SELECTOR)}
_TARGET = {1: Field("type", "string", keep_zero=True), 2: Field("value", "quantity"),
           3: Field("averageValue", "quantity"), 4: Field("averageUtilization", "int", keep_zero=True)}
_CURRENT = {1: Field("value", "quantity"), 2: Field("averageValue", "quantity"),
            3: Field("averageUtilization", "int", keep_zero=True)}
METRIC_SPEC = {
    1: Field("type", "string", keep_zero=True),
    2: Field("object", "message", {1: Field("describedObject", "message", _REFERENCE),
                                   2: Field("target", "message", _TARGET), 3: Field("metric", "message", _IDENTIFIER)}),
    3: Field("pods", "message", {1: Field("metric", "message", _IDENTIFIER), 2: Field("target", "message", _TARGET)}),
    4: Field("resource", "message", {1: Field("name", "string", keep_zero=True),
                                     2: Field("target", "message", _TARGET)}),
    7: Field("containerResource", "message", {1: Field("name", "string", keep_zero=True),
                                              2: Field("target", "message", _TARGET),
                                              3: Field("container", "string", keep_zero=True)}),
    5: Field("external", "message", {1: Field("metric", "message", _IDENTIFIER),
                                     2: Field("target", "message", _TARGET)}),
}
METRIC_STATUS = {
    1: Field("type", "string", keep_zero=True),
    2: Field("object", "message", {1: Field("metric", "message", _IDENTIFIER), 2: Field("current", "message", _CURRENT),
                                   3: Field("describedObject", "message", _REFERENCE)}),
    3: Field("pods", "message", {1: Field("metric", "message", _IDENTIFIER), 2: Field("current", "message", _CURRENT)}),
    4: Field("resource", "message", {1: Field("name", "string", keep_zero=True),
                                     2: Field("current", "message", _CURRENT)}),
    7: Field("containerResource", "message", {1: Field("name", "string", keep_zero=True),
                                              2: Field("current", "message", _CURRENT),
                                              3: Field("container", "string", keep_zero=True)}),
    5: Field("external", "message", {1: Field("metric", "message", _IDENTIFIER),
                                     2: Field("current", "message", _CURRENT)}),
}
_RULES = {3: Field("stabilizationWindowSeconds", "int", keep_zero=True), 1: Field("selectPolicy", "string"),
          2: Field("policies", "message", {1: Field("type", "string", keep_zero=True),
                                           2: Field("value", "int", keep_zero=True),
                                           3: Field("periodSeconds", "int", keep_zero=True)}, repeated=True),
          4: Field("tolerance", "quantity")}
HPA_SPEC = {1: Field("scaleTargetRef", "message", _REFERENCE), 2: Field("minReplicas", "int", keep_zero=True),
            3: Field("maxReplicas", "int", keep_zero=True), 4: Field("metrics", "message", METRIC_SPEC, repeated=True),
            5: Field("behavior", "message", {1: Field("scaleUp", "message", _RULES),
                                             2: Field("scaleDown", "message", _RULES)})}
HPA_STATUS = {1: Field("observedGeneration", "int"), 2: Field("lastScaleTime", TIME),
              3: Field("currentReplicas", "int"), 4: Field("desiredReplicas", "int", keep_zero=True),
              5: Field("currentMetrics", "message", METRIC_STATUS, repeated=True),
              6: Field("conditions", "message", {1: Field("type", "string"), 2: Field("status", "string"),
                                                 3: Field("lastTransitionTime", TIME), 4: Field("reason", "string"),
                                                 5: Field("message", "string")}, repeated=True)}
HPA = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", HPA_SPEC),
       3: Field("status", "message", HPA_STATUS)}

POLICY_SCHEMAS = {("policy/v1", "PodDisruptionBudget"): PDB, ("scheduling.k8s.io/v1", "PriorityClass"): PRIORITY_CLASS,
                  ("v1", "LimitRange"): LIMIT_RANGE, ("autoscaling/v2", "HorizontalPodAutoscaler"): HPA}
