"""The API server as a subprocess, driven by the real kubectl and by raw HTTP."""
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from shipmate import pki
from shipmate.kubeclient import load_kubeconfig
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HISTORY = 30

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
       "spec": {"containers": [{"name": "web", "image": "127.0.0.1:5000/library/busybox:latest",
                                "command": ["sleep", "3600"], "resources": {"requests": {"cpu": "100m"}}}]}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
        "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "message": "ready", "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                   "nodeInfo": {"kubeletVersion": "v1.35.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.6.20",
                                "operatingSystem": "linux", "architecture": "amd64"}}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, tmp_path):
        self.data_dir = str(tmp_path / "data")
        self.kubeconfig = str(tmp_path / "admin.kubeconfig")
        self.cache_dir = str(tmp_path / "kubectl-cache")
        self.log_path = str(tmp_path / "server.log")
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.process = None
        self.extra_args: list[str] = []   # more `shipmate server` flags (scheduling tests)
        self._tls: tuple[int, ssl.SSLContext] | None = None

    def start(self):
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shipmate.cli", "server", "--bind-address", "127.0.0.1", "--port", str(self.port),
             "--data-dir", self.data_dir, "--admin-kubeconfig", self.kubeconfig,
             "--watch-history-size", str(HISTORY), *self.extra_args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz", raw=True) == "ok" and os.path.exists(self.kubeconfig):
                    return
            except OSError:
                pass
            assert self.process.poll() is None, open(self.log_path).read()
            time.sleep(0.1)
        raise AssertionError("server did not become ready:\n" + open(self.log_path).read())

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def ssl_context(self) -> ssl.SSLContext:
        """TLS as the admin: the cluster CA and the admin client certificate from the kubeconfig the
        server wrote (read again when a restart rewrote it). Before it exists (start-up probes of
        /readyz): an unverified, anonymous context."""
        try:
            written = os.stat(self.kubeconfig).st_mtime_ns
        except FileNotFoundError:
            anonymous = ssl.create_default_context()
            anonymous.check_hostname = False
            anonymous.verify_mode = ssl.CERT_NONE
            return anonymous
        if self._tls is None or self._tls[0] != written:
            self._tls = (written, load_kubeconfig(self.kubeconfig).ssl_context())
        return self._tls[1]

    def urlopen(self, req, timeout=10):
        """urllib.request.urlopen over the server's TLS, as the admin."""
        return urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context())

    def request(self, method, path, body=None, content_type="application/json", raw=False):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": content_type} if data else {})
        try:
            with self.urlopen(req) as response:
                text = response.read().decode()
                return text if raw else (response.status, json.loads(text))
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read().decode())

    def kubectl(self, *args, input=None, check=True, timeout=30):
        result = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache_dir, *args],
                                input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result


def test_kubeconfig_and_default_namespaces(server):
    assert oct(os.stat(server.kubeconfig).st_mode & 0o777) == "0o600"
    names = server.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert names == ["namespace/default", "namespace/kube-node-lease", "namespace/kube-public", "namespace/kube-system"]


def test_apply_get_describe_and_delete_pod(server):
    manifest = json.dumps(POD)
    assert "pod/web created" in server.kubectl("apply", "-f", "-", input=manifest).stdout
    changed = json.loads(manifest)
    changed["metadata"]["labels"]["tier"] = "front"
    assert "pod/web configured" in server.kubectl("apply", "-f", "-", input=json.dumps(changed)).stdout
    wide = server.kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
                               "READINESS", "GATES"]
    assert wide[1].split()[:3] == ["web", "0/1", "Pending"]
    obj = json.loads(server.kubectl("get", "pod", "web", "-o", "json").stdout)
    assert obj["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert obj["status"]["qosClass"] == "Burstable"
    described = server.kubectl("describe", "pod", "web").stdout
    assert "FailedScheduling" in described and "no nodes available to schedule pods" in described
    duplicate = server.kubectl("create", "-f", "-", input=manifest, check=False)
    assert duplicate.returncode != 0 and 'pods "web" already exists' in duplicate.stderr
    assert 'pod "web" deleted' in server.kubectl("delete", "pod", "web", timeout=20).stdout
    assert server.kubectl("get", "pods", "-o", "name").stdout.strip() == ""


def test_invalid_manifests_are_rejected_with_field_names(server):
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c"}]}}
    result = server.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert 'The Pod "Bad_Name" is invalid' in result.stderr and "spec.containers[0].image: Required value" in result.stderr
    status, body = server.request("POST", "/api/v1/namespaces/default/pods", bad)
    assert status == 422 and body["reason"] == "Invalid"
    assert {c["field"] for c in body["details"]["causes"]} == {"metadata.name", "spec.containers[0].image"}
    typo = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "typo"},
            "spec": {"containers": [{"name": "c", "imagee": "busybox"}]}}
    result = server.kubectl("create", "-f", "-", input=json.dumps(typo), check=False)
    assert 'unknown field "spec.containers[0].imagee"' in result.stderr
    server.kubectl("apply", "-f", "-", input=json.dumps(POD))
    with_typo = json.loads(json.dumps(POD))
    with_typo["spec"]["containers"][0]["imagee"] = "x"
    result = server.kubectl("apply", "-f", "-", input=json.dumps(with_typo), check=False)
    assert result.returncode != 0 and 'unknown field "spec.containers[0].imagee"' in result.stderr


