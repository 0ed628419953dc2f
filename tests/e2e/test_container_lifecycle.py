"""Issue 3 items 1-2 acceptance: container lifecycle and spec fidelity, driven by the real kubectl
against the running cluster, checked in the API, in kubectl's table, in the CRI log files and
inside the containers (cgroups, env, resolv.conf)."""
from __future__ import annotations

import json
import os
import time
from datetime import datetime
from typing import Any, Iterator

import pytest

from tests.e2e.cluster import TEST_IMAGE, Kubectl, KubectlError, container_status, pod_manifest, unique_name
from tests.support import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = unique_name("b-life")
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "pods", "--all", "-n", name, "--grace-period=0", "--force", "--wait=true",
                check=False, timeout=120)
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": TEST_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script], **extra}


def get_pod(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    """The pod; rides out an API server restart (others restart the shared cluster's server)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return kubectl.json("get", "pod", name, "-n", ns)
        except KubectlError as error:
            if "refused" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def finished(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any] | None:
    pod = get_pod(kubectl, ns, name)
    return pod if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") else None


def status_column(kubectl: Kubectl, ns: str, name: str) -> str:
    """kubectl's STATUS column (the server's table printer)."""
    result = kubectl.run("get", "pod", name, "-n", ns, "--no-headers", check=False)
    return result.stdout.split()[2] if result.returncode == 0 else ""


def log_lines(pod: dict[str, Any], container: str, restart: int = 0) -> list[str]:
    """The messages of a container's CRI log file (`<time> <stream> <tag> <message>` lines)."""
    meta = pod["metadata"]
    path = f"/var/log/pods/{meta['namespace']}_{meta['name']}_{meta['uid']}/{container}/{restart}.log"
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [line.rstrip("\n").split(" ", 3)[3] for line in handle if line.count(" ") >= 3]


