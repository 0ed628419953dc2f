"""NetworkPolicy, Ingress, IngressClass, LimitRange, PriorityClass, HorizontalPodAutoscaler and
PodDisruptionBudget: defaulting, validation messages (upstream's), tables, and protobuf bodies (an encoder
written here from upstream's generated.proto field numbers); protobuf DeleteOptions of any group version."""
from __future__ import annotations

import copy
import datetime

import pytest

from apiserver import errors
from apiserver.errors import invalid_object
from apiserver.fieldcheck import unknown_fields
from apiserver.kinds.autoscaling import HorizontalPodAutoscalerStrategy, format_metrics
from apiserver.kinds.disruptionbudgets import PodDisruptionBudgetStrategy
from apiserver.kinds.field_rules import go_quantity
from apiserver.kinds.limitranges import LimitRangeStrategy
from apiserver.kinds.networking import IngressClassStrategy, IngressStrategy, NetworkPolicyStrategy, format_hosts
from apiserver.kinds.priorityclasses import PriorityClassStrategy, global_default_conflict
from apiserver.protobuf import MAGIC, decode_object

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
CREATED = "2025-12-31T23:58:00Z"


def obj(kind: str, api_version: str, namespaced: bool = True, **fields):
    meta = {"name": "x", "creationTimestamp": CREATED, **({"namespace": "default"} if namespaced else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}


def message(strategy, value, old=None) -> str:
    problems = strategy.validate(value) if old is None else strategy.validate_update(value, old)
    return invalid_object(strategy.info.group, strategy.info.kind, "x", problems).message if problems else ""


def row(strategy, value):
    return strategy.table(NOW).row(value).cells


# --- NetworkPolicy ------------------------------------------------------------------------------------------
def netpol(**spec):
    return obj("NetworkPolicy", "networking.k8s.io/v1", spec=spec)


def test_network_policy_defaults_and_table():
    policy = netpol(egress=[{"ports": [{"port": 53}]}])
    NetworkPolicyStrategy().default(policy)
    assert policy["spec"] == {"egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}], "podSelector": {},
                              "policyTypes": ["Ingress", "Egress"]}
    assert row(NetworkPolicyStrategy(), policy) == ["x", "<none>", "2m"]
    ingress_only = netpol(podSelector={"matchLabels": {"app": "web", "tier": "a"}})
    NetworkPolicyStrategy().default(ingress_only)
    assert ingress_only["spec"]["policyTypes"] == ["Ingress"]
    assert row(NetworkPolicyStrategy(), ingress_only)[1] == "app=web,tier=a"


def test_network_policy_validation_messages():
    strategy = NetworkPolicyStrategy()
    bad = netpol(podSelector={"matchExpressions": [{"key": "app", "operator": "In"}]},
                 ingress=[{"ports": [{"protocol": "ICMP", "port": 80, "endPort": 70}],
                           "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]},
                                         "podSelector": {}}]}],
                 policyTypes=["Ingress", "Sideways"])
    assert message(strategy, bad) == (
        'NetworkPolicy.networking.k8s.io "x" is invalid: ['
        "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' "
        "or 'NotIn', "
        'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP", '
        "spec.ingress[0].ports[0].endPort: Invalid value: 70: must be greater than or equal to `port`, "
        "spec.ingress[0].from[0]: Required value: must specify a peer, "
        'spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: "192.168.0.0/16": must be a strict subset of '
        "`cidr`, "
        "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer, "
        'spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"]')
    named = netpol(egress=[{"ports": [{"port": "dns", "endPort": 60}]}])
    assert message(strategy, named) == ('NetworkPolicy.networking.k8s.io "x" is invalid: spec.egress[0].ports[0].'
                                        "endPort: Invalid value: 60: may not be specified when `port` is non-numeric")
    assert message(strategy, netpol(ingress=[{"from": [{"ipBlock": {"cidr": "bogus"}}]}])).endswith(
        'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "bogus": must be a valid CIDR value, (e.g. '
        "10.9.8.0/24 or 2001:db8::/64)")
    # an invalid CIDR already stored may stay on update
    old = netpol(ingress=[{"from": [{"ipBlock": {"cidr": "bogus"}}]}])
    assert message(strategy, copy.deepcopy(old), old) == ""