def test_node_scheduling_and_graceful_deletion(server):
    server.kubectl("create", "-f", "-", input=json.dumps(NODE))
    nodes = server.kubectl("get", "nodes").stdout.splitlines()
    assert nodes[1].split()[:2] == ["node-a", "Ready"]
    node = json.loads(server.kubectl("get", "node", "node-a", "-o", "json").stdout)
    assert node["spec"]["podCIDR"] == "10.244.0.0/24" and node["spec"]["podCIDRs"] == ["10.244.0.0/24"]
    server.kubectl("create", "-f", "-", input=json.dumps(POD))

    def bound():
        pod = json.loads(server.kubectl("get", "pod", "web", "-o", "json").stdout)
        return pod if pod["spec"].get("nodeName") else None
    pod = wait_for(bound)
    assert pod["spec"]["nodeName"] == "node-a"
    assert {"type": "PodScheduled", "status": "True"}.items() <= pod["status"]["conditions"][0].items()
    assert "node-a" in server.kubectl("get", "pods", "-o", "wide").stdout.splitlines()[1].split()
    events = server.kubectl("get", "events", "-o", "json").stdout
    assert "Successfully assigned default/web to node-a" in events
    assert "web" in server.kubectl("describe", "node", "node-a").stdout

    # The agent's part: PATCH status, then confirm deletion with gracePeriodSeconds=0 and a UID precondition.
    status, patched = server.request("PATCH", "/api/v1/namespaces/default/pods/web/status",
                                     {"status": {"phase": "Running", "podIP": "10.244.0.2",
                                                 "podIPs": [{"ip": "10.244.0.2"}]}},
                                     "application/strategic-merge-patch+json")
    assert status == 200 and patched["status"]["phase"] == "Running"
    assert patched["status"]["conditions"][0]["type"] == "PodScheduled"
    assert "10.244.0.2" in server.kubectl("get", "pods", "-o", "wide").stdout

    deleter = subprocess.Popen(["kubectl", "--kubeconfig", server.kubeconfig, "--cache-dir", server.cache_dir,
                                "delete", "pod", "web"], stdout=subprocess.PIPE, text=True)
    terminating = wait_for(lambda: "Terminating" in server.kubectl("get", "pods").stdout)
    assert terminating and deleter.poll() is None
    status, body = server.request("DELETE", "/api/v1/namespaces/default/pods/web",
                                  {"gracePeriodSeconds": 0, "preconditions": {"uid": "wrong"}})
    assert status == 409 and body["reason"] == "Conflict"
    status, _ = server.request("DELETE", "/api/v1/namespaces/default/pods/web",
                               {"gracePeriodSeconds": 0, "preconditions": {"uid": pod["metadata"]["uid"]}})
    assert status == 200
    assert deleter.wait(15) == 0 and 'pod "web" deleted' in deleter.stdout.read()


def test_unschedulable_pod_is_retried_when_a_node_appears(server):
    server.kubectl("create", "-f", "-", input=json.dumps(POD))
    pending = wait_for(lambda: json.loads(server.kubectl("get", "pod", "web", "-o", "json").stdout)
                       ["status"].get("conditions"))
    assert pending[0]["reason"] == "Unschedulable"
    server.kubectl("create", "-f", "-", input=json.dumps(NODE))
    wait_for(lambda: json.loads(server.kubectl("get", "pod", "web", "-o", "json").stdout)["spec"].get("nodeName"))


