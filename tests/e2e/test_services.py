"""Issue 4 acceptance: Services through the agent's proxy and cluster DNS, real kubectl. The proxy's tests run
with the agent in each proxy mode (issue 20: nftables, and iptables for legacy hosts).

Network rule: traffic only goes from pods this test creates (commands run inside the client
pod's container through CRI ExecSync, so its netns, resolv.conf and busybox) to service IPs, pod
IPs and the node's own address (NodePorts). A service IP is only ever used once its rules are
in the node's rules, so nothing is routed off the node.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cri.client import CRIClient
from cri.gen import api_pb2
from tests.e2e import proxy_rules
from tests.e2e.cluster import TEST_IMAGE, Kubectl, pod_manifest, unique_name
from tests.e2e.proxy_rules import programmed
from tests.support import wait_for

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT_PID_FILE = "/run/shipmate/agent.pid"
CLUSTER_DNS = "10.96.0.10"   # the kube-dns Service of the DNS addon (shipmate.addons), as kubeadm's
NODE_PORT = 30008
# Each backend answers with its own hostname (the pod name), and /cgi-bin/peer with the client address it saw.
BACKEND_COMMAND = ["sh", "-c", "mkdir -p /www/cgi-bin && hostname > /www/index.html"
                   " && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/peer"
                   " && chmod +x /www/cgi-bin/peer && exec httpd -f -p 8080 -h /www"]
CLIENT_COMMAND = ["sh", "-c", "exec sleep 3600"]


# ------------------------------------------------------------------------------ helpers
def backend(name: str, namespace: str, app: str) -> dict[str, Any]:
    manifest = pod_manifest(name, namespace, [{"name": "web", "image": TEST_IMAGE, "command": BACKEND_COMMAND,
                                              "ports": [{"name": "http", "containerPort": 8080}]}],
                            terminationGracePeriodSeconds=1)
    manifest["metadata"]["labels"] = {"app": app}
    return manifest


def client(name: str, namespace: str) -> dict[str, Any]:
    return pod_manifest(name, namespace, [{"name": "client", "image": TEST_IMAGE, "command": CLIENT_COMMAND}],
                        terminationGracePeriodSeconds=1)


def service(name: str, namespace: str, app: str, service_type: str = "ClusterIP", **spec: Any) -> dict[str, Any]:
    port: dict[str, Any] = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
    if "node_port" in spec:
        port["nodePort"] = spec.pop("node_port")
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": service_type, "selector": {"app": app}, "ports": [port], **spec}}


def running(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    pod = kubectl.json("get", "pod", name, "-n", namespace)
    statuses = pod.get("status", {}).get("containerStatuses") or []
    ok = pod["status"].get("phase") == "Running" and statuses and all(s.get("ready") for s in statuses)
    return pod if ok and pod["status"].get("podIP") else None


def start_pods(kubectl: Kubectl, manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for manifest in manifests:
        kubectl.apply(manifest)
    return [wait_for(lambda m=m: running(kubectl, m["metadata"]["namespace"], m["metadata"]["name"]),
                     timeout=30, what=f"pod {m['metadata']['name']} running and ready") for m in manifests]


def exec_in(pod: dict[str, Any], script: str, timeout: int = 60) -> str:
    """Runs `sh -c script` in the pod's first running container through CRI; returns stdout."""
    uid = pod["metadata"]["uid"]

    async def run() -> api_pb2.ExecSyncResponse:
        async with CRIClient() as runtime:
            found = await runtime.list_containers(api_pb2.ContainerFilter(
                label_selector={"io.kubernetes.pod.uid": uid},
                state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING)))
            assert found, f"no running container for pod {pod['metadata']['name']}"
            return await runtime.exec_sync(found[0].id, ["sh", "-c", script], timeout)
    response = asyncio.run(run())
    return response.stdout.decode()


def fetch_many(pod: dict[str, Any], url: str, count: int, pause: float = 0) -> list[str]:
    """`count` HTTP GETs from inside `pod`; one line per request: the answer or FAIL.
    (busybox wget's own -T timeout segfaults in this static build: `timeout` bounds it instead.)"""
    sleep = f"; sleep {pause}" if pause else ""
    script = f"for i in $(seq {count}); do timeout 3 wget -q -O - {url} 2>/dev/null || echo FAIL{sleep}; done"
    out = exec_in(pod, script, timeout=count * 3 + 10)
    return out.split()


def create_service(kubectl: Kubectl, manifest: dict[str, Any], endpoints: int) -> dict[str, Any]:
    kubectl.apply(manifest)
    meta = manifest["metadata"]
    svc = kubectl.json("get", "service", meta["name"], "-n", meta["namespace"])
    wait_for(lambda: programmed(svc, endpoints), timeout=20,
             what=f"rules for service {meta['name']} with {endpoints} endpoints")
    return svc