# --- Ingress ---------------------------------------------------------------------------------------------------
def ingress(**spec):
    return obj("Ingress", "networking.k8s.io/v1", spec=spec)


def backend(service="web", **port):
    return {"service": {"name": service, "port": port or {"number": 80}}}


def test_ingress_validation_messages():
    strategy = IngressStrategy()
    assert message(strategy, ingress()) == ('Ingress.networking.k8s.io "x" is invalid: spec: Invalid value: '
                                            "[]networking.IngressRule(nil): either `defaultBackend` or `rules` must be "
                                            "specified")
    bad = ingress(rules=[{"host": "1.2.3.4", "http": {"paths": [
        {"path": "a", "pathType": "Prefix", "backend": backend("Web_1")},
        {"path": "/x//y", "pathType": "Exact", "backend": backend(number=80, name="http")},
        {"path": "/", "pathType": "Regex", "backend": backend()},
        {"path": "/", "backend": backend()}]}}, {"host": "*.*.example.com"}],
                  tls=[{"hosts": ["Foo.com"]}], ingressClassName="Nginx")
    assert message(strategy, bad) == (
        'Ingress.networking.k8s.io "x" is invalid: ['
        'spec.rules[0].host: Invalid value: "1.2.3.4": must be a DNS name, not an IP address, '
        'spec.rules[0].http.paths[0].path: Invalid value: "a": must be an absolute path, '
        'spec.rules[0].http.paths[0].backend.service.name: Invalid value: "Web_1": a DNS-1035 label must consist of '
        "lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric "
        "character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?'), "
        """spec.rules[0].http.paths[1].path: Invalid value: "/x//y": must not contain '//', """
        'spec.rules[0].http.paths[1].backend: Invalid value: "": cannot set both port name & port number, '
        'spec.rules[0].http.paths[2].pathType: Unsupported value: "Regex": supported values: "Exact", '
        '"ImplementationSpecific", "Prefix", '
        "spec.rules[0].http.paths[3].pathType: Required value: pathType must be specified, "
        'spec.rules[1].host: Invalid value: "*.*.example.com": a wildcard DNS-1123 subdomain must start with '
        "'*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or "
        "'.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is "
        "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), "
        'spec.tls[0].hosts[0]: Invalid value: "Foo.com": a lowercase RFC 1123 subdomain must consist of lower case '
        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
        "'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), "
        'spec.ingressClassName: Invalid value: "Nginx": a lowercase RFC 1123 subdomain must consist of lower case '
        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
        "'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')]")
    annotated = ingress(defaultBackend=backend(), ingressClassName="a")
    annotated["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "b"}
    assert message(strategy, annotated).endswith('annotations.kubernetes.io/ingress.class: Invalid value: "b": '
                                                 "must match `ingressClassName` when both are specified")
    assert message(strategy, ingress(defaultBackend={"service": {"name": "web"}})).endswith(
        "spec.defaultBackend: Required value: port name or number is required")


def test_ingress_status_table_and_hosts():
    strategy = IngressStrategy()
    value = ingress(rules=[{"host": f"h{i}.example.com"} for i in range(5)], tls=[{"hosts": ["h0.example.com"]}])
    strategy.prepare_for_create(value)
    assert value["status"] == {"loadBalancer": {}}
    assert row(strategy, value) == ["x", "<none>", "h0.example.com,h1.example.com,h2.example.com + 2 more...", "",
                                    "80, 443", "2m"]
    value["spec"]["ingressClassName"] = "nginx"
    value["status"] = {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}, {"hostname": "lb.example.com"}]}}
    assert row(strategy, value)[1:4] == ["nginx", "h0.example.com,h1.example.com,h2.example.com + 2 more...",
                                         "10.0.0.2,lb.example.com"]
    assert format_hosts([{}]) == "*"
    assert [c.name for c in strategy.table(NOW).columns] == ["Name", "Class", "Hosts", "Address", "Ports", "Age"]


