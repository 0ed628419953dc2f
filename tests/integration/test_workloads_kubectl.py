"""Workloads with real kubectl against a server subprocess (no agent): a small fake kubelet in the test marks
pods Running and Ready through the API after a delay, so ReplicaSets and Deployments can make progress."""
import json
import shutil
import threading
import time

import pytest

from tests.integration.test_apiserver_kubectl import Server
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

IMAGE_1 = "127.0.0.1:5000/library/busybox:1.0"
IMAGE_2 = "127.0.0.1:5000/library/busybox:2.0"


def replica_set(name, replicas=3, app="web"):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": "c", "image": IMAGE_1,
                                                           "command": ["sleep", "3600"]}]}}}}


class FakeKubelet:
    """Marks every pod of a namespace Running + Ready `delay` seconds after it first sees it."""

    def __init__(self, server: Server, namespace: str = "default", delay: float = 0.3):
        self.server, self.namespace, self.delay = server, namespace, delay
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _loop(self):
        while not self._stop.wait(0.1):
            _, pods = self.server.request("GET", f"/api/v1/namespaces/{self.namespace}/pods")
            for pod in pods.get("items", []):
                meta, status = pod["metadata"], pod.get("status") or {}
                first = self._seen.setdefault(meta["uid"], time.monotonic())
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
                if ready or meta.get("deletionTimestamp") or time.monotonic() - first < self.delay:
                    continue
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                patch = {"status": {"phase": "Running", "podIP": "10.244.0.9",
                                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                                    "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                                           "image": pod["spec"]["containers"][0]["image"],
                                                           "imageID": "", "state": {"running": {"startedAt": now}}}]}}
                self.server.request("PATCH", f"/api/v1/namespaces/{self.namespace}/pods/{meta['name']}/status",
                                    patch, content_type="application/merge-patch+json")


def pods(server, selector="app=web"):
    _, body = server.request("GET", f"/api/v1/namespaces/default/pods?labelSelector={selector}")
    return body["items"]


def test_replicaset_keeps_replicas_scales_and_cascades(server):
    server.kubectl("apply", "-f", "-", input=json.dumps(replica_set("web")))
    with FakeKubelet(server):
        created = wait_for(lambda: len(pods(server)) == 3 and pods(server), what="3 pods")
        _, rs = server.request("GET", "/apis/apps/v1/namespaces/default/replicasets/web")
        for pod in created:
            assert pod["metadata"]["name"].startswith("web-") and len(pod["metadata"]["name"]) == 9
            assert pod["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                           "uid": rs["metadata"]["uid"], "controller": True,
                                                           "blockOwnerDeletion": True}]
        victim = created[0]["metadata"]["name"]
        server.kubectl("delete", "pod", victim)
        wait_for(lambda: len(pods(server)) == 3 and victim not in {p["metadata"]["name"] for p in pods(server)},
                 what="a replacement pod")
        wait_for(lambda: server.request("GET", "/apis/apps/v1/namespaces/default/replicasets/web")[1]
                 .get("status", {}).get("readyReplicas") == 3, what="readyReplicas 3")
        table = server.kubectl("get", "rs", "web").stdout.split("\n")
        assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
        assert table[1].split()[:4] == ["web", "3", "3", "3"]
        assert "replicaset.apps/web scaled" in server.kubectl("scale", "rs", "web", "--replicas=5").stdout
        wait_for(lambda: len(pods(server)) == 5, what="5 pods")
        server.kubectl("scale", "rs", "web", "--replicas=1")
        wait_for(lambda: len(pods(server)) == 1, what="1 pod")
        status = wait_for(lambda: (found := server.request(
            "GET", "/apis/apps/v1/namespaces/default/replicasets/web")[1]["status"]).get("replicas") == 1 and found,
            what="status.replicas 1")
        assert status["observedGeneration"] == 3 and status["readyReplicas"] == 1
        events = server.kubectl("get", "events", "--field-selector", "involvedObject.name=web").stdout
        assert "SuccessfulCreate" in events and "SuccessfulDelete" in events
    server.kubectl("delete", "rs", "web")
    wait_for(lambda: not pods(server), what="the pods to be garbage collected")