def test_conflict_watch_and_expired(server):
    unscheduled = json.loads(json.dumps(POD))
    unscheduled["spec"]["schedulerName"] = "no-such-scheduler"  # keep the scheduler's status writes out
    status, pod = server.request("POST", "/api/v1/namespaces/default/pods", unscheduled)
    assert status == 201
    stale = dict(pod, metadata=dict(pod["metadata"], labels={"app": "x"}))
    status, _ = server.request("PUT", "/api/v1/namespaces/default/pods/web", stale)
    assert status == 200
    status, body = server.request("PUT", "/api/v1/namespaces/default/pods/web", stale)
    assert status == 409 and body["reason"] == "Conflict"
    assert body["message"].startswith('Operation cannot be fulfilled on pods "web"')
    start = pod["metadata"]["resourceVersion"]
    lines = server.request("GET", f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={start}"
                                  "&timeoutSeconds=1", raw=True).splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["type"] for e in events][:1] == ["MODIFIED"]
    assert events[0]["object"]["metadata"]["labels"] == {"app": "x"}
    for i in range(HISTORY + 5):
        server.request("PATCH", "/api/v1/namespaces/default/pods/web", {"metadata": {"labels": {"n": str(i)}}},
                       "application/merge-patch+json")
    lines = server.request("GET", f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={start}", raw=True)
    error = json.loads(lines.splitlines()[0])
    assert error["type"] == "ERROR"
    assert error["object"]["code"] == 410 and error["object"]["reason"] == "Expired"
    # Server-side apply needs a fieldManager (tests/integration/test_kubectl_fidelity.py covers apply itself).
    status, body = server.request("PATCH", "/api/v1/namespaces/default/pods/web", {"a": 1}, "application/apply-patch+yaml")
    assert status == 400 and "fieldManager" in body["message"]
    status, body = server.request("PATCH", "/api/v1/namespaces/default/pods/web",
                                  [{"op": "add", "path": "/spec/nodeName", "value": "x"}], "application/json-patch+json")
    assert status == 422 and "pod updates may not change fields" in body["message"]


def test_kubectl_watch_sees_changes(server):
    watcher = subprocess.Popen(["kubectl", "--kubeconfig", server.kubeconfig, "--cache-dir", server.cache_dir,
                                "get", "pods", "--watch", "--output-watch-events", "--request-timeout=5s"],
                               stdout=subprocess.PIPE, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(watcher.stdout), daemon=True)
    reader.start()
    time.sleep(1)
    server.kubectl("create", "-f", "-", input=json.dumps(POD))
    server.kubectl("delete", "pod", "web")
    wait_for(lambda: any(line.startswith("DELETED") for line in output), timeout=10)
    watcher.kill()
    assert any(line.startswith("ADDED") and "web" in line for line in output)


def test_data_persists_across_restart(server):
    server.kubectl("create", "-f", "-", input=json.dumps(POD))
    server.kubectl("create", "-f", "-", input=json.dumps(NODE))
    before = json.loads(server.kubectl("get", "pod", "web", "-o", "json").stdout)
    watch = server.urlopen(server.url + "/api/v1/pods?watch=1&resourceVersion=0")
    assert json.loads(watch.readline())["type"] == "ADDED"
    stopping = time.monotonic()
    server.stop()
    assert time.monotonic() - stopping < 5, "an open watch must not hold up shutdown"
    assert watch.read() == b""
    server.start()
    after = json.loads(server.kubectl("get", "pod", "web", "-o", "json").stdout)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert int(after["metadata"]["resourceVersion"]) >= int(before["metadata"]["resourceVersion"])
    server.kubectl("create", "-f", "-", input=json.dumps(dict(NODE, metadata={"name": "node-b"})))
    node_b = json.loads(server.kubectl("get", "node", "node-b", "-o", "json").stdout)
    assert node_b["spec"]["podCIDR"] == "10.244.1.0/24"


def test_namespace_deletion_removes_contents(server):
    server.kubectl("create", "namespace", "team")  # a protobuf body
    server.kubectl("create", "-n", "team", "-f", "-", input=json.dumps(POD))
    server.kubectl("delete", "namespace", "team", "--wait=false")
    status, body = server.request("POST", "/api/v1/namespaces/team/pods", dict(POD, metadata={"name": "late"}))
    assert status in (403, 404)
    wait_for(lambda: server.kubectl("get", "namespace", "team", check=False).returncode != 0)
    refused = server.kubectl("delete", "namespace", "default", check=False)
    assert 'namespaces "default" is forbidden: this namespace may not be deleted' in refused.stderr


def test_agent_style_node_status_and_lease_writes(server):
    status, node = server.request("POST", "/api/v1/nodes", NODE)
    assert status == 201
    heartbeat = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                                            "message": "runtime down"},
                                           {"type": "MemoryPressure", "status": "False"}]}}
    status, patched = server.request("PATCH", "/api/v1/nodes/node-a/status", heartbeat,
                                     "application/strategic-merge-patch+json")
    assert status == 200
    assert [c["type"] for c in patched["status"]["conditions"]] == ["Ready", "MemoryPressure"]
    assert patched["status"]["addresses"] == NODE["status"]["addresses"]
    assert server.kubectl("get", "nodes").stdout.splitlines()[1].split()[1] == "NotReady"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "node-a", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 40,
                      "renewTime": "2026-01-01T00:00:00.000000Z"}}
    status, created = server.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)
    assert status == 201
    renewed = dict(created, spec=dict(created["spec"], renewTime="2026-01-01T00:00:10.000000Z"))
    status, updated = server.request("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-a",
                                     renewed)
    assert status == 200 and int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    table = server.kubectl("get", "leases", "-n", "kube-node-lease").stdout.splitlines()
    assert table[0].split() == ["NAME", "HOLDER", "AGE"] and table[1].split()[:2] == ["node-a", "node-a"]
    assert "node-a" in server.kubectl("describe", "node", "node-a").stdout.split("Lease:")[1].splitlines()[1]
    status, pods = server.request("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a")
    assert status == 200 and pods["kind"] == "PodList" and pods["items"] == []
    status, body = server.request("GET", "/api/v1/pods?fieldSelector=spec.bogus%3Dx")
    assert status == 400 and body["message"] == "field label not supported: spec.bogus"


