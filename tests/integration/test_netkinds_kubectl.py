"""NetworkPolicy, Ingress, IngressClass, LimitRange, PriorityClass, HorizontalPodAutoscaler and
PodDisruptionBudget through real kubectl v1.35 against a `shipmate server` (no agent): discovery, create
(kubectl's typed create commands send protobuf), get (server-side tables), apply (client- and server-side,
strict field validation), delete, upstream's 422 messages, explain, quota counting."""
import json
import shutil

import pytest

from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


def apply(server, obj, *args, check=True):
    return server.kubectl("apply", *args, "-f", "-", input=json.dumps(obj), check=check)


def header(server, *args) -> list[str]:
    return server.kubectl("get", *args).stdout.splitlines()[0].split()


def test_api_resources_short_names_and_categories(module_server):
    lines = module_server.kubectl("api-resources", "-o", "wide").stdout.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    for name, short, api_version in (("networkpolicies", "netpol", "networking.k8s.io/v1"),
                                     ("ingresses", "ing", "networking.k8s.io/v1"),
                                     ("limitranges", "limits", "v1"),
                                     ("priorityclasses", "pc", "scheduling.k8s.io/v1"),
                                     ("horizontalpodautoscalers", "hpa", "autoscaling/v2"),
                                     ("poddisruptionbudgets", "pdb", "policy/v1")):
        assert f" {short} " in rows[name] and api_version in rows[name], rows[name]
    assert "ingressclasses" in rows and "networking.k8s.io/v1" in rows["ingressclasses"]
    assert rows["horizontalpodautoscalers"].rstrip().endswith("all")  # CATEGORIES
    assert not rows["poddisruptionbudgets"].rstrip().endswith("all")
    namespaced = module_server.kubectl("api-resources", "--namespaced=false", "-o", "name").stdout.split()
    assert "priorityclasses.scheduling.k8s.io" in namespaced and "ingressclasses.networking.k8s.io" in namespaced


def test_network_policy(module_server):
    srv = module_server
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "db"},
              "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                    "ports": [{"port": 5432}]}]}}
    assert "networkpolicy.networking.k8s.io/db created" in apply(srv, policy).stdout
    assert header(srv, "netpol") == ["NAME", "POD-SELECTOR", "AGE"]
    assert srv.kubectl("get", "netpol", "db").stdout.splitlines()[1].split()[:2] == ["db", "app=db"]
    stored = json.loads(srv.kubectl("get", "networkpolicy", "db", "-o", "json").stdout)
    assert stored["spec"]["policyTypes"] == ["Ingress"]
    assert stored["spec"]["ingress"][0]["ports"] == [{"port": 5432, "protocol": "TCP"}]
    assert stored["metadata"]["generation"] == 1
    policy["spec"]["egress"] = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]
    policy["spec"]["policyTypes"] = ["Ingress", "Egress"]
    assert "configured" in apply(srv, policy).stdout
    assert json.loads(srv.kubectl("get", "netpol", "db", "-o", "json").stdout)["metadata"]["generation"] == 2
    bad = {**policy, "metadata": {"name": "bad"},
           "spec": {"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]}}
    result = apply(srv, bad, check=False)
    assert result.returncode != 0
    assert 'The NetworkPolicy "bad" is invalid: spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": ' \
           'supported values: "TCP", "UDP", "SCTP"' in result.stderr
    assert "deleted" in srv.kubectl("delete", "netpol", "db").stdout


def test_ingress_and_ingress_class(module_server):
    srv = module_server
    ingress_class = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
                     "spec": {"controller": "k8s.io/ingress-nginx",
                              "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters",
                                             "name": "external-lb"}}}
    apply(srv, ingress_class)
    assert header(srv, "ingressclass") == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    assert srv.kubectl("get", "ingressclass", "nginx").stdout.splitlines()[1].split()[:3] == \
        ["nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external-lb"]
    ingress_class["spec"]["controller"] = "k8s.io/other"
    result = apply(srv, ingress_class, check=False)
    assert 'spec.controller: Invalid value: "k8s.io/other": field is immutable' in result.stderr
    created = srv.kubectl("create", "ingress", "web", "--class=nginx", "--rule=foo.com/bar*=svc1:8080,tls=my-cert",
                          "--rule=bar.com/=svc2:http", "-v=8")
    assert "Content-Type: application/vnd.kubernetes.protobuf" in created.stderr
    assert "ingress.networking.k8s.io/web created" in created.stdout
    assert header(srv, "ing") == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert srv.kubectl("get", "ing", "web").stdout.splitlines()[1].split()[:5] == \
        ["web", "nginx", "foo.com,bar.com", "80,", "443"]
    stored = json.loads(srv.kubectl("get", "ingress", "web", "-o", "json").stdout)
    assert stored["spec"]["rules"][0] == {"host": "foo.com", "http": {"paths": [{
        "path": "/bar", "pathType": "Prefix", "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}]}}
    assert stored["spec"]["rules"][1]["http"]["paths"][0]["backend"]["service"]["port"] == {"name": "http"}
    assert stored["status"] == {"loadBalancer": {}}
    bad = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bad"},
           "spec": {"rules": [{"host": "foo.com", "http": {"paths": [
               {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "svc", "port": {}}}}]}}]}}
    result = apply(srv, bad, check=False)
    assert 'The Ingress "bad" is invalid: spec.rules[0].http.paths[0].backend: Required value: port name or number ' \
           "is required" in result.stderr
    srv.kubectl("delete", "ingress", "web")
    srv.kubectl("delete", "ingressclass", "nginx")


def test_limit_range(module_server):
    srv = module_server
    limits = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults"},
              "spec": {"limits": [{"type": "Container", "max": {"cpu": "2", "memory": "1Gi"},
                                   "min": {"memory": "64Mi"}, "default": {"cpu": "500m"}}]}}
    apply(srv, limits)
    assert header(srv, "limits") == ["NAME", "CREATED", "AT"]
    item = json.loads(srv.kubectl("get", "limitrange", "defaults", "-o", "json").stdout)["spec"]["limits"][0]
    assert item["default"] == {"cpu": "500m", "memory": "1Gi"}
    assert item["defaultRequest"] == {"cpu": "500m", "memory": "1Gi"}
    bad = {**limits, "metadata": {"name": "bad"}, "spec": {"limits": [{"type": "Volume", "max": {"cpu": "1"}}]}}
    result = apply(srv, bad, check=False)
    assert 'The LimitRange "bad" is invalid: spec.limits[0].type: Invalid value: "Volume": must be a standard limit ' \
           "type or fully qualified" in result.stderr
    described = srv.kubectl("describe", "limits", "defaults").stdout
    assert "Container" in described and "500m" in described
    srv.kubectl("delete", "limits", "defaults")


