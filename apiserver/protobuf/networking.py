"""Protobuf schemas (upstream generated.proto field numbers) of networking.k8s.io/v1 NetworkPolicy, Ingress
(`kubectl create ingress`) and IngressClass."""
from __future__ import annotations

from apiserver.protobuf.fields import OBJECT_META, Field
from apiserver.protobuf.workloads import LABEL_SELECTOR

_GROUP = "networking.k8s.io/v1"
NETWORK_POLICY_PORT = {1: Field("protocol", "string"), 2: Field("port", "intorstring"), 3: Field("endPort", "int")}
NETWORK_POLICY_PEER = {1: Field("podSelector", "message", LABEL_SELECTOR),
                       2: Field("namespaceSelector", "message", LABEL_SELECTOR),
                       3: Field("ipBlock", "message", {1: Field("cidr", "string", keep_zero=True),
                                                       2: Field("except", "string", repeated=True)})}
NETWORK_POLICY_SPEC = {
    1: Field("podSelector", "message", LABEL_SELECTOR),
    2: Field("ingress", "message", {1: Field("ports", "message", NETWORK_POLICY_PORT, repeated=True),
                                    2: Field("from", "message", NETWORK_POLICY_PEER, repeated=True)}, repeated=True),
    3: Field("egress", "message", {1: Field("ports", "message", NETWORK_POLICY_PORT, repeated=True),
                                   2: Field("to", "message", NETWORK_POLICY_PEER, repeated=True)}, repeated=True),
    4: Field("policyTypes", "string", repeated=True),
}
NETWORK_POLICY = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", NETWORK_POLICY_SPEC)}

TYPED_LOCAL_OBJECT_REFERENCE = {1: Field("apiGroup", "string"), 2: Field("kind", "string", keep_zero=True),
                                3: Field("name", "string", keep_zero=True)}
INGRESS_BACKEND = {
    4: Field("service", "message", {1: Field("name", "string", keep_zero=True),
                                    2: Field("port", "message", {1: Field("name", "string"),
                                                                 2: Field("number", "int")})}),
    3: Field("resource", "message", TYPED_LOCAL_OBJECT_REFERENCE),
}
HTTP_INGRESS_PATH = {1: Field("path", "string"), 3: Field("pathType", "string", keep_zero=True),
                     2: Field("backend", "message", INGRESS_BACKEND)}
# IngressRule embeds IngressRuleValue: its `http` sits beside `host` in JSON.
INGRESS_RULE = {1: Field("host", "string"),
                2: Field("ingressRuleValue", "inline", {1: Field("http", "message", {
                    1: Field("paths", "message", HTTP_INGRESS_PATH, repeated=True)})})}
INGRESS_SPEC = {4: Field("ingressClassName", "string", keep_zero=True),
                1: Field("defaultBackend", "message", INGRESS_BACKEND),
                2: Field("tls", "message", {1: Field("hosts", "string", repeated=True),
                                            2: Field("secretName", "string")}, repeated=True),
                3: Field("rules", "message", INGRESS_RULE, repeated=True)}
INGRESS_STATUS = {1: Field("loadBalancer", "message", {1: Field("ingress", "message", {
    1: Field("ip", "string"), 2: Field("hostname", "string"),
    4: Field("ports", "message", {1: Field("port", "int", keep_zero=True),
                                  2: Field("protocol", "string", keep_zero=True),
                                  3: Field("error", "string")}, repeated=True)}, repeated=True)})}
INGRESS = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", INGRESS_SPEC),
           3: Field("status", "message", INGRESS_STATUS)}
INGRESS_CLASS = {1: Field("metadata", "message", OBJECT_META),
                 2: Field("spec", "message", {1: Field("controller", "string"), 2: Field("parameters", "message", {
                     1: Field("apiGroup", "string"), 2: Field("kind", "string", keep_zero=True),
                     3: Field("name", "string", keep_zero=True), 4: Field("scope", "string", keep_zero=True),
                     5: Field("namespace", "string", keep_zero=True)})})}

NETWORKING_SCHEMAS = {(_GROUP, "NetworkPolicy"): NETWORK_POLICY, (_GROUP, "Ingress"): INGRESS,
                      (_GROUP, "IngressClass"): INGRESS_CLASS}