def test_orphan_and_foreground_deletion(server):
    server.kubectl("apply", "-f", "-", input=json.dumps(replica_set("web", 2)))
    names = {p["metadata"]["name"] for p in wait_for(lambda: len(pods(server)) == 2 and pods(server), what="2 pods")}
    server.kubectl("delete", "rs", "web", "--cascade=orphan")
    wait_for(lambda: server.request("GET", "/apis/apps/v1/namespaces/default/replicasets/web")[0] == 404,
             what="the ReplicaSet to go")
    time.sleep(0.5)
    left = pods(server)
    assert {p["metadata"]["name"] for p in left} == names
    assert all("ownerReferences" not in p["metadata"] for p in left)
    # A new ReplicaSet with the same selector adopts the orphans instead of creating pods.
    server.kubectl("apply", "-f", "-", input=json.dumps(replica_set("again", 2)))
    _, again = server.request("GET", "/apis/apps/v1/namespaces/default/replicasets/again")
    wait_for(lambda: all((p["metadata"].get("ownerReferences") or [{}])[0].get("uid") == again["metadata"]["uid"]
                         for p in pods(server)), what="adoption")
    assert {p["metadata"]["name"] for p in pods(server)} == names
    server.kubectl("delete", "rs", "again", "--cascade=foreground")
    wait_for(lambda: not pods(server) and
             server.request("GET", "/apis/apps/v1/namespaces/default/replicasets/again")[0] == 404,
             what="foreground deletion of the pods then the ReplicaSet")


def test_replication_controller(server):
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
          "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "legacy"}},
                                               "spec": {"containers": [{"name": "c", "image": IMAGE_1}]}}}}
    server.kubectl("apply", "-f", "-", input=json.dumps(rc))
    wait_for(lambda: len(pods(server, "app=legacy")) == 2, what="2 pods")
    header = server.kubectl("get", "rc", "-o", "wide").stdout.split("\n")[0].split()
    assert header == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    server.kubectl("scale", "rc", "legacy", "--replicas=3")
    wait_for(lambda: len(pods(server, "app=legacy")) == 3, what="3 pods")
    server.kubectl("delete", "rc", "legacy")
    wait_for(lambda: not pods(server, "app=legacy"), what="the pods to be deleted")


