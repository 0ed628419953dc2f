"""DaemonSets, StatefulSets, ControllerRevisions and PersistentVolumeClaims with real kubectl v1.35 against a
`shipmate server` subprocess (no agent). Nodes and their Leases are API objects the test writes; a fake kubelet
in the test marks pods Running and Ready and finishes graceful deletions, as a kubelet would."""
import json
import shutil
import subprocess
import threading
import time

import pytest

from tests.integration.test_apiserver_kubectl import Server
from tests.integration.test_scheduling_kubectl import make_node
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

IMAGE_1 = "127.0.0.1:5000/library/busybox:1.0"
IMAGE_2 = "127.0.0.1:5000/library/busybox:2.0"
IMAGE_3 = "127.0.0.1:5000/library/busybox:3.0"
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


class Kubelet:
    """Plays every node's kubelet through the API: a pod (bound or not) turns Running + Ready `delay` seconds
    after it is first seen; a pod being deleted is removed at once (its containers "stopped")."""

    def __init__(self, server: Server, delay: float = 0.3, namespace: str = "default"):
        self.server, self.delay, self.namespace = server, delay, namespace
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.paused = False

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _loop(self):
        base = f"/api/v1/namespaces/{self.namespace}/pods"
        while not self._stop.wait(0.1):
            if self.paused:
                continue
            _, pods = self.server.request("GET", base)
            for pod in pods.get("items", []):
                meta, status = pod["metadata"], pod.get("status") or {}
                if meta.get("deletionTimestamp"):
                    self.server.request("DELETE", f"{base}/{meta['name']}",
                                        {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                                         "preconditions": {"uid": meta["uid"]}})
                    continue
                first = self._seen.setdefault(meta["uid"], time.monotonic())
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
                if ready or time.monotonic() - first < self.delay:
                    continue
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                container = pod["spec"]["containers"][0]
                patch = {"status": {"phase": "Running", "podIP": "10.244.0.9",
                                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                                    "containerStatuses": [{"name": container["name"], "ready": True, "restartCount": 0,
                                                           "image": container["image"], "imageID": "",
                                                           "state": {"running": {"startedAt": now}}}]}}
                self.server.request("PATCH", f"{base}/{meta['name']}/status", patch,
                                    content_type="application/merge-patch+json")


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    srv.extra_args = ["--node-monitor-grace-period", "1h"]  # fake nodes stay Ready
    srv.start()
    yield srv
    srv.stop()


def pods(server, selector):
    _, body = server.request("GET", f"/api/v1/namespaces/default/pods?labelSelector={selector}")
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


def get(server, path):
    return server.request("GET", path)[1]


def statefulset(name="web", replicas=3, image=IMAGE_1, **spec):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                      {"name": "c", "image": image, "command": ["sleep", "3600"]}]}}, **spec}}


def daemonset(name="agent", image=IMAGE_1, **spec):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                      {"name": "c", "image": image, "command": ["sleep", "3600"]}]}}, **spec}}


def history_numbers(server, kind_name):
    text = server.kubectl("rollout", "history", kind_name).stdout
    return [line.split()[0] for line in text.strip().split("\n")[2:]]


