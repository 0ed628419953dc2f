"""PodDisruptionBudgets with real kubectl against a `shipmate server` (no agent: the test plays the kubelets,
marking pods Running and Ready): the disruption controller's status, evictions refused with 429, and
`kubectl drain` of a node running a 2-replica Deployment guarded by `minAvailable: 1` — one pod at a time,
never fewer than one available. Also protobuf DeleteOptions bodies (what client-go and helm send), encoded
here from upstream's meta/v1 generated.proto field numbers."""
import json
import shutil
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.test_apiserver_kubectl import Server
from tests.integration.test_scheduling_kubectl import make_node
from tests.integration.test_workloads_kubectl import FakeKubelet
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

IMAGE = "127.0.0.1:5000/library/busybox:latest"


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    srv.extra_args = ["--node-monitor-grace-period", "1h"]  # the test's nodes post no heartbeats
    srv.start()
    yield srv
    srv.stop()


def deployment(name: str, replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}],
                                           "terminationGracePeriodSeconds": 5}}}}


def pods(server, app: str) -> list[dict]:
    return server.request("GET", f"/api/v1/namespaces/default/pods?labelSelector=app={app}")[1]["items"]


def available(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def pdb_status(server, name: str) -> dict:
    return server.request("GET", f"/apis/policy/v1/namespaces/default/poddisruptionbudgets/{name}")[1].get("status") \
        or {}


class AvailabilitySampler:
    """Records, every 20 ms, how many pods of an app are available (ready and not being deleted)."""

    def __init__(self, server, app: str):
        self.server, self.app = server, app
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _loop(self):
        while not self._stop.wait(0.02):
            self.samples.append(sum(available(pod) for pod in pods(self.server, self.app)))


def test_drain_evicts_one_pod_at_a_time_and_keeps_min_available(server):
    make_node(server, "node-a")
    server.kubectl("apply", "-f", "-", input=json.dumps(deployment("web")))
    with FakeKubelet(server, delay=2.0):
        running = wait_for(lambda: len([p for p in pods(server, "web") if available(p)]) == 2 and pods(server, "web"),
                           timeout=20, what="2 web pods ready")
        assert {pod["spec"]["nodeName"] for pod in running} == {"node-a"}
        server.kubectl("create", "pdb", "web", "--selector=app=web", "--min-available=1")
        status = wait_for(lambda: (lambda s: s if s.get("disruptionsAllowed") == 1 else None)(
            pdb_status(server, "web")), what="the budget to allow one disruption")
        assert (status["currentHealthy"], status["desiredHealthy"], status["expectedPods"]) == (2, 1, 2)
        table = server.kubectl("get", "pdb", "web").stdout.splitlines()
        assert table[1].split()[:4] == ["web", "1", "N/A", "1"]
        make_node(server, "node-b")  # where the replacements go
        with AvailabilitySampler(server, "web") as sampler:
            drained = server.kubectl("drain", "node-a", "--grace-period=0", "--timeout=90s", timeout=120)
        output = drained.stdout + drained.stderr
        assert "node/node-a cordoned" in output and "node/node-a drained" in output
        assert output.count("evicting pod default/web-") >= 2
        # the second pod waited for the first one's replacement: refused at least once, and retried
        assert "(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget." in output
        assert sampler.samples and min(sampler.samples) >= 1, sampler.samples
        moved = wait_for(lambda: (lambda ready: ready if len(ready) == 2 else None)(
            [p for p in pods(server, "web") if available(p) and p["spec"].get("nodeName")]), timeout=20,
            what="2 web pods ready on node-b")
        assert {pod["spec"]["nodeName"] for pod in moved} == {"node-b"}
        final = wait_for(lambda: (lambda s: s if s.get("disruptionsAllowed") == 1 and not s.get("disruptedPods")
                                  else None)(pdb_status(server, "web")), timeout=20, what="the budget restored")
        assert final["currentHealthy"] == 2


def test_eviction_429_until_the_budget_allows_it(server):
    make_node(server, "node-a")
    server.kubectl("apply", "-f", "-", input=json.dumps(deployment("db", replicas=1)))
    with FakeKubelet(server, delay=0.2):
        pod = wait_for(lambda: [p for p in pods(server, "db") if available(p)], timeout=20, what="db ready")[0]
        server.kubectl("create", "pdb", "db", "--selector=app=db", "--max-unavailable=0")
        wait_for(lambda: pdb_status(server, "db").get("observedGeneration") == 1, what="budget synced")
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod["metadata"]["name"]}}
        status, body = server.request("POST", f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}/eviction",
                                      eviction)
        assert status == 429, body
        assert body["reason"] == "TooManyRequests"
        assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
        assert body["details"]["causes"] == [{"reason": "DisruptionBudget",
                                              "message": "The disruption budget db needs 1 healthy pods and has 1 "
                                                         "currently"}]
        refused = server.kubectl("drain", "node-a", "--grace-period=0", "--timeout=3s", check=False, timeout=30)
        assert refused.returncode != 0
        assert "Cannot evict pod as it would violate the pod's disruption budget." in refused.stderr
        # a budget that allows it: the eviction goes through with the pod's DisruptionTarget condition set first
        server.kubectl("patch", "pdb", "db", "--type=merge", "-p", '{"spec": {"maxUnavailable": 1}}')
        wait_for(lambda: pdb_status(server, "db").get("disruptionsAllowed") == 1, what="one disruption allowed")
        status, body = server.request("POST", f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}/eviction",
                                      {**eviction, "deleteOptions": {"gracePeriodSeconds": 0}})
        assert (status, body["status"]) == (201, "Success"), body
        assert server.request("GET", f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}")[0] == 404