def test_ingress_class_defaults_validation_and_table():
    strategy = IngressClassStrategy()
    value = obj("IngressClass", "networking.k8s.io/v1", namespaced=False, spec={
        "controller": "example.com/ingress", "parameters": {"apiGroup": "k8s.example.com", "kind": "Params",
                                                            "name": "p"}})
    strategy.default(value)
    assert value["spec"]["parameters"]["scope"] == "Cluster"
    assert message(strategy, value) == ""
    assert row(strategy, value) == ["x", "example.com/ingress", "Params.k8s.example.com/p", "2m"]
    bad = obj("IngressClass", "networking.k8s.io/v1", namespaced=False, spec={
        "controller": "nginx", "parameters": {"kind": "P", "name": "p", "scope": "Namespace"}})
    assert message(strategy, bad) == (
        'IngressClass.networking.k8s.io "x" is invalid: [spec.controller: Invalid value: "nginx": must be a '
        'domain-prefixed path (such as "acme.io/foo"), spec.parameters.namespace: Required value: '
        "`parameters.scope` is set to 'Namespace']")
    changed = copy.deepcopy(value)
    changed["spec"]["controller"] = "example.com/other"
    assert message(strategy, changed, value).endswith(
        'spec.controller: Invalid value: "example.com/other": field is immutable')


# --- LimitRange -------------------------------------------------------------------------------------------------
def limit_range(*items):
    return obj("LimitRange", "v1", spec={"limits": list(items)})


def test_limit_range_defaults_from_max_default_and_min():
    value = limit_range({"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "min": {"memory": "100Mi"},
                         "default": {"cpu": "1000m"}}, {"type": "Pod", "max": {"cpu": "4"}})
    LimitRangeStrategy().default(value)
    container, pod = value["spec"]["limits"]
    assert container["default"] == {"cpu": "1", "memory": "1Gi"}
    assert container["defaultRequest"] == {"cpu": "1", "memory": "1Gi"}
    assert pod == {"type": "Pod", "max": {"cpu": "4"}}
    only_min = limit_range({"type": "Container", "min": {"cpu": "100m"}})
    LimitRangeStrategy().default(only_min)
    assert only_min["spec"]["limits"][0] == {"type": "Container", "min": {"cpu": "100m"},
                                             "defaultRequest": {"cpu": "100m"}}
    assert message(LimitRangeStrategy(), value) == ""
    assert [c.name for c in LimitRangeStrategy().table(NOW).columns] == ["Name", "Created At"]


def test_limit_range_validation_messages():
    strategy = LimitRangeStrategy()
    bad = limit_range({"type": "Pod", "default": {"cpu": "1"}, "max": {"gpu": "1"}},
                      {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "maxLimitRequestRatio":
                          {"memory": "500m"}},
                      {"type": "Container"}, {"type": "Volume"}, {"type": "PersistentVolumeClaim"})
    assert message(strategy, bad) == (
        'LimitRange "x" is invalid: ['
        'spec.limits[0].max[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified, '
        "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod', "
        f"spec.limits[1].min[cpu]: Invalid value: {go_quantity('2')}: min value 2 is greater than max value 1, "
        f"spec.limits[1].maxLimitRequestRatio[memory]: Invalid value: {go_quantity('500m')}: ratio 500m is less "
        "than 1, "
        'spec.limits[2].type: Duplicate value: "Container", '
        'spec.limits[3].type: Invalid value: "Volume": must be a standard limit type or fully qualified, '
        "spec.limits[4].limits: Required value: either minimum or maximum storage value is required, but neither "
        "was provided]")
    assert go_quantity("2") == ('resource.Quantity{i:resource.int64Amount{value:2, scale:0}, '
                                'd:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:"2", Format:"DecimalSI"}')
    assert go_quantity("100m").startswith("resource.Quantity{i:resource.int64Amount{value:100, scale:-3}")
    assert go_quantity("1Gi").endswith('s:"1Gi", Format:"BinarySI"}')
    ratio = limit_range({"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"},
                         "maxLimitRequestRatio": {"cpu": "20"}})
    assert message(strategy, ratio).endswith("ratio 20 is greater than max/min = 10.000000")