def events_of(kubectl: Kubectl, ns: str, name: str) -> list[dict[str, Any]]:
    return kubectl.json("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- restart policies
def agent_pid() -> str:
    try:
        with open("/run/shipmate/agent.pid") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def crash_loop_runs(kubectl: Kubectl, ns: str, name: str) -> tuple[list[tuple[float, float]], str] | None:
    """(startedAt, finishedAt) of runs 1-3 of a crash-looping container (each shows as lastState
    while the next waits) and the last CrashLoopBackOff message; None when the agent restarted
    meanwhile (kubelet keeps the backoff in memory: a restart resets it, so the delays are only
    meaningful without one)."""
    pid = agent_pid()
    kubectl.apply(pod_manifest(name, ns, [sh("app", "echo run; exit 1")], terminationGracePeriodSeconds=1))
    runs: set[tuple[float, float]] = set()
    message = ""
    done = False

    def collect() -> bool:
        nonlocal message, done
        status = container_status(get_pod(kubectl, ns, name), "app")
        last = status.get("lastState", {}).get("terminated")
        if last:
            assert last["exitCode"] == 1 and last["reason"] == "Error", last
            runs.add((stamp(last["startedAt"]), stamp(last["finishedAt"])))
        waiting = status.get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff":
            message = waiting.get("message", "")
            done = status["restartCount"] >= 3
        return done or agent_pid() != pid

    wait_for(collect, timeout=60, interval=0.5, what="the fourth run (restartCount 3) to exit")
    return (sorted(runs)[-3:], message) if agent_pid() == pid else None


def test_always_crash_loops_with_growing_delays(kubectl: Kubectl, ns: str) -> None:
    for _attempt in range(3):
        name = unique_name("crash")
        measured = crash_loop_runs(kubectl, ns, name)
        if measured is not None:
            break
        print("the agent restarted during the measurement: measuring again")
    else:
        pytest.fail("the agent restarted during every measurement")
    runs, message = measured
    gaps = [runs[n + 1][0] - runs[n][1] for n in range(2)]
    print(f"restart gaps after the second and third exits: {gaps}")
    # The first restart is immediate, then 10 s after the exit, then 20 s (timestamps: whole seconds).
    assert 9 <= gaps[0] <= 13, gaps
    assert 19 <= gaps[1] <= 23, gaps
    assert message.startswith("back-off ") and "restarting failed container=app pod=" in message, message
    pod = get_pod(kubectl, ns, name)
    assert pod["status"]["phase"] == "Running"
    assert wait_for(lambda: status_column(kubectl, ns, name) == "CrashLoopBackOff", timeout=25,
                    what="kubectl STATUS CrashLoopBackOff")
    reasons = {(e["reason"], e["message"]) for e in events_of(kubectl, ns, name)}
    uid = pod["metadata"]["uid"]
    assert ("BackOff", f"Back-off restarting failed container app in pod {name}_{ns}({uid})") in reasons
    assert ("Created", "Created container: app") in reasons and ("Started", "Started container app") in reasons
    assert any(r == "Pulled" and "already present on machine" in m for r, m in reasons), reasons


def test_never_fails_the_pod(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("never")
    kubectl.apply(pod_manifest(name, ns, [sh("app", "echo disk full > /dev/termination-log; exit 3"),
                                          sh("logs", "echo last words; exit 4",
                                             terminationMessagePolicy="FallbackToLogsOnError")],
                               restartPolicy="Never"))
    pod = wait_for(lambda: finished(kubectl, ns, name), timeout=20, what="pod finished")
    assert pod["status"]["phase"] == "Failed"
    status = container_status(pod, "app")
    assert status["restartCount"] == 0 and status["state"]["terminated"]["exitCode"] == 3
    assert status["state"]["terminated"]["reason"] == "Error"

    # containerd copies the log asynchronously: the message may follow the exit by a moment.
    def messages() -> tuple[str, str] | None:
        latest = get_pod(kubectl, ns, name)
        found = tuple(container_status(latest, c)["state"]["terminated"].get("message", "") for c in ("app", "logs"))
        return found if all(found) else None
    assert wait_for(messages, timeout=10, interval=0.5, what="termination messages") == \
        ("disk full\n", "last words\n")
    conditions = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conditions["Ready"]["reason"] == "PodFailed" and conditions["Ready"]["status"] == "False"
    assert status_column(kubectl, ns, name) == "Error"


def test_on_failure_job_succeeds_on_third_try(kubectl: Kubectl, ns: str) -> None:
    # /dev/shm belongs to the sandbox (containerd mounts it into every container of the pod), so
    # it counts the tries across restarts.
    name = unique_name("onfail")
    script = "n=$(cat /dev/shm/tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > /dev/shm/tries; " \
             "echo try $n; [ $n -ge 3 ]"
    kubectl.apply(pod_manifest(name, ns, [sh("job", script)], restartPolicy="OnFailure"))
    pod = wait_for(lambda: finished(kubectl, ns, name), timeout=40, interval=0.5, what="pod finished")
    assert pod["status"]["phase"] == "Succeeded"
    status = container_status(pod, "job")
    assert status["restartCount"] == 2
    assert status["state"]["terminated"]["exitCode"] == 0 and status["state"]["terminated"]["reason"] == "Completed"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert log_lines(pod, "job", 2) == ["try 3"]
    assert status_column(kubectl, ns, name) == "Completed"


def test_memory_hog_is_oom_killed(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("oom")
    kubectl.apply(pod_manifest(name, ns, [sh("hog", "head -c 300m /dev/zero | tail",
                                             resources={"limits": {"memory": "64Mi"}})], restartPolicy="Never"))
    pod = wait_for(lambda: finished(kubectl, ns, name), timeout=30, what="pod finished")
    terminated = container_status(pod, "hog")["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled", terminated
    assert terminated["exitCode"] == 137
    assert pod["status"]["phase"] == "Failed"
    assert status_column(kubectl, ns, name) == "OOMKilled"


# ---------------------------------------------------------------- init containers
def test_init_containers_run_in_order_before_the_app(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("init")
    kubectl.apply(pod_manifest(name, ns, [sh("app", "cat /dev/shm/order; exec sleep 3600")], initContainers=[
        sh("first", "sleep 2; echo first >> /dev/shm/order"),
        sh("second", "echo second >> /dev/shm/order")], terminationGracePeriodSeconds=1))
    wait_for(lambda: status_column(kubectl, ns, name) == "Init:0/2", timeout=10, interval=0.2,
             what="kubectl STATUS Init:0/2")
    pending = get_pod(kubectl, ns, name)
    assert pending["status"]["phase"] == "Pending"
    assert container_status(pending, "app")["state"]["waiting"]["reason"] == "PodInitializing"
    initialized = next(c for c in pending["status"]["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False" and initialized["reason"] == "ContainersNotInitialized"

    pod = wait_for(lambda: (p := get_pod(kubectl, ns, name))["status"].get("phase") == "Running" and p,
                   timeout=20, what="pod Running")
    first, second = pod["status"]["initContainerStatuses"]
    assert [first["name"], second["name"]] == ["first", "second"]
    for init in (first, second):
        assert init["state"]["terminated"]["reason"] == "Completed" and init["ready"] is True
    assert stamp(second["state"]["terminated"]["startedAt"]) >= stamp(first["state"]["terminated"]["finishedAt"])
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert (initialized["status"], initialized.get("reason")) == ("True", "PodCompleted")
    assert wait_for(lambda: log_lines(pod, "app"), timeout=5, what="app log") == ["first", "second"]


def test_failing_init_container_under_never_fails_the_pod(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("initfail")
    kubectl.apply(pod_manifest(name, ns, [sh("app", "echo never runs")], restartPolicy="Never",
                               initContainers=[sh("check", "exit 2")]))
    pod = wait_for(lambda: finished(kubectl, ns, name), timeout=20, what="pod finished")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
    assert "state" in container_status(pod, "app") and "containerID" not in container_status(pod, "app")
    assert status_column(kubectl, ns, name) == "Init:Error"


def test_crash_looping_init_container(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("initloop")
    kubectl.apply(pod_manifest(name, ns, [sh("app", "sleep 3600")], initContainers=[sh("check", "exit 1")],
                               terminationGracePeriodSeconds=1))
    wait_for(lambda: status_column(kubectl, ns, name) == "Init:CrashLoopBackOff", timeout=20, interval=0.3,
             what="kubectl STATUS Init:CrashLoopBackOff")
    pod = get_pod(kubectl, ns, name)
    assert pod["status"]["phase"] == "Pending"
    check = pod["status"]["initContainerStatuses"][0]
    assert check["restartCount"] >= 1 and check["lastState"]["terminated"]["exitCode"] == 1
    assert "containerID" not in container_status(pod, "app")


# ---------------------------------------------------------------- spec fidelity
def test_env_field_refs_and_expansion_reach_the_container(kubectl: Kubectl, ns: str, node_name: str) -> None:
    name = unique_name("env")
    env = [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in (
        ("POD_NAME", "metadata.name"), ("POD_NS", "metadata.namespace"), ("POD_UID", "metadata.uid"),
        ("POD_IP", "status.podIP"), ("POD_IPS", "status.podIPs"), ("HOST_IP", "status.hostIP"),
        ("NODE", "spec.nodeName"), ("SA", "spec.serviceAccountName"), ("TIER", "metadata.labels['tier']"),
        ("NOTE", "metadata.annotations['note']"))]
    env += [{"name": "GREETING", "value": "hi $(POD_NAME)"},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}]
    manifest = pod_manifest(name, ns, [sh("app", "env | sort; echo args: $0", args=["$(GREETING)"], env=env,
                                          workingDir="/tmp", resources={"limits": {"memory": "32Mi"}})],
                            restartPolicy="Never")
    manifest["metadata"].update(labels={"tier": "web"}, annotations={"note": "hello"})
    kubectl.apply(manifest)
    pod = wait_for(lambda: finished(kubectl, ns, name), timeout=20, what="pod finished")
    assert pod["status"]["phase"] == "Succeeded"
    lines = log_lines(pod, "app")
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    ip = pod["status"]["podIP"]
    assert values["POD_NAME"] == name and values["POD_NS"] == ns and values["POD_UID"] == pod["metadata"]["uid"]
    assert values["POD_IP"] == ip and values["POD_IPS"] == ip and values["HOST_IP"] == pod["status"]["hostIP"]
    assert values["NODE"] == node_name and values["TIER"] == "web" and values["NOTE"] == "hello"
    assert values["GREETING"] == f"hi {name}" and values["MEM_MI"] == "32" and values["PWD"] == "/tmp"
    assert f"args: hi {name}" in lines
    assert values["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and values["KUBERNETES_SERVICE_PORT"] == "443"


def test_resources_reach_the_container_cgroup(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("cgroup")
    script = ("if [ -e /sys/fs/cgroup/cpu.max ]; then echo mem=$(cat /sys/fs/cgroup/memory.max); "
              "echo cpu=$(cat /sys/fs/cgroup/cpu.max); echo weight=$(cat /sys/fs/cgroup/cpu.weight); "
              "else echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); "
              "echo cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); "
              "echo shares=$(cat /sys/fs/cgroup/cpu/cpu.shares); fi")
    kubectl.apply(pod_manifest(name, ns, [sh("app", script, resources={
        "requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}})],
        restartPolicy="Never"))
    pod = wait_for(lambda: finished(kubectl, ns, name), timeout=20, what="pod finished")
    values = dict(line.split("=", 1) for line in log_lines(pod, "app"))
    assert values["mem"] == str(64 * 1024 * 1024)
    assert values["cpu"] == "50000 100000"
    assert values.get("shares", "256") == "256"
    assert pod["status"]["qosClass"] == "Burstable"


def test_security_context_and_dns(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("secdns")
    script = "id -u; id -g; touch /rootfs-write 2>/dev/null && echo rootfs=rw || echo rootfs=ro; " \
             "grep -E '^(nameserver|search|options)' /etc/resolv.conf; grep -v '^#' /etc/hosts; hostname"
    kubectl.apply(pod_manifest(name, ns, [sh("app", script, securityContext={
        "runAsUser": 1234, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False})],
        restartPolicy="Never", securityContext={"runAsUser": 1000, "runAsGroup": 4321}, hostname="custom-host",
        subdomain="sub", hostAliases=[{"ip": "192.0.2.9", "hostnames": ["alias-one", "alias-two"]}],
        dnsConfig={"options": [{"name": "ndots", "value": "2"}]}))
    pod = wait_for(lambda: finished(kubectl, ns, name), timeout=20, what="pod finished")
    lines = log_lines(pod, "app")
    assert lines[:3] == ["1234", "4321", "rootfs=ro"], lines
    assert "nameserver 10.96.0.10" in lines   # the kube-dns Service (the agent's default --cluster-dns)
    assert f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" in " ".join(lines) or \
        any(line.startswith(f"search {ns}.svc.cluster.local svc.cluster.local cluster.local") for line in lines), lines
    assert "options ndots:2" in lines and lines[-1] == "custom-host"
    ip = pod["status"]["podIP"]
    assert f"{ip}\tcustom-host.sub.{ns}.svc.cluster.local\tcustom-host" in lines, lines
    assert "127.0.0.1\tlocalhost" in lines and "192.0.2.9\talias-one\talias-two" in lines


def test_run_as_non_root_with_root_user_is_a_config_error(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("nonroot")
    kubectl.apply(pod_manifest(name, ns, [sh("app", "sleep 1", securityContext={
        "runAsNonRoot": True, "runAsUser": 0})]))
    wait_for(lambda: container_status(get_pod(kubectl, ns, name), "app").get("state", {}).get("waiting", {})
             .get("reason") == "CreateContainerConfigError", timeout=15, what="CreateContainerConfigError")
    message = container_status(get_pod(kubectl, ns, name), "app")["state"]["waiting"]["message"]
    assert message.startswith("container's runAsUser breaks non-root policy"), message


def test_missing_config_map_then_created(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("cmenv")
    kubectl.apply(pod_manifest(name, ns, [sh("app", "echo mode=$MODE; echo level=$LEVEL", env=[
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "X_"}])], restartPolicy="Never"))

    def waiting() -> dict[str, Any]:
        return container_status(get_pod(kubectl, ns, name), "app").get("state", {}).get("waiting", {})
    wait_for(lambda: waiting().get("reason") == "CreateContainerConfigError", timeout=15,
             what="CreateContainerConfigError")
    assert waiting()["message"] == 'configmap "settings" not found'
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
                   "data": {"mode": "fast", "LEVEL": "3"}})
    pod = wait_for(lambda: finished(kubectl, ns, name), timeout=40, interval=0.5, what="pod finished")
    assert log_lines(pod, "app") == ["mode=fast", "level="]


def test_pre_stop_hook_runs_before_a_changed_container_is_replaced(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("prestop")
    container = sh("app", "trap 'echo got TERM; exit 0' TERM; echo started; while true; do sleep 0.2; done",
                   lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo prestop-ran > /proc/1/fd/1"]}},
                              "postStart": {"exec": {"command": ["sh", "-c", "echo poststart-ran > /proc/1/fd/1"]}}})
    kubectl.apply(pod_manifest(name, ns, [container], terminationGracePeriodSeconds=5))
    pod = wait_for(lambda: (p := get_pod(kubectl, ns, name))["status"].get("phase") == "Running" and p,
                   timeout=20, what="pod Running")
    changed = dict(container, image=TEST_IMAGE.rsplit(":", 1)[0])        # same image, new reference
    kubectl.run("patch", "pod", name, "-n", ns, "--type=json", "-p",
                json.dumps([{"op": "replace", "path": "/spec/containers/0/image", "value": changed["image"]}]))
    wait_for(lambda: container_status(get_pod(kubectl, ns, name), "app").get("restartCount") == 1,
             timeout=20, what="the container replaced")
    lines = log_lines(pod, "app", 0)
    assert "poststart-ran" in lines and lines.index("prestop-ran") < lines.index("got TERM"), lines
    reasons = {(e["reason"], e["message"]) for e in events_of(kubectl, ns, name)}
    assert ("Killing", "Container app definition changed, will be restarted") in reasons, reasons


def test_sidecar_init_container_keeps_running_beside_the_app(kubectl: Kubectl, ns: str) -> None:
    name = unique_name("sidecar")
    kubectl.apply(pod_manifest(name, ns, [sh("app", "cat /dev/shm/order; exec sleep 3600")], initContainers=[
        sh("setup", "echo setup >> /dev/shm/order"),
        sh("proxy", "echo proxy >> /dev/shm/order; exec sleep 3600", restartPolicy="Always")],
        terminationGracePeriodSeconds=1))
    pod = wait_for(lambda: (p := get_pod(kubectl, ns, name))["status"].get("phase") == "Running"
                   and all("running" in s["state"] for s in p["status"]["containerStatuses"]) and p,
                   timeout=20, what="pod Running")
    setup, proxy = pod["status"]["initContainerStatuses"]
    assert setup["state"]["terminated"]["reason"] == "Completed"
    assert "running" in proxy["state"] and proxy["ready"] is True and proxy["started"] is True
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert wait_for(lambda: log_lines(pod, "app"), timeout=5, what="app log") == ["setup", "proxy"]