# --- protobuf DeleteOptions ---------------------------------------------------------------------------------
def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pb_field(number: int, value) -> bytes:
    """One protobuf field: varint (wire type 0) for ints and bools, length-delimited (2) for strings/messages."""
    if isinstance(value, (bool, int)):
        return varint(number << 3) + varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def delete_options(api_version: str, grace: int | None = None, uid: str = "", resource_version: str = "",
                   propagation: str = "", dry_run: bool = False) -> bytes:
    """meta/v1 DeleteOptions (gracePeriodSeconds=1, preconditions=2{uid=1, resourceVersion=2},
    orphanDependents=3, propagationPolicy=4, dryRun=5) in the k8s protobuf envelope (runtime.Unknown)."""
    raw = b""
    if grace is not None:
        raw += pb_field(1, grace)
    if uid or resource_version:
        raw += pb_field(2, (pb_field(1, uid) if uid else b"") +
                        (pb_field(2, resource_version) if resource_version else b""))
    if propagation:
        raw += pb_field(4, propagation)
    if dry_run:
        raw += pb_field(5, "All")
    type_meta = pb_field(1, api_version) + pb_field(2, "DeleteOptions")
    return b"k8s\x00" + pb_field(1, type_meta) + pb_field(2, raw)


def delete_with(server, path: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + path, data=body, method="DELETE",
                                     headers={"Content-Type": "application/vnd.kubernetes.protobuf",
                                              "Accept": "application/json"})
    try:
        with server.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_protobuf_delete_options_on_secrets_and_deployments(server):
    server.kubectl("create", "secret", "generic", "release", "--from-literal=release=v1")
    secret = server.request("GET", "/api/v1/namespaces/default/secrets/release")[1]
    uid, version = secret["metadata"]["uid"], secret["metadata"]["resourceVersion"]
    path = "/api/v1/namespaces/default/secrets/release"
    status, body = delete_with(server, path, delete_options("v1", uid="not-the-uid"))
    assert status == 409, body
    assert body["message"] == ('Operation cannot be fulfilled on secrets "release": Precondition failed: UID in '
                               f"precondition: not-the-uid, UID in object meta: {uid}")
    status, body = delete_with(server, path, delete_options("v1", uid=uid, resource_version="1"))
    assert status == 409 and "ResourceVersion in precondition: 1" in body["message"], body
    status, body = delete_with(server, path, delete_options("v1", uid=uid, dry_run=True))
    assert status == 200 and server.request("GET", path)[0] == 200
    # Foreground: the finalizer is set and the garbage collector removes the Secret (it has no dependents)
    status, body = delete_with(server, path, delete_options("v1", grace=0, uid=uid, resource_version=version,
                                                            propagation="Foreground"))
    assert status == 200, body
    assert body["metadata"]["finalizers"] == ["foregroundDeletion"] and body["metadata"]["deletionTimestamp"]
    wait_for(lambda: server.request("GET", path)[0] == 404, what="the secret gone")
    # helm's own delete: an empty DeleteOptions
    server.kubectl("create", "secret", "generic", "sh.helm.release.v1.demo.v1", "--from-literal=release=x")
    status, _ = delete_with(server, "/api/v1/namespaces/default/secrets/sh.helm.release.v1.demo.v1",
                            delete_options("v1"))
    assert status == 200
    assert server.request("GET", "/api/v1/namespaces/default/secrets/sh.helm.release.v1.demo.v1")[0] == 404
    # another group: a Deployment deleted with propagationPolicy Orphan keeps its ReplicaSet, without owner
    server.kubectl("apply", "-f", "-", input=json.dumps(deployment("orphans", replicas=0)))
    replica_set = wait_for(lambda: server.request("GET", "/apis/apps/v1/namespaces/default/replicasets")[1]["items"],
                           what="the ReplicaSet")[0]
    status, body = delete_with(server, "/apis/apps/v1/namespaces/default/deployments/orphans",
                               delete_options("apps/v1", propagation="Orphan"))
    assert status == 200 and body["metadata"]["finalizers"] == ["orphan"], body
    wait_for(lambda: server.request("GET", "/apis/apps/v1/namespaces/default/deployments/orphans")[0] == 404,
             what="the deployment gone")
    rs_path = f"/apis/apps/v1/namespaces/default/replicasets/{replica_set['metadata']['name']}"
    kept = wait_for(lambda: (lambda rs: rs if not rs["metadata"].get("ownerReferences") else None)(
        server.request("GET", rs_path)[1]), what="the ReplicaSet orphaned")
    assert kept["metadata"]["uid"] == replica_set["metadata"]["uid"]
    time.sleep(0.5)
    assert server.request("GET", rs_path)[0] == 200