# --- PriorityClass --------------------------------------------------------------------------------------------
def priority_class(name="x", **fields):
    value = obj("PriorityClass", "scheduling.k8s.io/v1", namespaced=False, **fields)
    value["metadata"]["name"] = name
    PriorityClassStrategy().default(value)
    return value


def test_priority_class_defaults_validation_and_table():
    strategy = PriorityClassStrategy()
    value = priority_class(value=1000)
    assert value["preemptionPolicy"] == "PreemptLowerPriority"
    assert row(strategy, value) == ["x", 1000, False, "2m", "PreemptLowerPriority"]
    assert message(strategy, priority_class(value=2000000000)) == (
        'PriorityClass.scheduling.k8s.io "x" is invalid: value: Forbidden: maximum allowed value of a user defined '
        "priority is 1000000000")
    assert message(strategy, priority_class("system-mine", value=1)) == (
        "PriorityClass.scheduling.k8s.io \"x\" is invalid: metadata.name: Forbidden: priority class names with "
        "'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class")
    assert message(strategy, priority_class("system-node-critical", value=2000001000)) == ""
    assert "value of system-node-critical PriorityClass must be 2000001000" in \
        message(strategy, priority_class("system-node-critical", value=5))
    assert message(strategy, priority_class(value=1, preemptionPolicy="Always")).endswith(
        'preemptionPolicy: Unsupported value: "Always": supported values: "Never", "PreemptLowerPriority"')
    changed = priority_class(value=2, preemptionPolicy="Never")
    assert message(strategy, changed, value) == (
        'PriorityClass.scheduling.k8s.io "x" is invalid: [value: Forbidden: may not be changed in an update., '
        'preemptionPolicy: Invalid value: "Never": field is immutable]')


def test_one_global_default_and_system_classes_stay():
    default = priority_class("a", value=1, globalDefault=True)
    assert global_default_conflict(priority_class("b", value=2, globalDefault=True), [default], True) == "a"
    assert global_default_conflict(priority_class("b", value=2), [default], True) == ""
    assert global_default_conflict(default, [default], False) == ""  # updating the default itself
    with pytest.raises(errors.APIError) as refused:
        PriorityClassStrategy().check_delete(priority_class("system-cluster-critical", value=2000000000))
    assert refused.value.code == 403
    assert refused.value.message == ('priorityclasses.scheduling.k8s.io "system-cluster-critical" is forbidden: '
                                     "this is a system priority class and cannot be deleted")


# --- HorizontalPodAutoscaler ----------------------------------------------------------------------------------
def hpa(**spec):
    return obj("HorizontalPodAutoscaler", "autoscaling/v2",
               spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, **spec})