def node_ip(kubectl: Kubectl) -> str:
    node = kubectl.json("get", "nodes")["items"][0]
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


# ------------------------------------------------------------------------------ fixtures
def agent_pid() -> int | None:
    try:
        with open(AGENT_PID_FILE) as handle:
            pid = int(handle.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def restart_agent_in_mode(mode: str | None) -> None:
    """Stops the agent (SIGTERM: pods and rules stay) and starts it again through `make up`'s script with
    --proxy-mode `mode` (None: the agent's own choice)."""
    pid = agent_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: agent_pid() is None, timeout=30, what="the agent stopped")
    start_agent(mode)


def start_agent(mode: str | None) -> None:
    """`make up`'s script starts the agent again when its pid is gone (and does nothing otherwise), with
    --proxy-mode `mode` (None: the agent's own choice)."""
    env = {k: v for k, v in os.environ.items() if k != "SHIPMATE_PROXY_MODE"}
    if mode:
        env["SHIPMATE_PROXY_MODE"] = mode
    subprocess.run(["bash", os.path.join(REPO, "hack", "up.sh")], check=True, capture_output=True, timeout=180,
                   env=env)


def agent_forced_mode() -> bool:
    pid = agent_pid()
    return pid is not None and b"--proxy-mode" in open(f"/proc/{pid}/cmdline", "rb").read()