def test_scheduler_respects_allocatable_under_a_burst(server):
    small = json.loads(json.dumps(NODE))
    small["status"]["capacity"]["cpu"] = "1"
    server.request("POST", "/api/v1/nodes", small)
    for i in range(5):
        pod = json.loads(json.dumps(POD))
        pod["metadata"]["name"] = f"burst-{i}"
        pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "300m"
        assert server.request("POST", "/api/v1/namespaces/default/pods", pod)[0] == 201

    def settled():
        items = server.request("GET", "/api/v1/namespaces/default/pods")[1]["items"]
        bound = [p for p in items if p["spec"].get("nodeName")]
        refused = [p for p in items if any(c.get("reason") == "Unschedulable"
                                           for c in p["status"].get("conditions", []))]
        return (bound, refused) if len(bound) + len(refused) == 5 else None
    bound, refused = wait_for(settled)
    assert len(bound) == 3 and len(refused) == 2
    assert "Insufficient cpu" in refused[0]["status"]["conditions"][0]["message"]


def test_metadata_only_lists(server):
    server.request("POST", "/api/v1/namespaces/default/pods", POD)
    req = urllib.request.Request(server.url + "/api/v1/namespaces/default/pods", headers={
        "Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"})
    with server.urlopen(req) as response:
        body = json.loads(response.read())
    assert body["kind"] == "PartialObjectMetadataList"
    assert body["items"][0]["kind"] == "PartialObjectMetadata" and "spec" not in body["items"][0]
    assert body["items"][0]["metadata"]["name"] == "web"