def test_hpa_defaults_as_upstream():
    value = hpa(maxReplicas=5, behavior={"scaleDown": {"stabilizationWindowSeconds": 60}})
    HorizontalPodAutoscalerStrategy().default(value)
    spec = value["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 80}}}]
    assert spec["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                 {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}


def test_hpa_validation_messages_and_table():
    strategy = HorizontalPodAutoscalerStrategy()
    bad = hpa(minReplicas=3, maxReplicas=2, metrics=[
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}},
        {"type": "Pods", "resource": {"name": "cpu", "target": {"type": "Bogus", "averageValue": "-1"}}}])
    assert message(strategy, bad) == (
        'HorizontalPodAutoscaler.autoscaling "x" is invalid: ['
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`, "
        "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0, "
        'spec.metrics[1].resource.target.type: Invalid value: "Bogus": must be either Utilization, Value, or '
        "AverageValue, "
        f"spec.metrics[1].resource.target.averageValue: Invalid value: {go_quantity('-1')}: must be positive, "
        "spec.metrics[1].pods: Required value: must populate information for the given metric source]")
    both = hpa(maxReplicas=2, metrics=[{"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {
        "type": "AverageValue", "averageValue": "1"}}, "external": {"metric": {"name": "q"}, "target": {
            "type": "Value", "value": "1"}}}])
    assert message(strategy, both).endswith("spec.metrics[0].external: Forbidden: must populate the given metric "
                                            "source only")
    assert message(strategy, hpa(maxReplicas=0, minReplicas=0)) == (
        'HorizontalPodAutoscaler.autoscaling "x" is invalid: [spec.minReplicas: Invalid value: 0: must be greater '
        "than or equal to 1, spec.maxReplicas: Invalid value: 0: must be greater than 0, spec.metrics: Forbidden: "
        "must specify at least one Object or External metric to support scaling to zero replicas]")
    value = hpa(maxReplicas=5)
    strategy.default(value)
    strategy.prepare_for_create(value)
    assert value["status"] == {"desiredReplicas": 0}
    assert row(strategy, value) == ["x", "Deployment/web", "cpu: <unknown>/80%", "1", 5, 0, "2m"]
    specs = [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                            "averageValue": "100Mi"}}},
             {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue",
                                                                           "averageValue": "10"}}},
             {"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value", "value": "5"}}}]
    statuses = [{"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "50Mi"}}}]
    assert format_metrics(specs, statuses) == "memory: 50Mi/100Mi, <unknown>/10 + 1 more..."


# --- PodDisruptionBudget ---------------------------------------------------------------------------------------
def pdb(**spec):
    return obj("PodDisruptionBudget", "policy/v1", spec={"selector": {"matchLabels": {"app": "web"}}, **spec})


def test_pdb_validation_status_and_table():
    strategy = PodDisruptionBudgetStrategy()
    assert message(strategy, pdb(maxUnavailable="150%")) == (
        'PodDisruptionBudget.policy "x" is invalid: spec.maxUnavailable: Invalid value: '
        'intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater than 100%')
    assert message(strategy, pdb(minAvailable=-1, unhealthyPodEvictionPolicy="Never")) == (
        'PodDisruptionBudget.policy "x" is invalid: [spec.minAvailable: Invalid value: -1: must be greater than or '
        'equal to 0, spec.unhealthyPodEvictionPolicy: Unsupported value: "Never": supported values: "AlwaysAllow", '
        '"IfHealthyBudget"]')
    assert "minAvailable and maxUnavailable cannot be both set" in message(strategy, pdb(minAvailable=1,
                                                                                      maxUnavailable=1))
    assert message(strategy, pdb(minAvailable="half")).endswith(
        "spec.minAvailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"half\"}: a valid percent "
        "string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
        "validation is '[0-9]+%')")
    named = pdb(minAvailable=1)
    named["metadata"]["name"] = "Upper_Case"  # PDB names are only path segments upstream
    assert message(strategy, named) == ""
    value = pdb(minAvailable=1)
    strategy.prepare_for_create(value)
    assert value["status"] == {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
    assert row(strategy, value) == ["x", "1", "N/A", 0, "2m"]
    assert row(strategy, pdb(maxUnavailable="25%"))[1:3] == ["N/A", "25%"]
    assert [c.name for c in strategy.table(NOW).columns] == ["Name", "Min Available", "Max Unavailable",
                                                             "Allowed Disruptions", "Age"]
    broken = {**value, "status": {"disruptionsAllowed": -1, "conditions": [{"type": "DisruptionAllowed",
                                                                            "status": "Maybe"}]}}
    problems = [f"{p.field}: {p.message()}" for p in strategy.validate_status_update(broken, value)]
    assert problems == ['status.conditions[0].status: Unsupported value: "Maybe": supported values: "False", '
                        '"True", "Unknown"', "status.conditions[0].lastTransitionTime: Required value: must be set",
                        "status.conditions[0].reason: Required value: must be set",
                        "status.disruptionsAllowed: Invalid value: -1: must be greater than or equal to 0"]


def test_strict_field_validation_knows_the_new_kinds():
    assert unknown_fields("PodDisruptionBudget", pdb(minAvailble=1)) == ["spec.minAvailble"]
    assert unknown_fields("HorizontalPodAutoscaler", hpa(maxReplicas=1, metrics=[{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilisation": 50}}}])) == \
        ["spec.metrics[0].resource.target.averageUtilisation"]
    assert unknown_fields("PriorityClass", priority_class(value=1, global_default=True)) == ["global_default"]
    assert unknown_fields("LimitRange", limit_range({"type": "Container", "maximum": {}})) == \
        ["spec.limits[0].maximum"]
    assert unknown_fields("NetworkPolicy", netpol(ingress=[{"form": []}])) == ["spec.ingress[0].form"]


# --- protobuf ----------------------------------------------------------------------------------------------------
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value) -> bytes:
    if isinstance(value, bool) or isinstance(value, int):
        return varint(number << 3) + varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version) + field(2, kind)
    return MAGIC + field(1, type_meta) + field(2, raw)


META = field(1, field(1, "x"))


def test_protobuf_pdb_priority_class_ingress_and_hpa():
    int_or_string = lambda text: field(1, 1) + field(3, text)  # noqa: E731 - IntOrString{type: String}
    selector = field(1, field(1, "app") + field(2, "web"))    # matchLabels entry
    body = decode_object(envelope("policy/v1", "PodDisruptionBudget", META + field(2, field(
        1, field(1, 0) + field(2, 0)) + field(2, selector))))  # minAvailable: 0 (an int, kept)
    assert body["spec"] == {"minAvailable": 0, "selector": {"matchLabels": {"app": "web"}}}
    body = decode_object(envelope("policy/v1", "PodDisruptionBudget", META + field(2, field(3, int_or_string("50%")))))
    assert body["spec"] == {"maxUnavailable": "50%"}
    body = decode_object(envelope("scheduling.k8s.io/v1", "PriorityClass",
                                  META + field(2, -5) + field(3, True) + field(4, "d")))
    assert (body["value"], body["globalDefault"], body["description"]) == (-5, True, "d")
    path = field(1, "/bar") + field(3, "Prefix") + field(2, field(4, field(1, "svc") + field(2, field(2, 8080))))
    rule = field(1, "foo.com") + field(2, field(1, field(1, path)))  # IngressRule{host, ingressRuleValue{http}}
    body = decode_object(envelope("networking.k8s.io/v1", "Ingress", META + field(2, field(3, rule))))
    assert body["spec"] == {"rules": [{"host": "foo.com", "http": {"paths": [{"path": "/bar", "pathType": "Prefix",
        "backend": {"service": {"name": "svc", "port": {"number": 8080}}}}]}}]}  # noqa: E128
    target = field(1, "AverageValue") + field(3, field(1, "500m"))  # averageValue: Quantity{string}
    metric = field(1, "Resource") + field(4, field(1, "cpu") + field(2, target))
    body = decode_object(envelope("autoscaling/v2", "HorizontalPodAutoscaler", META + field(2, field(
        1, field(1, "Deployment") + field(2, "web") + field(3, "apps/v1")) + field(3, 4) + field(4, metric))))
    assert body["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                            "maxReplicas": 4, "metrics": [{"type": "Resource", "resource": {
                                "name": "cpu", "target": {"type": "AverageValue", "averageValue": "500m"}}}]}


@pytest.mark.parametrize("api_version", ["v1", "apps/v1", "meta.k8s.io/v1"])
def test_protobuf_delete_options_of_any_group_version(api_version):
    options = field(1, 0) + field(2, field(1, "uid-1") + field(2, "42")) + field(4, "Foreground") + \
        field(5, "All") + field(6, False)
    body = decode_object(envelope(api_version, "DeleteOptions", options))
    assert body == {"apiVersion": api_version, "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                    "preconditions": {"uid": "uid-1", "resourceVersion": "42"}, "propagationPolicy": "Foreground",
                    "dryRun": ["All"]}
