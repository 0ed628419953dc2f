"""Protobuf schemas (upstream generated.proto field numbers) for apps/v1 Deployment, which
`kubectl create deployment` sends as protobuf: the pod template fields kubectl fills in and the common ones."""
from __future__ import annotations

from apiserver.protobuf.fields import OBJECT_META, Field

_KEY_VALUE = {1: Field("name", "string"), 2: Field("value", "string")}
CONTAINER = {
    1: Field("name", "string"), 2: Field("image", "string"), 3: Field("command", "string", repeated=True),
    4: Field("args", "string", repeated=True), 5: Field("workingDir", "string"),
    6: Field("ports", "message", {1: Field("name", "string"), 2: Field("hostPort", "int"),
                                  3: Field("containerPort", "int"), 4: Field("protocol", "string"),
                                  5: Field("hostIP", "string")}, repeated=True),
    7: Field("env", "message", _KEY_VALUE, repeated=True),
    8: Field("resources", "message", {1: Field("limits", "quantitymap"), 2: Field("requests", "quantitymap")}),
    13: Field("terminationMessagePath", "string"), 14: Field("imagePullPolicy", "string"),
    16: Field("stdin", "bool"), 17: Field("stdinOnce", "bool"), 18: Field("tty", "bool"),
    20: Field("terminationMessagePolicy", "string"),
}
POD_SPEC = {
    2: Field("containers", "message", CONTAINER, repeated=True), 3: Field("restartPolicy", "string"),
    4: Field("terminationGracePeriodSeconds", "int", keep_zero=True), 5: Field("activeDeadlineSeconds", "int"),
    6: Field("dnsPolicy", "string"), 7: Field("nodeSelector", "map"), 8: Field("serviceAccountName", "string"),
    10: Field("nodeName", "string"), 11: Field("hostNetwork", "bool"), 16: Field("hostname", "string"),
    17: Field("subdomain", "string"), 19: Field("schedulerName", "string"),
    20: Field("initContainers", "message", CONTAINER, repeated=True), 24: Field("priorityClassName", "string"),
}
LABEL_SELECTOR = {1: Field("matchLabels", "map"),
                  2: Field("matchExpressions", "message", {1: Field("key", "string"), 2: Field("operator", "string"),
                                                           3: Field("values", "string", repeated=True)},
                           repeated=True)}
POD_TEMPLATE_SPEC = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", POD_SPEC)}
DEPLOYMENT_SPEC = {
    1: Field("replicas", "int", keep_zero=True), 2: Field("selector", "message", LABEL_SELECTOR),
    3: Field("template", "message", POD_TEMPLATE_SPEC),
    4: Field("strategy", "message", {1: Field("type", "string"),
                                     2: Field("rollingUpdate", "message", {1: Field("maxUnavailable", "intorstring", keep_zero=True),
                                                                           2: Field("maxSurge", "intorstring", keep_zero=True)})}),
    5: Field("minReadySeconds", "int"), 6: Field("revisionHistoryLimit", "int", keep_zero=True),
    7: Field("paused", "bool"), 9: Field("progressDeadlineSeconds", "int"),
}
DEPLOYMENT = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", DEPLOYMENT_SPEC),
              3: Field("status", "message", {})}
WORKLOAD_SCHEMAS = {("apps/v1", "Deployment"): DEPLOYMENT}