def test_create_throughput(server):
    """Creates/s through the HTTP API with concurrent clients (group commit); a floor, not a benchmark."""
    import asyncio

    import aiohttp

    async def run(count: int, concurrency: int) -> float:
        limit = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=server.ssl_context())) as session:
            async def create(i: int) -> None:
                pod = json.loads(json.dumps(POD))
                pod["metadata"]["name"] = f"load-{i}"
                pod["spec"]["schedulerName"] = "no-such-scheduler"
                async with limit, session.post(f"{server.url}/api/v1/namespaces/default/pods", json=pod) as response:
                    assert response.status == 201, await response.text()
            started = time.monotonic()
            await asyncio.gather(*(create(i) for i in range(count)))
            return count / (time.monotonic() - started)
    rate = asyncio.run(run(600, 32))
    print(f"create throughput: {rate:.0f} pods/s (600 creates, 32 concurrent clients)")
    assert rate > 100


def test_https_only_admin_identity_and_cacerts(server):
    """The API answers TLS only, with a serving certificate for 127.0.0.1 from the cluster CA; /cacerts hands
    out that CA; the admin kubeconfig carries CN kubernetes-admin, O system:masters."""
    with open(os.path.join(server.data_dir, "pki", "ca.crt"), "rb") as handle:
        ca_pem = handle.read()
    with pytest.raises(OSError):   # plain HTTP on the TLS port
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz", timeout=5).read()
    verified = ssl.create_default_context(cadata=ca_pem.decode())
    with urllib.request.urlopen(server.url + "/cacerts", timeout=5, context=verified) as response:
        assert response.read() == ca_pem
    config = load_kubeconfig(server.kubeconfig)
    assert config.server == server.url and config.certificate_authority_data == ca_pem
    assert pki.cert_subject(config.client_certificate_data) == ("kubernetes-admin", ("system:masters",))
    assert pki.verify_issued_by(config.client_certificate_data, ca_pem)
    foreign_ca = pki.make_ca("not-the-cluster-ca")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):   # not trusted under another CA
        urllib.request.urlopen(server.url + "/readyz", timeout=5,
                               context=ssl.create_default_context(cadata=foreign_ca[0].decode()))


class FakeNodeServer:
    """A node server on 127.0.0.1 as :10250 is: client certificate REQUIRED and verified against the cluster CA,
    serving `serving` (certificate, key) — by default a self-signed one. Answers container logs with the
    caller's subject and records every request path it received in `received`."""

    def __init__(self, directory, cluster_ca_path: str, serving: tuple[bytes, bytes] | None = None):
        cert, key = serving or pki.issue(*pki.make_ca("fake-node-ca"), "fake-node", ip_addresses=["127.0.0.1"],
                                         server=True)
        received: list[str] = []
        self.received = received
        (directory / "node.crt").write_bytes(cert)
        (directory / "node.key").write_bytes(key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "node.crt", directory / "node.key")
        context.load_verify_locations(cluster_ca_path)
        context.verify_mode = ssl.CERT_REQUIRED

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                received.append(self.path)
                subject = dict(item for rdn in self.connection.getpeercert()["subject"] for item in rdn)
                body = f"{self.path} from {subject['commonName']}/{subject['organizationName']}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_pod_logs_reach_the_node_with_the_apiserver_kubelet_client_certificate(server, tmp_path):
    """pods/log is proxied to the node's InternalIP:kubeletEndpoint over TLS, presenting
    kube-apiserver-kubelet-client (O system:masters); the node's kubelet-serving certificate is verified."""
    pki_dir = os.path.join(server.data_dir, "pki")
    ca = (open(os.path.join(pki_dir, "ca.crt"), "rb").read(), open(os.path.join(pki_dir, "ca.key"), "rb").read())
    serving = pki.issue(*ca, "system:node:tls-node", ("system:nodes",), ip_addresses=["127.0.0.1"], server=True)
    with FakeNodeServer(tmp_path, os.path.join(pki_dir, "ca.crt"), serving) as node_server:
        node = json.loads(json.dumps(NODE))
        node["metadata"]["name"] = "tls-node"
        node["status"]["addresses"] = [{"type": "InternalIP", "address": "127.0.0.1"}]
        node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": node_server.port}}
        assert server.request("POST", "/api/v1/nodes", node)[0] == 201
        pod = json.loads(json.dumps(POD))
        pod["spec"]["nodeName"] = "tls-node"
        assert server.request("POST", "/api/v1/namespaces/default/pods", pod)[0] == 201
        logs = server.kubectl("logs", "web").stdout
    assert logs == "/containerLogs/default/web/web from kube-apiserver-kubelet-client/system:masters\n"
