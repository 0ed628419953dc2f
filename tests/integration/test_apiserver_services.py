"""Services, Endpoints, EndpointSlices, ConfigMaps and Secrets through the real kubectl v1.35 against a
server subprocess with its own data dir (no agent: pod readiness is patched through the API)."""
import json
import shutil
import subprocess

import pytest

from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


def make_pod(server, name, ip, ready=True, labels=None, port=8080):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": "web"}},
           "spec": {"nodeName": "node-a",
                    "containers": [{"name": "c", "image": "busybox", "ports": [{"name": "http", "containerPort": port}]}]}}
    server.kubectl("apply", "-f", "-", input=json.dumps(pod))
    set_ready(server, name, ip, ready)


def set_ready(server, name, ip, ready):
    status = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                         "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    server.kubectl("patch", "pod", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))


def get_json(server, *args):
    return json.loads(server.kubectl("get", *args, "-o", "json").stdout)


def test_node_port_requests_conflicts_and_range(server):
    out = server.kubectl("create", "service", "nodeport", "x", "--tcp=80:8080", "--node-port=30008").stdout
    assert "service/x created" in out
    taken = server.kubectl("create", "service", "nodeport", "y", "--tcp=80:8080", "--node-port=30008", check=False)
    assert taken.returncode != 0
    assert 'Service "y" is invalid: spec.ports[0].nodePort: Invalid value: 30008: provided port is already ' \
           "allocated" in taken.stderr
    low = server.kubectl("create", "service", "nodeport", "z", "--tcp=80:8080", "--node-port=29999", check=False)
    assert 'Service "z" is invalid: spec.ports[0].nodePort: Invalid value: 29999: provided port is not in the ' \
           "valid range. The range of valid ports is 30000-32767" in low.stderr
    status, body = server.request("POST", "/api/v1/namespaces/default/services",
                                  {"metadata": {"name": "raw"}, "spec": {"type": "NodePort",
                                                                         "ports": [{"port": 80, "nodePort": 30008}]}})
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.ports[0].nodePort",
                                          "message": "Invalid value: 30008: provided port is already allocated"}]
    # released on deletion and on a type change
    server.kubectl("patch", "service", "x", "-p", '{"spec":{"type":"ClusterIP"}}')
    assert "nodePort" not in get_json(server, "service", "x")["spec"]["ports"][0]
    server.kubectl("create", "service", "nodeport", "y", "--tcp=80:8080", "--node-port=30008")
    server.kubectl("delete", "service", "y")
    server.kubectl("create", "service", "nodeport", "y2", "--tcp=80:8080", "--node-port=30008")


def test_allocations_survive_restart_and_cluster_ip_conflicts(server):
    server.kubectl("create", "service", "loadbalancer", "lb", "--tcp=5678:8080")
    lb = get_json(server, "service", "lb")
    node_port = lb["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767 and lb["status"] == {"loadBalancer": {}}
    server.kubectl("create", "service", "clusterip", "fixed", "--tcp=80:80", "--clusterip=10.96.0.50")
    server.stop()
    server.start()
    again = server.kubectl("create", "service", "nodeport", "dup", "--tcp=80:80", f"--node-port={node_port}",
                           check=False)
    assert f"Invalid value: {node_port}: provided port is already allocated" in again.stderr
    twin = server.kubectl("create", "service", "clusterip", "twin", "--tcp=80:80", "--clusterip=10.96.0.50",
                          check=False)
    assert 'spec.clusterIPs: Invalid value: []string{"10.96.0.50"}: failed to allocate IP 10.96.0.50: provided IP ' \
           "is already allocated" in twin.stderr
    # The same Service again, its own address requested: it exists (upstream checks the name first).
    same = server.kubectl("create", "service", "clusterip", "fixed", "--tcp=80:80", "--clusterip=10.96.0.50",
                          check=False)
    assert 'services "fixed" already exists' in same.stderr and "modified" not in same.stderr
    kubernetes = get_json(server, "service", "kubernetes")
    assert kubernetes["spec"]["clusterIP"] == "10.96.0.1"
    assert kubernetes["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP",
                                            "targetPort": server.port}]
    endpoints = get_json(server, "endpoints", "kubernetes")
    assert endpoints["subsets"][0]["ports"][0]["port"] == server.port
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}]