@pytest.fixture(scope="module", params=[proxy_rules.NFT_MODE, proxy_rules.IPTABLES_MODE])
def proxy_mode(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[str]:
    """The agent runs in this proxy mode for the test (restarted with --proxy-mode when it runs in the other);
    afterwards it goes back to its own choice."""
    mode = request.param
    if proxy_rules.current_mode() != mode:
        restart_agent_in_mode(mode)
        wait_for(lambda: proxy_rules.current_mode() == mode, timeout=60, what=f"the proxy in {mode} mode")
    yield mode
    if agent_forced_mode():
        restart_agent_in_mode(None)


@pytest.fixture
def namespaces(kubectl: Kubectl) -> Iterator[Callable[[], str]]:
    """Makes namespaces on demand (`namespaces()`), deleted with what is in them afterwards."""
    created: list[str] = []

    def make() -> str:
        name = unique_name("e-svc")
        kubectl.run("create", "namespace", name)
        created.append(name)
        return name
    yield make
    for name in created:
        kubectl.run("delete", "services", "--all", "-n", name, check=False)
        kubectl.run("delete", "pods", "--all", "-n", name, "--grace-period=1", "--wait=true", check=False, timeout=120)
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def web(kubectl: Kubectl, namespaces: Callable[[], str]) -> dict[str, Any]:
    """A namespace with 3 backends (app=web) and a client pod."""
    namespace = namespaces()
    pods = start_pods(kubectl, [backend(f"web-{i}", namespace, "web") for i in range(3)]
                      + [client("client", namespace)])
    return {"namespace": namespace, "backends": pods[:3], "client": pods[3]}


# ------------------------------------------------------------------------------ tests
def test_cluster_ip_reaches_all_backends_follows_scaling_and_goes_away(kubectl: Kubectl, proxy_mode: str,
                                                                         web: dict) -> None:
    namespace, client_pod = web["namespace"], web["client"]
    svc = create_service(kubectl, service("web", namespace, "web"), endpoints=3)
    url = f"http://{svc['spec']['clusterIP']}:80/"
    answers = fetch_many(client_pod, url, 60)
    assert Counter(answers).keys() == {"web-0", "web-1", "web-2"}, Counter(answers)
    # Hairpin: a backend reaching the service also reaches itself (masqueraded back over its port).
    assert set(fetch_many(web["backends"][0], url, 30)) == {"web-0", "web-1", "web-2"}
    assert proxy_rules.uniform_pick(svc) == proxy_rules.expected_uniform_pick(proxy_mode)

    # 3 → 1: the rules follow the EndpointSlice.
    kubectl.run("delete", "pod", "web-1", "web-2", "-n", namespace, "--grace-period=1", "--wait=true", timeout=60)
    wait_for(lambda: programmed(svc, 1), timeout=20, what="rules with 1 endpoint")
    assert set(fetch_many(client_pod, url, 10)) == {"web-0"}
    # 1 → 3
    start_pods(kubectl, [backend(f"web-{i}", namespace, "web") for i in (3, 4)])
    wait_for(lambda: programmed(svc, 3), timeout=20, what="rules with 3 endpoints again")
    assert set(fetch_many(client_pod, url, 60)) == {"web-0", "web-3", "web-4"}

    # Deleting the service removes its chains (no traffic to its old IP: it would leave the node).
    kubectl.run("delete", "service", "web", "-n", namespace)
    wait_for(lambda: proxy_rules.service_rules(svc) is None, timeout=20, what="the deleted service's rules gone")
    assert not proxy_rules.mentions(svc["spec"]["clusterIP"])


def test_service_without_endpoints_rejects(kubectl: Kubectl, proxy_mode: str, web: dict) -> None:
    manifest = service("nobody", web["namespace"], "no-such-app")
    kubectl.apply(manifest)
    svc = kubectl.json("get", "service", "nobody", "-n", web["namespace"])
    ip = svc["spec"]["clusterIP"]
    wait_for(lambda: proxy_rules.rejects(svc), timeout=20, what="REJECT rule for a service without endpoints")
    out = exec_in(web["client"], f"timeout 3 wget -q -O - http://{ip}:80/ 2>&1; echo rc=$?")
    assert "refused" in out.lower() and "rc=1" in out, out


def test_node_port_and_load_balancer(kubectl: Kubectl, proxy_mode: str, web: dict) -> None:
    namespace, client_pod, address = web["namespace"], web["client"], node_ip(kubectl)
    create_service(kubectl, service("web-np", namespace, "web", "NodePort", node_port=NODE_PORT), endpoints=3)
    answers = fetch_many(client_pod, f"http://{address}:{NODE_PORT}/", 30)
    assert set(answers) == {"web-0", "web-1", "web-2"}, Counter(answers)
    # kube-proxy's localhost NodePorts (route_localnet), from the node itself over loopback.
    with urllib.request.urlopen(f"http://127.0.0.1:{NODE_PORT}/", timeout=5) as response:
        assert response.read().decode().strip() in {"web-0", "web-1", "web-2"}

    # `kubectl expose` builds the selector from the pod's labels (app=web): all three back it.
    kubectl.run("expose", "pod", "web-0", "-n", namespace, "--name", "web-lb", "--type", "LoadBalancer",
                "--port", "80", "--target-port", "8080")
    lb = kubectl.json("get", "service", "web-lb", "-n", namespace)
    wait_for(lambda: programmed(lb, 3), timeout=20, what="rules for the LoadBalancer service")
    node_port = lb["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    answers = fetch_many(client_pod, f"http://{address}:{node_port}/", 30)
    assert set(answers) == {"web-0", "web-1", "web-2"}, Counter(answers)
    # No cloud: the server's ServiceLB controller announces the node's address (EXTERNAL-IP), and the
    # proxy answers <EXTERNAL-IP>:<port> (issue 17 item 5).
    wait_for(lambda: kubectl.json("get", "service", "web-lb", "-n", namespace)["status"].get("loadBalancer", {})
             .get("ingress") == [{"ip": address, "ipMode": "VIP"}], timeout=20, what="the LoadBalancer ingress")
    columns = kubectl.run("get", "service", "web-lb", "-n", namespace, "--no-headers").stdout.split()
    assert columns[3] == address, columns
    answers = fetch_many(client_pod, f"http://{address}:80/", 20)
    assert set(answers) == {"web-0", "web-1", "web-2"}, Counter(answers)
    with urllib.request.urlopen(f"http://{address}:80/", timeout=5) as response:
        assert response.read().decode().strip() in {"web-0", "web-1", "web-2"}
    assert set(fetch_many(client_pod, f"http://{lb['spec']['clusterIP']}/", 10)) <= {"web-0", "web-1", "web-2"}


def test_session_affinity_pins_a_client(kubectl: Kubectl, proxy_mode: str, web: dict) -> None:
    svc = create_service(kubectl, service("sticky", web["namespace"], "web", sessionAffinity="ClientIP"),
                         endpoints=3)
    answers = fetch_many(web["client"], f"http://{svc['spec']['clusterIP']}/", 20)
    assert len(set(answers)) == 1 and answers[0].startswith("web-"), Counter(answers)
    assert proxy_rules.remembers_clients(svc, seconds=10800)


def test_external_traffic_policy_local_keeps_the_client_address(kubectl: Kubectl, proxy_mode: str,
                                                                  web: dict) -> None:
    """A NodePort with externalTrafficPolicy Cluster masquerades what it forwards; with Local (endpoints on
    this node) the backend sees the client's own address, as on a kube-proxy node."""
    namespace, client_pod, address = web["namespace"], web["client"], node_ip(kubectl)
    client_ip = client_pod["status"]["podIP"]
    seen = {}
    for policy, node_port in (("Cluster", NODE_PORT + 1), ("Local", NODE_PORT + 2)):
        create_service(kubectl, service(f"etp-{policy.lower()}", namespace, "web", "NodePort", node_port=node_port,
                                        externalTrafficPolicy=policy), endpoints=3)
        # httpd listens on a dual-stack socket: it sees IPv4 peers as [::ffff:a.b.c.d].
        seen[policy] = {peer.removeprefix("[::ffff:").removesuffix("]")
                        for peer in fetch_many(client_pod, f"http://{address}:{node_port}/cgi-bin/peer", 5)}
    assert seen["Local"] == {client_ip}, seen
    assert client_ip not in seen["Cluster"] and "FAIL" not in seen["Cluster"], seen


def test_cluster_dns_is_kube_system_pods_behind_kube_dns(kubectl: Kubectl) -> None:
    """As kubeadm installs CoreDNS: Deployment kube-system/coredns, pods labelled k8s-app=kube-dns, Running and
    Ready, behind the Service kube-dns at the kubelets' clusterDNS with upstream's port names."""
    service = kubectl.json("get", "service", "-n", "kube-system", "kube-dns")
    assert service["spec"]["clusterIP"] == CLUSTER_DNS
    assert {(p["name"], p["port"], p["protocol"]) for p in service["spec"]["ports"]} == \
        {("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}
    deployment = kubectl.json("get", "deployment", "-n", "kube-system", "coredns")
    assert deployment["status"].get("availableReplicas", 0) >= 1, deployment["status"]
    pods = kubectl.json("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert running and all(p["spec"]["serviceAccountName"] == "coredns" for p in running), pods
    endpoints = kubectl.json("get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns")
    addresses = {a for s in endpoints["items"] for e in s.get("endpoints") or () for a in e["addresses"]
                 if (e.get("conditions") or {}).get("ready")}
    assert {p["status"]["podIP"] for p in running} <= addresses, (addresses, running)


def test_dns_names_in_and_across_namespaces(kubectl: Kubectl, web: dict, namespaces: Callable[[], str]) -> None:
    dev = web["namespace"]
    other = namespaces()
    (far_client,) = start_pods(kubectl, [client("client", other)])
    svc = create_service(kubectl, service("db-service", dev, "web"), endpoints=3)
    fqdn = f"db-service.{dev}.svc.cluster.local"

    resolv = exec_in(web["client"], "cat /etc/resolv.conf")
    assert f"nameserver {CLUSTER_DNS}" in resolv, resolv
    assert f"search {dev}.svc.cluster.local svc.cluster.local cluster.local" in resolv, resolv
    assert "options ndots:5" in resolv, resolv

    looked_up = exec_in(far_client, f"nslookup {fqdn}")
    assert svc["spec"]["clusterIP"] in looked_up, looked_up
    missing = exec_in(far_client, f"nslookup nothing-here.{dev}.svc.cluster.local; echo rc=$?")
    assert "NXDOMAIN" in missing or "can't find" in missing, missing
    # By name: the full name from the other namespace, the short name from the service's own.
    assert set(fetch_many(far_client, f"http://{fqdn}/", 5)) <= {"web-0", "web-1", "web-2"}
    assert set(fetch_many(web["client"], "http://db-service/", 5)) <= {"web-0", "web-1", "web-2"}
    assert "FAIL" in fetch_many(far_client, "http://db-service/", 1)   # not in that namespace's search path

    # A headless service resolves to its pods.
    kubectl.apply(service("db-headless", dev, "web", clusterIP="None"))
    pod_ips = sorted(p["status"]["podIP"] for p in web["backends"])

    def headless_ips() -> list[str] | None:
        out = exec_in(far_client, f"nslookup db-headless.{dev}.svc.cluster.local")
        found = sorted(set(re.findall(r"Address:\s*(10\.244\.\d+\.\d+)", out)))
        return found if found == pod_ips else None
    wait_for(headless_ips, timeout=20, what="headless service answering its pod IPs")


@pytest.mark.disruptive
def test_killed_agent_keeps_traffic_flowing(kubectl: Kubectl, proxy_mode: str, web: dict) -> None:
    svc = create_service(kubectl, service("web", web["namespace"], "web"), endpoints=3)
    url = f"http://{svc['spec']['clusterIP']}/"
    before = proxy_rules.service_rules(svc)
    mode = proxy_mode if agent_forced_mode() else None
    with open(AGENT_PID_FILE) as handle:
        os.kill(int(handle.read().strip()), signal.SIGKILL)
    try:
        time.sleep(0.5)
        answers = fetch_many(web["client"], url, 20)   # the agent is dead: the kernel still has the rules
        assert set(answers) == {"web-0", "web-1", "web-2"}, Counter(answers)
        # Requests go on while the agent starts again, lists and re-syncs its rules.
        with ThreadPoolExecutor(1) as pool:
            during = pool.submit(fetch_many, web["client"], url, 60, 0.1)
            start_agent(mode)
            answers = during.result()
    finally:
        start_agent(mode)   # no-op when it runs
    assert "FAIL" not in answers and set(answers) == {"web-0", "web-1", "web-2"}, Counter(answers)
    wait_for(lambda: programmed(svc, 3), timeout=20, what="rules after the restart")
    assert proxy_rules.service_rules(svc) == before