# --- StatefulSets -----------------------------------------------------------------------------------
def test_statefulset_scales_in_order_with_stable_identities(server):
    """0 → 3 one pod at a time in ordinal order (each waits for its predecessor to be Running and Ready),
    then 3 → 1 from the highest ordinal down; names, hostnames and labels are stable."""
    server.kubectl("apply", "-f", "-", input=json.dumps(statefulset(replicas=0)))
    created: list[str] = []
    seen_at_once: list[int] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            names = [p["metadata"]["name"] for p in pods(server, "app=web")]
            seen_at_once.append(len(names))
            for name in sorted(names, key=lambda n: int(n.rsplit("-", 1)[1])):
                if name not in created:
                    created.append(name)
            time.sleep(0.03)
    sampler = threading.Thread(target=sample, daemon=True)
    with Kubelet(server, delay=0.6):
        sampler.start()
        assert "statefulset.apps/web scaled" in server.kubectl("scale", "sts", "web", "--replicas=3").stdout
        out = server.kubectl("rollout", "status", "sts/web", "--timeout=60s", timeout=70).stdout
        assert "partitioned roll out complete: 3 new pods have been updated..." in out
        assert created == ["web-0", "web-1", "web-2"], created
        for pod in pods(server, "app=web"):
            name, ordinal = pod["metadata"]["name"], pod["metadata"]["name"].rsplit("-", 1)[1]
            assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "web"
            labels = pod["metadata"]["labels"]
            assert labels["statefulset.kubernetes.io/pod-name"] == name
            assert labels["apps.kubernetes.io/pod-index"] == ordinal
            assert labels["controller-revision-hash"].startswith("web-")
            assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods(server, "app=web")}
        table = server.kubectl("get", "sts", "web").stdout.split("\n")
        assert table[0].split() == ["NAME", "READY", "AGE"] and table[1].split()[:2] == ["web", "3/3"]
        # The order pods go in, from a watch (its events are in storage order; polling could see two go at once).
        watch = subprocess.Popen(["kubectl", "--kubeconfig", server.kubeconfig, "--cache-dir", server.cache_dir, "get",
                                  "pods", "-l", "app=web", "--watch-only", "--output-watch-events", "-o",
                                  "jsonpath={.type} {.object.metadata.name}{\"\\n\"}"],
                                 stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(1)  # the watch is established
            server.kubectl("scale", "sts", "web", "--replicas=1")
            wait_for(lambda: [p["metadata"]["name"] for p in pods(server, "app=web")] == ["web-0"], 30, "1 pod left")
            time.sleep(0.5)
        finally:
            watch.terminate()
        events = watch.communicate(timeout=10)[0].split("\n")
        stop.set()
        sampler.join()
        gone = [line.split()[1] for line in events if line.startswith("DELETED ")]
        assert gone == ["web-2", "web-1"], events
        assert pods(server, "app=web")[0]["metadata"]["uid"] == uids["web-0"]  # the survivor was not replaced
        status = wait_for(lambda: (s := get(server, "/apis/apps/v1/namespaces/default/statefulsets/web")["status"])
                          .get("replicas") == 1 and s, 20, "status.replicas 1")
        assert status["readyReplicas"] == 1 and status["currentRevision"] == status["updateRevision"]
        events = server.kubectl("describe", "sts", "web").stdout
        assert "create Pod web-2 in StatefulSet web successful" in events
        assert "delete Pod web-1 in StatefulSet web successful" in events


def test_statefulset_rolling_update_with_partition_then_undo(server):
    server.kubectl("apply", "-f", "-", input=json.dumps(statefulset()))
    with Kubelet(server, delay=0.3):
        server.kubectl("rollout", "status", "sts/web", "--timeout=60s", timeout=70)
        first_revision = get(server, "/apis/apps/v1/namespaces/default/statefulsets/web")["status"]["updateRevision"]
        server.kubectl("patch", "sts", "web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}')
        server.kubectl("set", "image", "sts/web", f"c={IMAGE_2}")
        out = server.kubectl("rollout", "status", "sts/web", "--timeout=60s", timeout=70).stdout
        assert "partitioned roll out complete: 1 new pods have been updated..." in out
        images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in pods(server, "app=web")}
        assert images == {"web-0": IMAGE_1, "web-1": IMAGE_1, "web-2": IMAGE_2}
        status = get(server, "/apis/apps/v1/namespaces/default/statefulsets/web")["status"]
        assert status["currentRevision"] == first_revision != status["updateRevision"]
        assert (status["currentReplicas"], status["updatedReplicas"]) == (2, 1)
        # A new pod below the partition keeps the current revision.
        server.kubectl("delete", "pod", "web-0")
        wait_for(lambda: {p["metadata"]["name"] for p in pods(server, "app=web")} == {"web-0", "web-1", "web-2"}, 30,
                 "web-0 recreated")
        assert next(p for p in pods(server, "app=web") if p["metadata"]["name"] == "web-0")["spec"]["containers"][0][
            "image"] == IMAGE_1
        server.kubectl("patch", "sts", "web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
        server.kubectl("rollout", "status", "sts/web", "--timeout=60s", timeout=70)
        wait_for(lambda: all(p["spec"]["containers"][0]["image"] == IMAGE_2 for p in pods(server, "app=web"))
                 and len(pods(server, "app=web")) == 3, 30, "every pod updated")
        wait_for(lambda: (s := get(server, "/apis/apps/v1/namespaces/default/statefulsets/web")["status"])
                 .get("currentRevision") == s.get("updateRevision"), 20, "the rollout to complete")
        assert history_numbers(server, "sts/web") == ["1", "2"]
        assert "statefulset.apps/web rolled back" in server.kubectl("rollout", "undo", "sts/web").stdout
        server.kubectl("rollout", "status", "sts/web", "--timeout=60s", timeout=70)
        wait_for(lambda: sorted(p["spec"]["containers"][0]["image"] for p in pods(server, "app=web")) == [IMAGE_1] * 3,
                 40, "pods back on the first image")
        assert history_numbers(server, "sts/web") == ["2", "3"]  # revision 1 came back as 3
        revisions = server.kubectl("get", "controllerrevisions").stdout.split("\n")
        assert revisions[0].split() == ["NAME", "CONTROLLER", "REVISION", "AGE"]
        assert any(line.split()[:3] == [first_revision, "statefulset.apps/web", "3"] for line in revisions[1:])
        detail = server.kubectl("rollout", "history", "sts/web", "--revision=2").stdout
        assert IMAGE_2 in detail


def test_statefulset_parallel_on_delete_and_claims(server):
    manifest = statefulset(replicas=2, podManagementPolicy="Parallel", updateStrategy={"type": "OnDelete"},
                           persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Delete"},
                           # No class (""): not the default local-path one, so no volume ever binds them.
                           volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
                               "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                               "storageClassName": ""}}])
    manifest["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    make_node(server, "sts-node")
    server.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    # Parallel: both pods at once, without waiting for readiness; unbound claims keep them Pending.
    wait_for(lambda: len(pods(server, "app=web")) == 2, 20, "2 pods created in parallel")
    claims = wait_for(lambda: len(items := get(server, "/api/v1/namespaces/default/persistentvolumeclaims")["items"])
                      == 2 and items, 20, "2 claims")
    _, sts = server.request("GET", "/apis/apps/v1/namespaces/default/statefulsets/web")
    for claim in claims:
        assert claim["metadata"]["name"] in ("data-web-0", "data-web-1")
        assert claim["metadata"]["labels"] == {"app": "web"} and claim["status"]["phase"] == "Pending"
    wait_for(lambda: all(c["metadata"].get("ownerReferences") == [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": sts["metadata"]["uid"],
         "controller": True, "blockOwnerDeletion": True}]
        for c in get(server, "/api/v1/namespaces/default/persistentvolumeclaims")["items"]), 20,
        "claims owned by the set (whenDeleted: Delete)")
    table = server.kubectl("get", "pvc").stdout.split("\n")
    assert table[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
                                "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert table[1].split()[:3] == ["data-web-0", "Pending", "<unset>"]
    unbound = ("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: "
               "0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    # (A scheduling attempt that ran before the claims reached the scheduler says they are not found; the
    # claims' arrival makes it try again.)
    wait_for(lambda: any(c["type"] == "PodScheduled" and c.get("message") == unbound for c in get(
        server, "/api/v1/namespaces/default/pods/web-0")["status"].get("conditions", [])), 20, "PodScheduled False")
    assert get(server, "/api/v1/namespaces/default/pods/web-0")["spec"]["volumes"][0] == {
        "name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}
    with Kubelet(server, delay=0.2):
        wait_for(lambda: get(server, "/apis/apps/v1/namespaces/default/statefulsets/web")["status"].get(
            "readyReplicas") == 2, 20, "2 ready")
        # OnDelete: a new template changes nothing until a pod is deleted.
        server.kubectl("set", "image", "sts/web", f"c={IMAGE_2}")
        time.sleep(1)
        assert {p["spec"]["containers"][0]["image"] for p in pods(server, "app=web")} == {IMAGE_1}
        server.kubectl("delete", "pod", "web-1")
        wait_for(lambda: {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in pods(server, "app=web")}
                 == {"web-0": IMAGE_1, "web-1": IMAGE_2}, 30, "web-1 recreated at the new revision")
        # whenScaled: Delete — the claim of a pod scaled away goes with it.
        server.kubectl("scale", "sts", "web", "--replicas=1")
        wait_for(lambda: [c["metadata"]["name"] for c in get(
            server, "/api/v1/namespaces/default/persistentvolumeclaims")["items"]] == ["data-web-0"], 30,
            "data-web-1 deleted with its pod")
        # whenDeleted: Delete — the garbage collector removes the rest with the set.
        server.kubectl("delete", "sts", "web")
        wait_for(lambda: not get(server, "/api/v1/namespaces/default/persistentvolumeclaims")["items"]
                 and not pods(server, "app=web"), 30, "claims and pods gone with the set")


def test_statefulset_validation_and_discovery(server):
    bad = statefulset()
    bad["spec"]["podManagementPolicy"] = "Sometimes"
    bad["spec"]["updateStrategy"] = {"type": "OnDelete", "rollingUpdate": {"partition": 1}}
    result = server.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert "spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'" \
        in result.stderr
    assert "spec.updateStrategy.rollingUpdate: Invalid value" in result.stderr
    server.kubectl("apply", "-f", "-", input=json.dumps(statefulset(replicas=0)))
    changed = statefulset(replicas=0)
    changed["spec"]["serviceName"] = "other"
    result = server.kubectl("apply", "-f", "-", input=json.dumps(changed), check=False)
    assert ("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
            "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
            "are forbidden") in result.stderr
    typo = statefulset(replicas=0)
    typo["spec"]["podManagmentPolicy"] = "Parallel"
    result = server.kubectl("apply", "-f", "-", input=json.dumps(typo), check=False)
    assert 'unknown field "spec.podManagmentPolicy"' in result.stderr
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "bad"}, "spec": {}}
    result = server.kubectl("apply", "-f", "-", input=json.dumps(pvc), check=False)
    assert "spec.accessModes: Required value: at least 1 access mode is required" in result.stderr
    assert "spec.resources[storage]: Required value" in result.stderr
    resources = server.kubectl("api-resources").stdout.split("\n")
    rows = {line.split()[0]: line.split() for line in resources[1:] if line}
    assert rows["daemonsets"][:2] == ["daemonsets", "ds"] and rows["statefulsets"][:2] == ["statefulsets", "sts"]
    assert rows["persistentvolumeclaims"][:2] == ["persistentvolumeclaims", "pvc"]
    assert rows["controllerrevisions"][1:3] == ["apps/v1", "true"]
    explained = server.kubectl("explain", "statefulset.spec.persistentVolumeClaimRetentionPolicy").stdout
    assert "whenScaled" in explained
    scale = server.kubectl("scale", "sts", "web", "--replicas=0").stdout
    assert "statefulset.apps/web scaled" in scale


# --- DaemonSets ----------------------------------------------------------------------------------------
def test_daemonset_runs_one_pod_per_eligible_node(server):
    make_node(server, "plain-1")
    make_node(server, "plain-2")
    make_node(server, "ssd", labels={"disk": "ssd"})
    make_node(server, "tainted", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    make_node(server, "cordoned", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
    server.kubectl("apply", "-f", "-", input=json.dumps(daemonset()))
    with Kubelet(server, delay=0.2):
        server.kubectl("rollout", "status", "ds/agent", "--timeout=60s", timeout=70)
        placed = {p["spec"].get("nodeName") for p in pods(server, "app=agent")}
        # The cordon taint is tolerated by every daemon pod; the dedicated taint is not.
        assert placed == {"plain-1", "plain-2", "ssd", "cordoned"}, placed
        pod = pods(server, "app=agent")[0]
        node = pod["spec"]["nodeName"]
        assert pod["spec"]["affinity"] == {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
        assert pod["spec"]["tolerations"] == DAEMON_TOLERATIONS
        labels = pod["metadata"]["labels"]
        assert labels["pod-template-generation"] == "1" and len(labels["controller-revision-hash"]) >= 8
        table = server.kubectl("get", "ds", "agent").stdout.split("\n")
        assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
                                    "SELECTOR", "AGE"]
        assert table[1].split()[:7] == ["agent", "4", "4", "4", "4", "4", "<none>"]
        # A toleration for the dedicated taint and a node selector change where it runs.
        server.kubectl("patch", "ds", "agent", "-p", json.dumps({"spec": {"template": {"spec": {
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}}}}))
        wait_for(lambda: {p["spec"].get("nodeName") for p in pods(server, "app=agent")} == {"ssd"}, 30,
                 "only the ssd node keeps a pod")
        server.kubectl("label", "node", "tainted", "disk=ssd")
        wait_for(lambda: {p["spec"].get("nodeName") for p in pods(server, "app=agent")} == {"ssd", "tainted"}, 30,
                 "the tolerated, relabelled node gets a pod")
        # A new node that fits gets its pod.
        make_node(server, "late", labels={"disk": "ssd"})
        wait_for(lambda: "late" in {p["spec"].get("nodeName") for p in pods(server, "app=agent")}, 30,
                 "the new node's pod")
        status = wait_for(lambda: (s := get(server, "/apis/apps/v1/namespaces/default/daemonsets/agent")["status"])
                          .get("numberReady") == 3 and s, 30, "3 ready")
        assert (status["desiredNumberScheduled"], status["currentNumberScheduled"], status["numberMisscheduled"]) == \
            (3, 3, 0)
        all_rows = server.kubectl("get", "all").stdout
        assert "daemonset.apps/agent" in all_rows
        assert "SuccessfulCreate" in server.kubectl("describe", "ds", "agent").stdout
    server.kubectl("delete", "ds", "agent")
    wait_for(lambda: not pods(server, "app=agent") and not get(
        server, "/apis/apps/v1/namespaces/default/controllerrevisions")["items"], 30, "pods and revisions collected")


def test_daemonset_rolling_update_history_and_undo(server):
    for name in ("n1", "n2", "n3", "n4"):
        make_node(server, name)
    server.kubectl("apply", "-f", "-", input=json.dumps(daemonset()))
    with Kubelet(server, delay=0.5):
        server.kubectl("rollout", "status", "ds/agent", "--timeout=60s", timeout=70)
        samples: list[tuple[int, int]] = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                current = pods(server, "app=agent")
                ready = sum(1 for p in current if any(c["type"] == "Ready" and c["status"] == "True"
                                                      for c in (p.get("status") or {}).get("conditions") or []))
                samples.append((ready, len(current)))
                time.sleep(0.03)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        server.kubectl("set", "image", "ds/agent", f"c={IMAGE_2}")
        out = server.kubectl("rollout", "status", "ds/agent", "--timeout=60s", timeout=70).stdout
        stop.set()
        sampler.join()
        assert 'daemon set "agent" successfully rolled out' in out
        assert min(ready for ready, _ in samples) >= 3, samples  # maxUnavailable 1 of 4
        assert max(total for _, total in samples) <= 4, samples  # maxSurge 0
        assert {p["spec"]["containers"][0]["image"] for p in pods(server, "app=agent")} == {IMAGE_2}
        assert all(p["metadata"]["labels"]["pod-template-generation"] == "2" for p in pods(server, "app=agent"))
        # maxSurge: new pods start beside the old ones, at most 2 extra at a time.
        server.kubectl("patch", "ds", "agent", "-p", json.dumps({"spec": {"updateStrategy": {"rollingUpdate": {
            "maxUnavailable": 0, "maxSurge": 2}}}}))
        samples.clear()
        stop.clear()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        server.kubectl("set", "image", "ds/agent", f"c={IMAGE_3}")
        server.kubectl("rollout", "status", "ds/agent", "--timeout=60s", timeout=70)
        stop.set()
        sampler.join()
        assert min(ready for ready, _ in samples) >= 4, samples
        assert max(total for _, total in samples) <= 6, samples
        wait_for(lambda: sorted(p["spec"]["containers"][0]["image"] for p in pods(server, "app=agent")) ==
                 [IMAGE_3] * 4, 30, "4 pods on the third image")
        assert history_numbers(server, "ds/agent") == ["1", "2", "3"]
        assert "daemonset.apps/agent rolled back" in server.kubectl("rollout", "undo", "ds/agent",
                                                                    "--to-revision=1").stdout
        server.kubectl("rollout", "status", "ds/agent", "--timeout=60s", timeout=70)
        wait_for(lambda: sorted(p["spec"]["containers"][0]["image"] for p in pods(server, "app=agent")) ==
                 [IMAGE_1] * 4, 30, "4 pods back on the first image")
        assert history_numbers(server, "ds/agent") == ["2", "3", "4"]
        # OnDelete: nothing moves until a pod is deleted.
        server.kubectl("patch", "ds", "agent", "--type=merge", "-p",
                       '{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}')
        server.kubectl("set", "image", "ds/agent", f"c={IMAGE_2}")
        time.sleep(1.5)
        assert {p["spec"]["containers"][0]["image"] for p in pods(server, "app=agent")} == {IMAGE_1}
        victim = pods(server, "app=agent")[0]
        server.kubectl("delete", "pod", victim["metadata"]["name"])
        # a new daemon pod names its node by affinity until the scheduler binds it (spec.nodeName unset until then)
        wait_for(lambda: any(p["spec"].get("nodeName") == victim["spec"]["nodeName"] and
                             p["spec"]["containers"][0]["image"] == IMAGE_2 for p in pods(server, "app=agent")), 30,
                 "the deleted pod's node runs the new template")
        result = server.kubectl("rollout", "status", "ds/agent", check=False)
        assert "rollout status is only available for RollingUpdate strategy type" in result.stderr


def test_daemonset_validation(server):
    bad = daemonset()
    bad["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}
    result = server.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0" \
        in result.stderr
    bad["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 1, "maxSurge": "10%"}
    result = server.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert 'spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: "10%": may not be set when maxUnavailable ' \
           'is non-zero' in result.stderr
    empty = daemonset()
    empty["spec"]["selector"] = {}
    result = server.kubectl("apply", "-f", "-", input=json.dumps(empty), check=False)
    assert "empty selector is invalid for daemonset" in result.stderr
    server.kubectl("apply", "-f", "-", input=json.dumps(daemonset()))
    ds = get(server, "/apis/apps/v1/namespaces/default/daemonsets/agent")
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    assert ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "1"
    # No nodes: the required counts are there, and 0 (clients such as the Python client insist on them).
    assert {k: ds["status"][k] for k in ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
                                         "numberReady")} == dict.fromkeys(("currentNumberScheduled", "numberMisscheduled",
                                                                           "desiredNumberScheduled", "numberReady"), 0)
    moved = daemonset()
    moved["spec"]["selector"] = {"matchLabels": {"app": "agent", "tier": "x"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    result = server.kubectl("apply", "-f", "-", input=json.dumps(moved), check=False)
    assert "spec.selector: Invalid value" in result.stderr and "field is immutable" in result.stderr


def test_quota_counts_the_new_kinds(server):
    server.kubectl("create", "quota", "sets", "--hard=count/daemonsets.apps=1,count/statefulsets.apps=1,"
                   "persistentvolumeclaims=1,count/controllerrevisions.apps=5")
    server.kubectl("apply", "-f", "-", input=json.dumps(daemonset("one")))
    result = server.kubectl("apply", "-f", "-", input=json.dumps(daemonset("two")), check=False)
    assert 'daemonsets.apps "two" is forbidden: exceeded quota: sets, requested: count/daemonsets.apps=1, ' \
           'used: count/daemonsets.apps=1, limited: count/daemonsets.apps=1' in result.stderr
    server.kubectl("apply", "-f", "-", input=json.dumps(statefulset("s1", replicas=0)))
    result = server.kubectl("apply", "-f", "-", input=json.dumps(statefulset("s2", replicas=0)), check=False)
    assert "exceeded quota: sets" in result.stderr
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c1"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    server.kubectl("apply", "-f", "-", input=json.dumps(claim))
    claim["metadata"]["name"] = "c2"
    result = server.kubectl("apply", "-f", "-", input=json.dumps(claim), check=False)
    assert "exceeded quota: sets, requested: persistentvolumeclaims=1" in result.stderr
