"""Issue 3 items 2 (volumes) and 3 (probes) with real kubectl against the running cluster."""
from __future__ import annotations

import os
import shutil
import time
from typing import Iterator

import pytest

from tests.e2e.cluster import TEST_IMAGE, Kubectl, container_status, pod_manifest, restart_agent, unique_name
from tests.support import wait_for

pytestmark = pytest.mark.e2e

AGENT_ROOT = "/var/lib/shipmate/agent"
GRACE = {"terminationGracePeriodSeconds": 2}


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = unique_name("c-vp")
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "pods", "--all", "-n", name, "--grace-period=1", "--wait=true", check=False, timeout=120)
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def host_dir() -> Iterator[str]:
    path = f"/tmp/{unique_name('c-vp-host')}"
    os.makedirs(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def get_pod(kubectl: Kubectl, ns: str, name: str) -> dict:
    return kubectl.json("get", "pod", name, "-n", ns)


def running(kubectl: Kubectl, ns: str, name: str) -> dict | None:
    pod = get_pod(kubectl, ns, name)
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if statuses and all("running" in s.get("state", {}) for s in statuses):
        return pod
    return None


def log_text(pod: dict, container: str, restart: int = 0) -> str:
    meta = pod["metadata"]
    path = f"/var/log/pods/{meta['namespace']}_{meta['name']}_{meta['uid']}/{container}/{restart}.log"
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def ready_column(kubectl: Kubectl, ns: str, name: str) -> str:
    row = kubectl.run("get", "pod", name, "-n", ns, "--no-headers").stdout.split()
    return row[1]


def events_text(kubectl: Kubectl, ns: str, name: str) -> str:
    return kubectl.run("describe", "pod", name, "-n", ns).stdout


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


# ---------------------------------------------------------------- volumes
def test_empty_dir_shared_between_containers_and_memory_is_tmpfs(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("empty")
    mounts = [{"name": "cache", "mountPath": "/cache"}, {"name": "mem", "mountPath": "/mem"}]
    kubectl.apply(pod_manifest(name, ns, [
        {"name": "writer", "image": TEST_IMAGE,
         "volumeMounts": mounts + [{"name": "cache", "mountPath": "/sub", "subPath": "nested/dir"}],
         "command": sh("echo in-sub > /sub/s; echo shared-data > /cache/hello; echo in-memory > /mem/m; "
                       "exec sleep 3600")},
        {"name": "reader", "image": TEST_IMAGE, "volumeMounts": mounts,
         "command": sh("while [ ! -f /cache/hello ]; do sleep 0.2; done; cat /cache/hello; "
                       "grep ' /mem ' /proc/mounts; grep ' /cache ' /proc/mounts; exec sleep 3600")},
    ], volumes=[{"name": "cache", "emptyDir": {}},
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}], **GRACE))
    pod = wait_for(lambda: running(kubectl, ns, name), timeout=30, what="pod running")
    uid = pod["metadata"]["uid"]
    log = wait_for(lambda: "shared-data" in log_text(pod, "reader") and log_text(pod, "reader"), timeout=15,
                   what="reader seeing the writer's file")
    mem_line = next(line for line in log.splitlines() if " /mem " in line)
    assert " tmpfs " in mem_line and "size=16384k" in mem_line, mem_line
    cache_line = next(line for line in log.splitlines() if " /cache " in line)
    assert " tmpfs " not in cache_line, cache_line

    volumes = f"{AGENT_ROOT}/pods/{uid}/volumes/kubernetes.io~empty-dir"
    assert open(f"{volumes}/cache/hello").read() == "shared-data\n"
    assert open(f"{volumes}/mem/m").read() == "in-memory\n"
    assert open(f"{volumes}/cache/nested/dir/s").read() == "in-sub\n"
    assert f"{volumes}/mem" in open("/proc/self/mountinfo").read()

    kubectl.run("delete", "pod", name, "-n", ns, "--wait=true", timeout=60)
    wait_for(lambda: not os.path.exists(f"{AGENT_ROOT}/pods/{uid}"), timeout=15, what="pod volumes removed")
    assert f"{volumes}/mem" not in open("/proc/self/mountinfo").read()


def test_host_path_volumes_and_type_check(kubectl: Kubectl, ns: str, host_dir: str) -> None:
    with open(f"{host_dir}/from-host", "w") as handle:
        handle.write("host-content\n")
    created = f"{host_dir}/created"
    name = unique_name("hostpath")
    kubectl.apply(pod_manifest(name, ns, [
        {"name": "app", "image": TEST_IMAGE,
         "volumeMounts": [{"name": "ro", "mountPath": "/ro", "readOnly": True},
                          {"name": "rw", "mountPath": "/rw"}],
         "command": sh("cat /ro/from-host; echo from-pod > /rw/out; "
                       "touch /ro/nope 2>/dev/null || echo read-only-ok; exec sleep 3600")},
    ], volumes=[{"name": "ro", "hostPath": {"path": host_dir, "type": "Directory"}},
                {"name": "rw", "hostPath": {"path": created, "type": "DirectoryOrCreate"}}], **GRACE))
    pod = wait_for(lambda: running(kubectl, ns, name), timeout=30, what="pod running")
    wait_for(lambda: "read-only-ok" in log_text(pod, "app"), timeout=10, what="container output")
    assert "host-content" in log_text(pod, "app")
    assert open(f"{created}/out").read() == "from-pod\n"

    bad = unique_name("badhost")
    kubectl.apply(pod_manifest(bad, ns, [{"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"],
                                          "volumeMounts": [{"name": "f", "mountPath": "/f"}]}],
                               volumes=[{"name": "f", "hostPath": {"path": host_dir, "type": "File"}}], **GRACE))
    message = f'MountVolume.SetUp failed for volume "f" : hostPath type check failed: {host_dir} is not a file'
    wait_for(lambda: message in events_text(kubectl, ns, bad), timeout=20, what="FailedMount event")
    assert "FailedMount" in events_text(kubectl, ns, bad)
    pod = get_pod(kubectl, ns, bad)
    assert pod["status"]["phase"] == "Pending"
    assert container_status(pod, "app")["state"]["waiting"]["reason"] == "ContainerCreating"