def test_validation_and_discovery(server):
    bad = replica_set("bad")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    result = server.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert ('The ReplicaSet "bad" is invalid: spec.template.metadata.labels: Invalid value: '
            'map[string]string{"app":"web"}: `selector` does not match template `labels`') in result.stderr
    unknown = replica_set("typo")
    unknown["spec"]["template"]["spec"]["containers"][0]["imagex"] = "x"
    result = server.kubectl("apply", "-f", "-", input=json.dumps(unknown), check=False)
    assert 'strict decoding error: unknown field "spec.template.spec.containers[0].imagex"' in result.stderr
    resources = server.kubectl("api-resources", "--api-group=apps").stdout
    assert "deployments" in resources and "deploy" in resources and "replicasets" in resources
    _, discovery = server.request("GET", "/apis/apps/v1")
    scale = next(r for r in discovery["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")


def deployment_state(server, name="web"):
    return server.request("GET", f"/apis/apps/v1/namespaces/default/deployments/{name}")[1]


def test_deployment_rolls_out_and_back_within_max_unavailable(server):
    server.kubectl("create", "deployment", "web", f"--image={IMAGE_1}", "--replicas=3", "--", "sleep", "3600")
    with FakeKubelet(server, delay=0.5):
        server.kubectl("rollout", "status", "deployment/web", "--timeout=30s", timeout=40)
        samples: list[tuple[int, int]] = []
        stop = threading.Event()

        def watch_ready():
            while not stop.is_set():
                current = [p for p in pods(server) if not p["metadata"].get("deletionTimestamp")]
                ready = sum(1 for p in current if any(c["type"] == "Ready" and c["status"] == "True"
                                                      for c in p.get("status", {}).get("conditions") or []))
                samples.append((ready, len(current)))
                time.sleep(0.05)
        sampler = threading.Thread(target=watch_ready, daemon=True)
        sampler.start()
        started = time.monotonic()
        server.kubectl("set", "image", "deployment/web", f"busybox={IMAGE_2}")
        rollout = server.kubectl("rollout", "status", "deployment/web", "--timeout=60s", timeout=70).stdout
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        assert 'deployment "web" successfully rolled out' in rollout
        # maxUnavailable 25% of 3 rounds down to 0 and maxSurge up to 1: always 3 ready, at most 4 pods.
        assert min(ready for ready, _ in samples) >= 3, samples
        assert max(total for _, total in samples) <= 4, samples
        assert all(p["spec"]["containers"][0]["image"] == IMAGE_2 for p in pods(server))
        history = server.kubectl("rollout", "history", "deployment/web").stdout
        assert [line.split()[0] for line in history.strip().split("\n")[2:]] == ["1", "2"], history
        rs_table = server.kubectl("get", "rs", "-l", "app=web").stdout
        assert len(rs_table.strip().split("\n")) == 3
        server.kubectl("rollout", "undo", "deployment/web")
        server.kubectl("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
        assert all(p["spec"]["containers"][0]["image"] == IMAGE_1 for p in pods(server))
        deployment = deployment_state(server)
        assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        conditions = {c["type"]: c for c in deployment["status"]["conditions"]}
        assert conditions["Available"]["status"] == "True"
        assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
        listing = server.kubectl("get", "all").stdout
        assert "deployment.apps/web" in listing and "replicaset.apps/web-" in listing and "pod/web-" in listing
        table = server.kubectl("get", "deploy", "web").stdout.split("\n")
        assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        assert table[1].split()[:4] == ["web", "3/3", "3", "3"]
        print(f"rollout of 3 replicas took {elapsed:.1f}s")


def test_deployment_pause_resume_restart_scale(server):
    server.kubectl("create", "deployment", "web", f"--image={IMAGE_1}", "--replicas=2")
    with FakeKubelet(server, delay=0.2):
        server.kubectl("rollout", "status", "deployment/web", "--timeout=30s", timeout=40)
        server.kubectl("rollout", "pause", "deployment/web")
        server.kubectl("set", "image", "deployment/web", f"busybox={IMAGE_2}")
        server.kubectl("scale", "deployment/web", "--replicas=4")
        wait_for(lambda: len(pods(server)) == 4, what="scaling while paused")
        time.sleep(0.5)
        assert all(p["spec"]["containers"][0]["image"] == IMAGE_1 for p in pods(server))
        progressing = {c["type"]: c for c in deployment_state(server)["status"]["conditions"]}["Progressing"]
        assert (progressing["status"], progressing["reason"]) == ("Unknown", "DeploymentPaused")
        server.kubectl("rollout", "resume", "deployment/web")
        server.kubectl("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
        assert [p["spec"]["containers"][0]["image"] for p in pods(server)] == [IMAGE_2] * 4
        server.kubectl("rollout", "restart", "deployment/web")
        server.kubectl("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
        restarted = pods(server)
        assert len(restarted) == 4 and all("kubectl.kubernetes.io/restartedAt" in
                                           p["metadata"].get("annotations", {}) for p in restarted)
        history = server.kubectl("rollout", "history", "deployment/web").stdout
        assert [line.split()[0] for line in history.strip().split("\n")[2:]] == ["1", "2", "3"], history
    server.kubectl("delete", "deployment", "web")
    wait_for(lambda: not pods(server) and not server.request(
        "GET", "/apis/apps/v1/namespaces/default/replicasets")[1]["items"], what="cascading deletion")


def test_recreate_strategy_and_undo_to_revision(server):
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 2, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "busybox", "image": IMAGE_1}]}}}}
    server.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    with FakeKubelet(server, delay=0.3):
        server.kubectl("rollout", "status", "deployment/web", "--timeout=30s", timeout=40)
        images: list[set[str]] = []
        stop = threading.Event()

        def watch_images():
            while not stop.is_set():
                images.append({p["spec"]["containers"][0]["image"] for p in pods(server)})
                time.sleep(0.02)
        sampler = threading.Thread(target=watch_images, daemon=True)
        sampler.start()
        server.kubectl("set", "image", "deployment/web", f"busybox={IMAGE_2}")
        server.kubectl("rollout", "status", "deployment/web", "--timeout=30s", timeout=40)
        stop.set()
        sampler.join()
        assert all(len(seen) <= 1 for seen in images), "Recreate ran old and new pods at once"
        assert {IMAGE_2} in images
        server.kubectl("set", "image", "deployment/web", "busybox=127.0.0.1:5000/library/busybox:3.0")
        server.kubectl("rollout", "status", "deployment/web", "--timeout=30s", timeout=40)
        server.kubectl("rollout", "undo", "deployment/web", "--to-revision=1")
        server.kubectl("rollout", "status", "deployment/web", "--timeout=30s", timeout=40)
        assert {p["spec"]["containers"][0]["image"] for p in pods(server)} == {IMAGE_1}
        history = server.kubectl("rollout", "history", "deployment/web").stdout
        assert [line.split()[0] for line in history.strip().split("\n")[2:]] == ["2", "3", "4"], history


def test_large_replicaset_never_overshoots(server):
    """40 pods exactly, never more: the controller decides from an informer cache (guarded by expectations)."""
    server.kubectl("apply", "-f", "-", input=json.dumps(replica_set("big", 40, app="big")))
    counts = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counts.append(len(pods(server, "app=big")))
        if counts[-1] >= 40 and len(counts) > 5 and counts[-5:] == [40] * 5:
            break
        time.sleep(0.1)
    assert counts[-1] == 40 and max(counts) == 40, counts
    server.kubectl("scale", "rs", "big", "--replicas=10")
    wait_for(lambda: len(pods(server, "app=big")) == 10, what="10 pods")
    time.sleep(0.5)
    assert len(pods(server, "app=big")) == 10