def test_priority_classes(module_server):
    srv = module_server
    table = srv.kubectl("get", "pc").stdout.splitlines()
    assert table[0].split() == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["system-cluster-critical"][1:3] == ["2000000000", "false"]
    assert rows["system-node-critical"][1:3] == ["2000001000", "false"]
    created = srv.kubectl("create", "priorityclass", "high", "--value=1000", "--global-default=true",
                          "--description=important", "-v=8")
    assert "Content-Type: application/vnd.kubernetes.protobuf" in created.stderr
    assert srv.kubectl("get", "pc", "high").stdout.splitlines()[1].split()[1:3] == ["1000", "true"]
    second = srv.kubectl("create", "priorityclass", "other", "--value=5", "--global-default=true", check=False)
    assert 'priorityclasses.scheduling.k8s.io "other" is forbidden: PriorityClass high is already marked as ' \
           "default. Only one default can exist" in second.stderr
    too_high = srv.kubectl("create", "priorityclass", "huge", "--value=1000000001", check=False)
    assert 'failed to create priorityclass: PriorityClass.scheduling.k8s.io "huge" is invalid: value: Forbidden: ' \
           "maximum allowed value of a user defined priority is 1000000000" in too_high.stderr
    reserved = srv.kubectl("delete", "pc", "system-node-critical", check=False)
    assert 'priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is a system priority ' \
           "class and cannot be deleted" in reserved.stderr
    changed = srv.kubectl("patch", "pc", "high", "-p", '{"value": 7}', check=False)
    assert "value: Forbidden: may not be changed in an update." in changed.stderr
    srv.kubectl("delete", "pc", "high")
    assert "priorityclass.scheduling.k8s.io/other created" in \
        srv.kubectl("create", "priorityclass", "other", "--value=5", "--global-default=true").stdout
    srv.kubectl("delete", "pc", "other")