def test_config_map_and_secret_volumes(kubectl: Kubectl, ns: str) -> None:
    kubectl.run("create", "configmap", "settings", "-n", ns, "--from-literal=greeting=hello")
    kubectl.run("create", "secret", "generic", "creds", "-n", ns, "--from-literal=password=hunter2")
    name = unique_name("data")
    kubectl.apply(pod_manifest(name, ns, [
        {"name": "app", "image": TEST_IMAGE,
         "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec"},
                          {"name": "one", "mountPath": "/one"},
                          {"name": "cfg", "mountPath": "/etc/greeting", "subPath": "greeting"}],
         "command": sh("cat /sec/password; echo; grep ' /sec ' /proc/mounts; ls /one; "
                       "echo \"file=$(cat /etc/greeting)\"; "
                       "while true; do echo \"greeting=$(cat /cfg/greeting)\"; sleep 1; done")},
    ], volumes=[{"name": "cfg", "configMap": {"name": "settings"}},
                {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                {"name": "one", "configMap": {"name": "settings", "items": [{"key": "greeting", "path": "g.txt"}]}}],
        **GRACE))
    pod = wait_for(lambda: running(kubectl, ns, name), timeout=30, what="pod running")
    log = wait_for(lambda: "greeting=hello" in log_text(pod, "app") and log_text(pod, "app"), timeout=10,
                   what="configMap content")
    assert "hunter2" in log and "g.txt" in log and "file=hello" in log
    sec_line = next(line for line in log.splitlines() if " /sec " in line)
    assert " tmpfs " in sec_line and " ro," in sec_line, sec_line
    uid = pod["metadata"]["uid"]
    secret_dir = f"{AGENT_ROOT}/pods/{uid}/volumes/kubernetes.io~secret/sec"
    assert os.path.islink(f"{secret_dir}/..data") and os.readlink(f"{secret_dir}/password") == "..data/password"
    assert os.stat(f"{secret_dir}/password").st_mode & 0o777 == 0o400

    started = time.monotonic()
    kubectl.run("patch", "configmap", "settings", "-n", ns, "--type=merge", "-p", '{"data":{"greeting":"updated"}}')
    wait_for(lambda: "greeting=updated" in log_text(pod, "app"), timeout=30, what="configMap update in the file")
    print(f"configMap update reached the container in {time.monotonic() - started:.1f}s")

    missing = unique_name("nocm")
    kubectl.apply(pod_manifest(missing, ns, [{"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"],
                                              "volumeMounts": [{"name": "c", "mountPath": "/c"}]}],
                               volumes=[{"name": "c", "configMap": {"name": "absent"}}], **GRACE))
    wait_for(lambda: 'MountVolume.SetUp failed for volume "c" : configmap "absent" not found'
             in events_text(kubectl, ns, missing), timeout=20, what="FailedMount for a missing configMap")
    kubectl.run("create", "configmap", "absent", "-n", ns, "--from-literal=k=v")
    wait_for(lambda: running(kubectl, ns, missing), timeout=60, what="pod starting once the configMap exists")