def test_concurrent_creates_get_distinct_node_ports(server):
    procs = [subprocess.Popen(["kubectl", "--kubeconfig", server.kubeconfig, "--cache-dir", server.cache_dir, "create",
                               "service", "nodeport", f"c{i}", "--tcp=80:80", "--node-port=31000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(8)]
    procs += [subprocess.Popen(["kubectl", "--kubeconfig", server.kubeconfig, "--cache-dir", server.cache_dir,
                                "create", "service", "nodeport", f"d{i}", "--tcp=80:80"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(16)]
    codes = [p.wait(30) for p in procs]
    assert codes[:8].count(0) == 1 and codes[8:] == [0] * 16
    services = get_json(server, "services")["items"]
    ports = [s["spec"]["ports"][0]["nodePort"] for s in services if s["spec"]["type"] == "NodePort"]
    ips = [s["spec"]["clusterIP"] for s in services]
    assert len(ports) == 17 and len(set(ports)) == 17 and len(set(ips)) == len(ips)


def test_expose_and_endpoints_follow_pods(server):
    for index in (1, 2, 3):
        make_pod(server, f"web-{index}", f"10.244.0.{10 + index}", ready=index != 3)
    server.kubectl("expose", "pod", "web-1", "--name=web", "--port=80", "--target-port=http", "--selector=app=web")
    table = server.kubectl("get", "svc", "web", "-o", "wide").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    assert table[1].split()[1:5] == ["ClusterIP", get_json(server, "svc", "web")["spec"]["clusterIP"], "<none>",
                                     "80/TCP"] and table[1].split()[6] == "app=web"

    def endpoints():
        subsets = get_json(server, "endpoints", "web").get("subsets") or [{}]
        return ([a["ip"] for a in subsets[0].get("addresses", [])],
                [a["ip"] for a in subsets[0].get("notReadyAddresses", [])])

    wait_for(lambda: endpoints() == (["10.244.0.11", "10.244.0.12"], ["10.244.0.13"]), what="endpoints")
    subset = get_json(server, "endpoints", "web")["subsets"][0]
    assert subset["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert subset["addresses"][0]["targetRef"]["name"] == "web-1" and subset["addresses"][0]["nodeName"] == "node-a"
    set_ready(server, "web-3", "10.244.0.13", True)
    wait_for(lambda: endpoints() == (["10.244.0.11", "10.244.0.12", "10.244.0.13"], []), what="readiness")
    server.kubectl("delete", "pod", "web-1", "--grace-period=0", "--force")
    server.kubectl("label", "pod", "web-2", "app=other", "--overwrite")
    wait_for(lambda: endpoints() == (["10.244.0.13"], []), what="pod deletion and relabel")

    def slices():
        return get_json(server, "endpointslices", "-l", "kubernetes.io/service-name=web")["items"]
    wait_for(lambda: [e["addresses"] for s in slices() for e in s["endpoints"] or []] == [["10.244.0.13"]],
             what="slice")
    endpoint_slice = slices()[0]
    assert endpoint_slice["metadata"]["generateName"] == "web-"
    assert endpoint_slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    assert endpoint_slice["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert endpoint_slice["endpoints"][0]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    listing = server.kubectl("get", "svc,ep,endpointslices").stdout
    assert "endpoints/web" in listing and "10.244.0.13:8080" in listing
    assert "NAME                                        ADDRESSTYPE   PORTS   ENDPOINTS" in listing
    server.kubectl("patch", "svc", "web", "-p", '{"spec":{"selector":{"app":"other"}}}')
    wait_for(lambda: endpoints() == (["10.244.0.12"], []), what="selector change")
    server.kubectl("delete", "svc", "web")
    wait_for(lambda: not slices() and server.kubectl("get", "endpoints", "web", check=False).returncode != 0,
             what="cleanup after service deletion")


def test_configmap_and_secret_crud(server):
    server.kubectl("create", "configmap", "cfg", "--from-literal=a=b", "--from-literal=c.d=e")
    assert server.kubectl("get", "configmap", "cfg").stdout.split()[:5] == ["NAME", "DATA", "AGE", "cfg", "2"]
    assert "c.d:\n----\ne" in server.kubectl("describe", "configmap", "cfg").stdout
    server.kubectl("create", "secret", "generic", "s", "--from-literal=user=admin")
    secret = get_json(server, "secret", "s")
    assert secret["type"] == "Opaque" and secret["data"] == {"user": "YWRtaW4="}
    assert server.kubectl("get", "secret", "s").stdout.split()[:5] == ["NAME", "TYPE", "DATA", "AGE", "s"]
    assert "user:  5 bytes" in server.kubectl("describe", "secret", "s").stdout
    server.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2"}, "stringData": {"k": "v"}, "immutable": True}))
    assert get_json(server, "secret", "s2")["data"] == {"k": "dg=="}
    changed = server.kubectl("patch", "secret", "s2", "-p", '{"data":{"k":"eA=="}}', check=False)
    assert "data: Forbidden: field is immutable when `immutable` is set" in changed.stderr
    status, body = server.request("POST", "/api/v1/namespaces/default/configmaps",
                                  {"metadata": {"name": "k"}, "data": {"a b": "1"}})
    assert status == 422 and body["details"]["causes"][0]["field"] == "data[a b]"
    server.kubectl("delete", "configmap", "cfg")
    server.kubectl("delete", "secret", "s")
    assert server.kubectl("get", "configmap", "cfg", check=False).returncode != 0


def test_endpoints_of_selector_less_services_are_mirrored(server):
    server.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
         "spec": {"ports": [{"name": "pg", "port": 5432}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext"},
         "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"name": "pg", "port": 5432}]}]}]}))

    def mirrored():
        return get_json(server, "endpointslices", "-l", "kubernetes.io/service-name=ext")["items"]
    slices = wait_for(mirrored, what="mirrored slice")
    assert slices[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslicemirroring-controller.k8s.io"
    assert slices[0]["endpoints"] == [{"addresses": ["192.0.2.10"], "conditions": {"ready": True}}]
    server.kubectl("delete", "service", "ext")
    wait_for(lambda: not mirrored(), what="mirrored slice removal")
