"""Pure pod logic: actions from spec + runtime state, status and phase, pull policy, backoff."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from agent.backoff import Backoff
from agent.image_policy import PullDecision, pull_decision
from agent.pod_actions import compute_pod_actions
from agent.pod_status import ContainerWaiting, carry_transition_times, generate_pod_status, pod_phase
from shipmate.images import default_pull_policy, image_tag
from shipmate.qos import pod_qos_class as qos_class
from agent.runtime_state import ContainerPhase, ContainerState, PodRuntimeStatus, SandboxState

NOW = datetime(2026, 11, 25, 22, 0, 0, tzinfo=timezone.utc)
SECOND = 1_000_000_000


def pod(restart_policy: str = "Always", names: tuple[str, ...] = ("web", "sidecar"), **extra) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": restart_policy, "containers": [{"name": n, "image": "busybox"} for n in names]},
            "status": extra.get("status", {})}


def sandbox(ready: bool = True, ip: str = "10.244.0.7", attempt: int = 0, id: str = "sb") -> SandboxState:
    return SandboxState(id=id, attempt=attempt, ready=ready, created_at=attempt + 1, ip=ip)


def container(name: str, phase: ContainerPhase, attempt: int = 0, exit_code: int = 0, id: str | None = None) -> ContainerState:
    return ContainerState(id=id or f"{name}-{attempt}", name=name, attempt=attempt, phase=phase,
                          started_at=10 * SECOND, finished_at=20 * SECOND if phase == ContainerPhase.EXITED else 0,
                          exit_code=exit_code, image="docker.io/library/busybox:latest",
                          image_ref="docker.io/library/busybox@sha256:abc")


# ---------------------------------------------------------------- actions
def test_new_pod_creates_sandbox_and_starts_every_container() -> None:
    actions = compute_pod_actions(pod(), PodRuntimeStatus("u"))
    assert actions.create_sandbox and not actions.kill_pod and actions.attempt == 0
    assert [(c.name, c.restart_count) for c in actions.start] == [("web", 0), ("sidecar", 0)]


def test_running_pod_needs_nothing() -> None:
    status = PodRuntimeStatus("u", [sandbox()], [container("web", ContainerPhase.RUNNING),
                                                 container("sidecar", ContainerPhase.RUNNING)])
    assert compute_pod_actions(pod(), status).nothing_to_do


def test_missing_container_is_started_in_existing_sandbox() -> None:
    status = PodRuntimeStatus("u", [sandbox()], [container("web", ContainerPhase.RUNNING)])
    actions = compute_pod_actions(pod(), status)
    assert not actions.create_sandbox and actions.sandbox_id == "sb"
    assert [c.name for c in actions.start] == ["sidecar"]


def test_dead_sandbox_is_replaced_with_next_attempt() -> None:
    status = PodRuntimeStatus("u", [sandbox(ready=False, attempt=1)], [container("web", ContainerPhase.EXITED)])
    actions = compute_pod_actions(pod(), status)
    assert actions.kill_pod and actions.create_sandbox and actions.attempt == 2
    assert [(c.name, c.restart_count) for c in actions.start] == [("web", 1), ("sidecar", 0)]


def test_sandbox_without_ip_is_replaced() -> None:
    actions = compute_pod_actions(pod(), PodRuntimeStatus("u", [sandbox(ip="")]))
    assert actions.create_sandbox


@pytest.mark.parametrize("policy, exit_code, restarts", [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 2, True),
    ("Never", 1, False)])
def test_exited_container_restarts_per_policy(policy: str, exit_code: int, restarts: bool) -> None:
    status = PodRuntimeStatus("u", [sandbox()], [container("web", ContainerPhase.EXITED, attempt=0, exit_code=exit_code)])
    actions = compute_pod_actions(pod(policy, names=("web",)), status)
    assert [(c.name, c.restart_count) for c in actions.start] == ([("web", 1)] if restarts else [])


def test_never_pod_whose_sandbox_died_is_not_recreated() -> None:
    status = PodRuntimeStatus("u", [sandbox(ready=False)], [container("web", ContainerPhase.EXITED)])
    actions = compute_pod_actions(pod("Never", names=("web",)), status)
    assert not actions.create_sandbox and not actions.start


def test_created_but_never_started_container_is_replaced() -> None:
    status = PodRuntimeStatus("u", [sandbox()], [container("web", ContainerPhase.CREATED, id="c1")])
    actions = compute_pod_actions(pod(names=("web",)), status)
    assert actions.remove == ["c1"] and [c.name for c in actions.start] == ["web"]


def test_container_not_in_spec_is_killed() -> None:
    status = PodRuntimeStatus("u", [sandbox()], [container("web", ContainerPhase.RUNNING),
                                                 container("old", ContainerPhase.RUNNING, id="old-1")])
    assert list(compute_pod_actions(pod(names=("web",)), status).kill) == ["old-1"]


def test_running_container_with_a_changed_spec_is_replaced() -> None:
    from agent.container_config import container_hash
    spec = pod(names=("web",))
    current = container("web", ContainerPhase.RUNNING, attempt=0, id="c0")
    current.hash = container_hash({"name": "web", "image": "busybox:old"})
    actions = compute_pod_actions(spec, PodRuntimeStatus("u", [sandbox()], [current]))
    assert actions.kill == {"c0": "Container web definition changed, will be restarted"}
    assert [(c.name, c.restart_count) for c in actions.start] == [("web", 1)]
    current.hash = container_hash(spec["spec"]["containers"][0])
    assert compute_pod_actions(spec, PodRuntimeStatus("u", [sandbox()], [current])).nothing_to_do


def test_old_dead_containers_are_removed_keeping_the_last_run() -> None:
    status = PodRuntimeStatus("u", [sandbox()], [
        container("web", ContainerPhase.RUNNING, attempt=3),
        container("web", ContainerPhase.EXITED, attempt=2),
        container("web", ContainerPhase.EXITED, attempt=1),
        container("web", ContainerPhase.EXITED, attempt=0)])
    actions = compute_pod_actions(pod(names=("web",)), status)
    assert actions.remove == ["web-1", "web-0"] and not actions.start


# ---------------------------------------------------------------- status
def test_status_of_a_new_pod_is_pending_with_container_creating() -> None:
    status = generate_pod_status(pod(), PodRuntimeStatus("u"), {}, host_ips=["192.0.2.2"],
                                 runtime_name="containerd", now=NOW)
    assert status["phase"] == "Pending"
    assert [s["state"] for s in status["containerStatuses"]] == [{"waiting": {"reason": "ContainerCreating"}}] * 2
    assert status["hostIP"] == "192.0.2.2" and status["hostIPs"] == [{"ip": "192.0.2.2"}]
    assert "podIP" not in status
    assert status["qosClass"] == "BestEffort"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["PodReadyToStartContainers"]["status"] == "False"
    assert conditions["Ready"]["message"] == "containers with unready status: [web sidecar]"
    assert status["startTime"] == "2026-11-25T22:00:00Z"


def test_status_of_a_running_pod() -> None:
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-25T21:59:59Z"}
    runtime = PodRuntimeStatus("u", [sandbox()], [container("web", ContainerPhase.RUNNING),
                                                  container("sidecar", ContainerPhase.RUNNING)])
    status = generate_pod_status(pod(status={"conditions": [scheduled]}), runtime, {}, host_ips=["192.0.2.2"],
                                 runtime_name="containerd", now=NOW)
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.244.0.7" and status["podIPs"] == [{"ip": "10.244.0.7"}]
    web = status["containerStatuses"][0]
    assert web["state"] == {"running": {"startedAt": "1970-01-01T00:00:10Z"}}
    assert web["containerID"] == "containerd://web-0"
    assert web["imageID"] == "docker.io/library/busybox@sha256:abc"
    assert web["image"] == "docker.io/library/busybox:latest"
    assert (web["ready"], web["started"], web["restartCount"]) == (True, True, 0)
    assert [c["type"] for c in status["conditions"]] == \
        ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" for c in status["conditions"])


def test_pull_error_shows_in_waiting_state() -> None:
    runtime = PodRuntimeStatus("u", [sandbox()])
    status = generate_pod_status(pod(names=("web",)), runtime,
                                 {"web": ContainerWaiting("ErrImagePull", "not found")},
                                 host_ips=[], runtime_name="containerd", now=NOW)
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "ErrImagePull", "message": "not found"}}
    assert status["phase"] == "Pending"


def test_crash_looping_container_shows_waiting_with_last_state() -> None:
    runtime = PodRuntimeStatus("u", [sandbox()], [container("web", ContainerPhase.EXITED, attempt=2, exit_code=1)])
    status = generate_pod_status(pod(names=("web",)), runtime, {"web": ContainerWaiting("CrashLoopBackOff", "back-off")},
                                 host_ips=[], runtime_name="containerd", now=NOW)
    web = status["containerStatuses"][0]
    assert web["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert web["lastState"]["terminated"]["exitCode"] == 1
    assert web["lastState"]["terminated"]["reason"] == "Error"
    assert web["restartCount"] == 2
    assert status["phase"] == "Running"   # waiting after a termination counts as stopped, policy Always


@pytest.mark.parametrize("policy, codes, terminal, phase", [
    ("Never", [0, 0], False, "Succeeded"), ("Never", [0, 1], False, "Failed"),
    ("OnFailure", [0, 1], False, "Running"), ("Always", [0, 0], False, "Running"),
    ("Always", [137, 0], True, "Failed"), ("Always", [0, 0], True, "Succeeded")])
def test_phase_of_stopped_pods(policy: str, codes: list[int], terminal: bool, phase: str) -> None:
    statuses = [{"name": n, "state": {"terminated": {"exitCode": c}}} for n, c in zip(("web", "sidecar"), codes)]
    assert pod_phase(pod(policy), statuses, terminal) == phase


def test_phase_pending_while_any_container_waits() -> None:
    statuses = [{"name": "web", "state": {"running": {}}}, {"name": "sidecar", "state": {"waiting": {}}}]
    assert pod_phase(pod(), statuses, False) == "Pending"


def test_transition_times_only_move_when_status_changes() -> None:
    old = [{"type": "Ready", "status": "False", "lastTransitionTime": "T0"},
           {"type": "Initialized", "status": "True", "lastTransitionTime": "T0"}]
    new = carry_transition_times(old, [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}], "T1")
    assert [c["lastTransitionTime"] for c in new] == ["T1", "T0"]


def test_qos_class() -> None:
    guaranteed = pod(names=("web",))
    guaranteed["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert qos_class(guaranteed) == "Guaranteed"
    guaranteed["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}}
    assert qos_class(guaranteed) == "Burstable"


# ---------------------------------------------------------------- images and backoff
@pytest.mark.parametrize("image, tag, policy", [
    ("busybox", None, "Always"), ("busybox:latest", "latest", "Always"), ("busybox:1.36", "1.36", "IfNotPresent"),
    ("127.0.0.1:5000/library/busybox", None, "Always"), ("127.0.0.1:5000/x:2", "2", "IfNotPresent"),
    ("busybox@sha256:abc", None, "IfNotPresent")])
def test_default_pull_policy(image: str, tag: str | None, policy: str) -> None:
    assert image_tag(image) == tag
    assert default_pull_policy(image) == policy


@pytest.mark.parametrize("policy, present, decision", [
    ("Always", True, PullDecision.PULL), ("IfNotPresent", True, PullDecision.USE_PRESENT),
    ("IfNotPresent", False, PullDecision.PULL), ("Never", True, PullDecision.USE_PRESENT),
    ("Never", False, PullDecision.NEVER_PULL_MISSING), (None, True, PullDecision.USE_PRESENT)])
def test_pull_decision(policy: str | None, present: bool, decision: PullDecision) -> None:
    assert pull_decision(policy, "busybox:1.36", present) is decision


def test_backoff_doubles_to_the_cap_and_expires() -> None:
    now = [0.0]
    backoff = Backoff(initial=10, maximum=40, clock=lambda: now[0])
    assert not backoff.in_backoff("k")
    assert [backoff.failed("k") for _ in range(4)] == [10, 20, 40, 40]
    assert backoff.in_backoff("k") and backoff.remaining("k") == 40
    now[0] = 41
    assert not backoff.in_backoff("k")
    now[0] = 200   # quiet for more than twice the maximum: start over
    assert backoff.failed("k") == 10
    backoff.reset("k")
    assert backoff.remaining("k") == 0