def test_horizontal_pod_autoscaler(module_server):
    srv = module_server
    srv.kubectl("create", "deployment", "hpa-web", "--image=127.0.0.1:5000/library/busybox:latest")
    created = srv.kubectl("autoscale", "deployment", "hpa-web", "--min=2", "--max=5", "--cpu-percent=70", "-v=8")
    assert "Content-Type: application/vnd.kubernetes.protobuf" in created.stderr
    assert "horizontalpodautoscaler.autoscaling/hpa-web autoscaled" in created.stdout
    assert header(srv, "hpa") == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    cells = srv.kubectl("get", "hpa", "hpa-web").stdout.splitlines()[1].split()
    assert cells[:6] == ["hpa-web", "Deployment/hpa-web", "cpu:", "<unknown>/70%", "2", "5"]
    assert cells[6] in ("0", "1")  # status.currentReplicas: 0 until the HPA controller's first pass reads 1
    stored = json.loads(srv.kubectl("get", "hpa", "hpa-web", "-o", "json").stdout)
    assert stored["apiVersion"] == "autoscaling/v2"
    assert stored["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 70}}}]
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "bad"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hpa-web"},
                    "minReplicas": 4, "maxReplicas": 2}}
    result = apply(srv, hpa, check=False)
    assert 'The HorizontalPodAutoscaler "bad" is invalid: spec.maxReplicas: Invalid value: 2: must be greater than ' \
           "or equal to `minReplicas`" in result.stderr
    hpa["metadata"]["name"], hpa["spec"]["maxReplicas"] = "ssa", 6
    assert "serverside-applied" in apply(srv, hpa, "--server-side").stdout
    ssa = json.loads(srv.kubectl("get", "hpa", "ssa", "-o", "json").stdout)
    assert ssa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80  # defaulted
    assert "horizontalpodautoscalers.autoscaling" in \
        srv.kubectl("api-resources", "--categories=all", "-o", "name").stdout.split()
    assert "horizontalpodautoscaler.autoscaling/ssa" in srv.kubectl("get", "all", "-o", "name").stdout.split()
    srv.kubectl("delete", "hpa", "hpa-web", "ssa")
    srv.kubectl("delete", "deployment", "hpa-web")


def test_pod_disruption_budget_objects_explain_and_strict_fields(module_server):
    srv = module_server
    created = srv.kubectl("create", "pdb", "web", "--selector=app=web", "--min-available=1", "-v=8")
    assert "Content-Type: application/vnd.kubernetes.protobuf" in created.stderr
    assert header(srv, "pdb") == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert srv.kubectl("get", "pdb", "web").stdout.splitlines()[1].split()[:4] == ["web", "1", "N/A", "0"]
    status = wait_for(lambda: json.loads(srv.kubectl("get", "pdb", "web", "-o", "json").stdout)["status"].get(
        "conditions") and json.loads(srv.kubectl("get", "pdb", "web", "-o", "json").stdout)["status"],
        what="the disruption controller's status")
    assert (status["observedGeneration"], status["expectedPods"], status["disruptionsAllowed"]) == (1, 0, 0)
    assert status["conditions"][0]["type"] == "DisruptionAllowed" and \
        status["conditions"][0]["reason"] == "InsufficientPods"
    bad = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "bad"},
           "spec": {"maxUnavailable": "150%", "selector": {"matchLabels": {"app": "web"}}}}
    result = apply(srv, bad, check=False)
    assert 'The PodDisruptionBudget "bad" is invalid: spec.maxUnavailable: Invalid value: ' \
           'intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater than 100%' in result.stderr
    typo = {**bad, "spec": {"minAvailble": 1, "selector": {}}}
    result = apply(srv, typo, check=False)
    assert 'strict decoding error: unknown field "spec.minAvailble"' in result.stderr
    explained = srv.kubectl("explain", "pdb.spec").stdout
    assert "GROUP:      policy" in explained and "maxUnavailable" in explained and "IntOrString" in explained
    assert "averageUtilization" in srv.kubectl("explain", "hpa.spec.metrics.resource.target").stdout
    assert "podSelector" in srv.kubectl("explain", "networkpolicy.spec").stdout
    srv.kubectl("delete", "pdb", "web")


def test_quota_counts_the_new_kinds(module_server):
    srv = module_server
    srv.kubectl("create", "namespace", "counted")
    srv.kubectl("create", "quota", "objects", "-n", "counted",
                "--hard=count/poddisruptionbudgets.policy=1,count/networkpolicies.networking.k8s.io=1")
    srv.kubectl("create", "pdb", "one", "-n", "counted", "--selector=app=a", "--min-available=1")
    second = srv.kubectl("create", "pdb", "two", "-n", "counted", "--selector=app=b", "--min-available=1",
                         check=False)
    assert 'poddisruptionbudgets.policy "two" is forbidden: exceeded quota: objects, requested: ' \
           "count/poddisruptionbudgets.policy=1, used: count/poddisruptionbudgets.policy=1, limited: " \
           "count/poddisruptionbudgets.policy=1" in second.stderr
