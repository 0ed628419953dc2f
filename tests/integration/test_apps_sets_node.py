"""StatefulSets and DaemonSets with real pods on a private node (own netns, containerd, server and agent; see
private_node.py): ordered scale up and down with stable names, pod DNS names through the headless Service
(`<pod>.<svc>.<ns>.svc.cluster.local`, the agent's cluster DNS), partitioned rolling update and undo; a DaemonSet
rolling update and undo on a real node."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from tests.integration.private_node import BUSYBOX, PrivateNode, running_node
from tests.support import wait_for

pytestmark = pytest.mark.integration

LOADED = 120          # generous: the shared 2-core box is often busy
# Exits at once on SIGTERM, so replaced pods go quickly.
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with running_node(name="apps-sets") as private:
        yield private


def statefulset(replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 2, "containers": [
                                      {"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                                       "command": COMMAND, "env": [{"name": "STAGE", "value": "one"}]}]}}}}


HEADLESS = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "web", "port": 80}]}}


def pods(node: PrivateNode, selector: str) -> list[dict[str, Any]]:
    return [p for p in node.json("get", "pods", "-l", selector)["items"] if not p["metadata"].get("deletionTimestamp")]


def stage_of(pod: dict[str, Any]) -> str:
    return next(e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "STAGE")


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def ready_time(pod: dict[str, Any]) -> str:
    return next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready")


def settled(node: PrivateNode, selector: str, count: int, stages: list[str] | None = None) -> list[dict] | None:
    """The pods when there are `count`, all Ready (and with these STAGE values, sorted), else None."""
    found = pods(node, selector)
    if len(found) != count or not all(ready(p) for p in found):
        return None
    if stages is not None and sorted(stage_of(p) for p in found) != stages:
        return None
    return found


def history(node: PrivateNode, kind_name: str) -> list[str]:
    text = node.kubectl("rollout", "history", kind_name).stdout
    return [line.split()[0] for line in text.strip().split("\n")[2:]]


def test_statefulset_ordered_scaling_dns_partitioned_update_and_undo(node: PrivateNode) -> None:
    node.kubectl("apply", "-f", "-", stdin=json.dumps(HEADLESS))
    node.kubectl("apply", "-f", "-", stdin=json.dumps(statefulset(0)))
    node.kubectl("scale", "sts", "web", "--replicas=3")
    node.kubectl("rollout", "status", "sts/web", f"--timeout={LOADED}s")
    running = {p["metadata"]["name"]: p for p in pods(node, "app=web")}
    assert sorted(running) == ["web-0", "web-1", "web-2"]
    assert all(p["status"]["phase"] == "Running" and p["spec"]["nodeName"] == "apps-sets" for p in running.values())
    # OrderedReady: each pod was created only once its predecessor was Ready.
    for before, after in (("web-0", "web-1"), ("web-1", "web-2")):
        assert ready_time(running[before]) <= running[after]["metadata"]["creationTimestamp"], (before, after)

    # Stable network identity: hostname, and DNS names through the headless Service.
    assert node.kubectl("exec", "web-0", "--", "hostname").stdout.strip() == "web-0"
    fqdn = "web-1.web.default.svc.cluster.local"

    def resolves() -> bool:
        result = node.kubectl("exec", "web-0", "--", "nslookup", fqdn, check=False)
        return result.returncode == 0 and running["web-1"]["status"]["podIP"] in result.stdout
    wait_for(resolves, 60, f"{fqdn} resolving to web-1's IP", interval=1)
    hosts = node.kubectl("exec", "web-2", "--", "cat", "/etc/hosts").stdout
    assert "web-2.web.default.svc.cluster.local" in hosts, hosts

    # RollingUpdate with partition 1: only web-2 and web-1 move, highest first; web-0 keeps its pod.
    node.kubectl("patch", "sts", "web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}')
    node.kubectl("set", "env", "sts/web", "STAGE=two")
    out = node.kubectl("rollout", "status", "sts/web", f"--timeout={LOADED}s").stdout
    assert "partitioned roll out complete: 2 new pods have been updated..." in out
    updated = {p["metadata"]["name"]: p for p in wait_for(lambda: settled(node, "app=web", 3), LOADED, "3 ready pods")}
    assert {name: stage_of(p) for name, p in updated.items()} == {"web-0": "one", "web-1": "two", "web-2": "two"}
    assert updated["web-0"]["metadata"]["uid"] == running["web-0"]["metadata"]["uid"]
    assert ready_time(updated["web-2"]) <= updated["web-1"]["metadata"]["creationTimestamp"]

    node.kubectl("patch", "sts", "web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    node.kubectl("rollout", "status", "sts/web", f"--timeout={LOADED}s")
    wait_for(lambda: settled(node, "app=web", 3, ["two"] * 3), LOADED, "every pod at the new revision")
    assert history(node, "sts/web") == ["1", "2"]
    node.kubectl("rollout", "undo", "sts/web")
    node.kubectl("rollout", "status", "sts/web", f"--timeout={LOADED}s")
    wait_for(lambda: settled(node, "app=web", 3, ["one"] * 3), LOADED, "every pod back at the first revision")
    assert history(node, "sts/web") == ["2", "3"]

    # Scale down from the highest ordinal; the survivor keeps its name and uid.
    survivor = next(p for p in pods(node, "app=web") if p["metadata"]["name"] == "web-0")["metadata"]["uid"]
    node.kubectl("scale", "sts", "web", "--replicas=1")
    wait_for(lambda: [p["metadata"]["name"] for p in node.json("get", "pods", "-l", "app=web")["items"]] == ["web-0"],
             LOADED, "only web-0 left")
    assert pods(node, "app=web")[0]["metadata"]["uid"] == survivor
    events = node.kubectl("get", "events", "--field-selector", "involvedObject.name=web",
                          "--sort-by=.metadata.creationTimestamp").stdout
    deletions = [line for line in events.split("\n") if "delete Pod web-" in line and "for scale" not in line]
    assert [line.split("delete Pod ")[1].split()[0] for line in deletions][-2:] == ["web-2", "web-1"], events
    node.kubectl("delete", "sts", "web")
    node.kubectl("delete", "svc", "web")
    wait_for(lambda: not node.json("get", "pods", "-l", "app=web")["items"], LOADED, "the set's pods gone")


def test_daemonset_rolling_update_and_undo_on_a_real_node(node: PrivateNode) -> None:
    manifest = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "agent"}},
                         "template": {"metadata": {"labels": {"app": "agent"}},
                                      "spec": {"terminationGracePeriodSeconds": 2, "containers": [
                                          {"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                                           "command": COMMAND, "env": [{"name": "STAGE", "value": "one"}]}]}}}}
    node.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    node.kubectl("rollout", "status", "ds/agent", f"--timeout={LOADED}s")
    (first,) = pods(node, "app=agent")
    assert first["spec"]["nodeName"] == "apps-sets" and first["status"]["phase"] == "Running"
    node.kubectl("set", "env", "ds/agent", "STAGE=two")
    out = node.kubectl("rollout", "status", "ds/agent", f"--timeout={LOADED}s").stdout
    assert 'daemon set "agent" successfully rolled out' in out
    (second,) = wait_for(lambda: settled(node, "app=agent", 1, ["two"]), LOADED, "the updated pod")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    table = node.kubectl("get", "ds", "agent").stdout.split("\n")
    assert table[1].split()[:6] == ["agent", "1", "1", "1", "1", "1"], table
    assert history(node, "ds/agent") == ["1", "2"]
    node.kubectl("rollout", "undo", "ds/agent")
    node.kubectl("rollout", "status", "ds/agent", f"--timeout={LOADED}s")
    wait_for(lambda: settled(node, "app=agent", 1, ["one"]), LOADED, "the pod back at the first revision")
    assert history(node, "ds/agent") == ["2", "3"]
    node.kubectl("delete", "ds", "agent")
    wait_for(lambda: not node.json("get", "pods", "-l", "app=agent")["items"], LOADED, "the daemon pod gone")
