"""Protobuf schemas (upstream generated.proto field numbers) of the core/v1 and policy/v1 kinds kubectl's typed
clients send as protobuf."""
from __future__ import annotations

from apiserver.protobuf.fields import OBJECT_META, Field

NAMESPACE = {1: Field("metadata", "message", OBJECT_META),
             2: Field("spec", "message", {1: Field("finalizers", "string", repeated=True)}),
             3: Field("status", "message", {1: Field("phase", "string")})}
CONFIG_MAP = {1: Field("metadata", "message", OBJECT_META), 2: Field("data", "map"),
              3: Field("binaryData", "bytesmap"), 4: Field("immutable", "bool")}
SECRET = {1: Field("metadata", "message", OBJECT_META), 2: Field("data", "bytesmap"), 3: Field("type", "string"),
          4: Field("stringData", "map"), 5: Field("immutable", "bool")}
SERVICE_PORT = {1: Field("name", "string"), 2: Field("protocol", "string"), 3: Field("port", "int", keep_zero=True),
                4: Field("targetPort", "intorstring"), 5: Field("nodePort", "int"), 6: Field("appProtocol", "string")}
SESSION_AFFINITY_CONFIG = {1: Field("clientIP", "message", {1: Field("timeoutSeconds", "int")})}
SERVICE_SPEC = {
    1: Field("ports", "message", SERVICE_PORT, repeated=True), 2: Field("selector", "map"),
    3: Field("clusterIP", "string"), 4: Field("type", "string"), 5: Field("externalIPs", "string", repeated=True),
    7: Field("sessionAffinity", "string"), 8: Field("loadBalancerIP", "string"),
    9: Field("loadBalancerSourceRanges", "string", repeated=True), 10: Field("externalName", "string"),
    11: Field("externalTrafficPolicy", "string"), 12: Field("healthCheckNodePort", "int"),
    13: Field("publishNotReadyAddresses", "bool"),
    14: Field("sessionAffinityConfig", "message", SESSION_AFFINITY_CONFIG),
    17: Field("ipFamilyPolicy", "string"), 18: Field("clusterIPs", "string", repeated=True),
    19: Field("ipFamilies", "string", repeated=True), 20: Field("allocateLoadBalancerNodePorts", "bool", keep_zero=True),
    21: Field("loadBalancerClass", "string"), 22: Field("internalTrafficPolicy", "string"),
    23: Field("trafficDistribution", "string"),
}
SERVICE = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", SERVICE_SPEC),
           3: Field("status", "message", {1: Field("loadBalancer", "message", {1: Field("ingress", "message", {
               1: Field("ip", "string"), 2: Field("hostname", "string"), 3: Field("ipMode", "string"),
               4: Field("ports", "message", {1: Field("port", "int", keep_zero=True),
                                             2: Field("protocol", "string", keep_zero=True),
                                             3: Field("error", "string")}, repeated=True)}, repeated=True)})})}
# ResourceQuota (`kubectl create quota`) and policy/v1 Eviction (`kubectl drain`): scheduling's kinds.
RESOURCE_QUOTA = {1: Field("metadata", "message", OBJECT_META),
                  2: Field("spec", "message", {1: Field("hard", "quantitymap"), 2: Field("scopes", "string", repeated=True),
                                               3: Field("scopeSelector", "message", {1: Field(
                                                   "matchExpressions", "message",
                                                   {1: Field("scopeName", "string"), 2: Field("operator", "string"),
                                                    3: Field("values", "string", repeated=True)}, repeated=True)})}),
                  3: Field("status", "message", {1: Field("hard", "quantitymap"), 2: Field("used", "quantitymap")})}
DELETE_OPTIONS = {1: Field("gracePeriodSeconds", "int", keep_zero=True),
                  2: Field("preconditions", "message", {1: Field("uid", "string"), 2: Field("resourceVersion", "string")}),
                  3: Field("orphanDependents", "bool"), 4: Field("propagationPolicy", "string"),
                  5: Field("dryRun", "string", repeated=True),
                  6: Field("ignoreStoreReadErrorWithClusterBreakingPotential", "bool")}
EVICTION = {1: Field("metadata", "message", OBJECT_META), 2: Field("deleteOptions", "message", DELETE_OPTIONS)}
# Kinds kubectl's typed clients send as protobuf (`kubectl create namespace|configmap|secret|service`).
CORE_SCHEMAS: dict[tuple[str, str], dict[int, Field]] = {
    ("v1", "Namespace"): NAMESPACE, ("v1", "ConfigMap"): CONFIG_MAP, ("v1", "Secret"): SECRET,
    ("v1", "Service"): SERVICE,
    ("v1", "ResourceQuota"): RESOURCE_QUOTA, ("policy/v1", "Eviction"): EVICTION,
}