# ---------------------------------------------------------------- probes
def test_readiness_probes_follow_exec_and_http_results(kubectl: Kubectl, ns: str, host_dir: str) -> None:
    name = unique_name("ready")
    control = [{"name": "ctl", "mountPath": "/ctl"}]
    kubectl.apply(pod_manifest(name, ns, [
        {"name": "web", "image": TEST_IMAGE, "volumeMounts": control,
         "ports": [{"name": "http", "containerPort": 8080}],
         "command": ["httpd", "-f", "-p", "8080", "-h", "/ctl"],
         "readinessProbe": {"httpGet": {"path": "/ready-http", "port": "http"}, "periodSeconds": 1}},
        {"name": "checker", "image": TEST_IMAGE, "volumeMounts": control, "command": ["sleep", "3600"],
         "readinessProbe": {"exec": {"command": ["test", "-f", "/ctl/ready-exec"]}, "periodSeconds": 1}},
    ], volumes=[{"name": "ctl", "hostPath": {"path": host_dir, "type": "Directory"}}], **GRACE))
    wait_for(lambda: running(kubectl, ns, name), timeout=30, what="pod running")
    time.sleep(3)
    assert ready_column(kubectl, ns, name) == "0/2"
    pod = get_pod(kubectl, ns, name)
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert container_status(pod, "web")["started"] is True and container_status(pod, "web")["ready"] is False

    open(f"{host_dir}/ready-http", "w").write("ok")
    wait_for(lambda: ready_column(kubectl, ns, name) == "1/2", timeout=15, what="httpGet readiness passing")
    assert container_status(get_pod(kubectl, ns, name), "web")["ready"] is True
    open(f"{host_dir}/ready-exec", "w").write("ok")
    wait_for(lambda: ready_column(kubectl, ns, name) == "2/2", timeout=15, what="exec readiness passing")
    pod = get_pod(kubectl, ns, name)
    assert next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    os.remove(f"{host_dir}/ready-http")
    wait_for(lambda: ready_column(kubectl, ns, name) == "1/2", timeout=15, what="readiness failing again")
    assert "Readiness probe failed: HTTP probe failed with statuscode: 404" in events_text(kubectl, ns, name)
    assert container_status(get_pod(kubectl, ns, name), "web")["restartCount"] == 0


def test_liveness_failure_restarts_and_tcp_probes(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("live")
    kubectl.apply(pod_manifest(name, ns, [
        {"name": "web", "image": TEST_IMAGE, "command": ["httpd", "-f", "-p", "8080"],
         "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
         "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}},
        {"name": "doomed", "image": TEST_IMAGE, "command": ["sleep", "3600"],
         "livenessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 2}},
    ], **GRACE))
    def restarted() -> dict | None:
        pod = get_pod(kubectl, ns, name)
        return pod if container_status(pod, "doomed").get("restartCount", 0) >= 1 else None
    pod = wait_for(restarted, timeout=40, what="liveness restart")
    assert container_status(pod, "web")["restartCount"] == 0
    wait_for(lambda: container_status(get_pod(kubectl, ns, name), "web").get("ready"), timeout=10,
             what="tcpSocket readiness")
    described = events_text(kubectl, ns, name)
    assert "Liveness probe failed: dial tcp" in described and ":9999: connect: connection refused" in described
    assert "Container doomed failed liveness probe, will be restarted" in described
    events = kubectl.json("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    unhealthy = [e for e in events if e["reason"] == "Unhealthy"]
    assert unhealthy and unhealthy[0]["type"] == "Warning"
    assert unhealthy[0]["involvedObject"]["fieldPath"] == "spec.containers{doomed}"


def test_liveness_exec_and_startup_probe(kubectl: Kubectl, ns: str, host_dir: str) -> None:
    name = unique_name("startup")
    kubectl.apply(pod_manifest(name, ns, [
        {"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"],
         "volumeMounts": [{"name": "ctl", "mountPath": "/ctl"}],
         "startupProbe": {"exec": {"command": ["test", "-f", "/ctl/started"]}, "periodSeconds": 1,
                          "failureThreshold": 60},
         "livenessProbe": {"exec": {"command": ["sh", "-c", "test ! -f /ctl/sick"]}, "periodSeconds": 1,
                           "failureThreshold": 1}},
    ], volumes=[{"name": "ctl", "hostPath": {"path": host_dir, "type": "Directory"}}], **GRACE))
    wait_for(lambda: running(kubectl, ns, name), timeout=30, what="pod running")
    time.sleep(2)
    status = container_status(get_pod(kubectl, ns, name), "app")
    assert status["started"] is False and status["ready"] is False
    open(f"{host_dir}/started", "w").write("")
    wait_for(lambda: container_status(get_pod(kubectl, ns, name), "app").get("ready"), timeout=10,
             what="started and ready")
    assert container_status(get_pod(kubectl, ns, name), "app")["started"] is True
    open(f"{host_dir}/sick", "w").write("")
    wait_for(lambda: container_status(get_pod(kubectl, ns, name), "app").get("restartCount", 0) >= 1,
             timeout=30, what="exec liveness restart")
    assert "Container app failed liveness probe, will be restarted" in events_text(kubectl, ns, name)


# ---------------------------------------------------------------- crash-safety
@pytest.mark.disruptive
def test_agent_restart_keeps_volumes_and_readiness(kubectl: Kubectl, ns: str) -> None:
    kubectl.run("create", "configmap", "settings", "-n", ns, "--from-literal=greeting=hello")
    name = unique_name("survivor")
    kubectl.apply(pod_manifest(name, ns, [
        {"name": "app", "image": TEST_IMAGE,
         "volumeMounts": [{"name": "mem", "mountPath": "/mem"}, {"name": "cfg", "mountPath": "/cfg"}],
         "command": sh("echo kept > /mem/state; exec sleep 3600"),
         "readinessProbe": {"exec": {"command": ["cat", "/cfg/greeting"]}, "periodSeconds": 5}},
    ], volumes=[{"name": "mem", "emptyDir": {"medium": "Memory"}}, {"name": "cfg", "configMap": {"name": "settings"}}],
        **GRACE))
    wait_for(lambda: ready_column(kubectl, ns, name) == "1/1", timeout=30, what="pod ready")
    pod = get_pod(kubectl, ns, name)
    uid, container_id = pod["metadata"]["uid"], container_status(pod, "app")["containerID"]
    mem = f"{AGENT_ROOT}/pods/{uid}/volumes/kubernetes.io~empty-dir/mem"

    restart_agent()
    readiness_seen = set()
    deadline = time.monotonic() + 12           # the restart, a few syncs and a probe period
    while time.monotonic() < deadline:
        status = container_status(get_pod(kubectl, ns, name), "app")
        readiness_seen.add(status.get("ready"))
        time.sleep(0.3)
    assert readiness_seen == {True}, "readiness flapped across the agent restart"
    status = container_status(get_pod(kubectl, ns, name), "app")
    assert status["containerID"] == container_id and status["restartCount"] == 0
    assert open(f"{mem}/state").read() == "kept\n"
    mount_points = [line.split()[4] for line in open("/proc/self/mountinfo")]
    assert mount_points.count(mem) == 1, "the memory volume was mounted again"
