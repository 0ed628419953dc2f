"""pods/ephemeralcontainers (kubectl debug), lifecycle sleep and stopSignal validation, and what the agent does
with them: ephemeral containers started once in the pod's sandbox (the target's PID namespace), never
restarted or killed as strangers, their statuses; observedGeneration on the pod status; stop signals."""
from __future__ import annotations

import copy
import signal

from agent.container_config import PodContext, container_config
from agent.pod_actions import compute_pod_actions
from agent.pod_status import generate_pod_status
from agent.runtime_state import ContainerPhase, ContainerState, PodRuntimeStatus, SandboxState
from agent.stop_signal import signal_number
from apiserver.kinds.pods import EphemeralContainersStrategy, PodStrategy
from cri.gen import api_pb2

PODS = PodStrategy()
EPHEMERAL = PodStrategy().subresource_strategies()["ephemeralcontainers"]


def stored_pod(**spec) -> dict:
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5", "generation": 1},
           "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec},
           "status": {"phase": "Running"}}
    PODS.default(obj)
    return obj


def debug_update(old: dict, *containers: dict, **extra) -> tuple[dict, list]:
    new = copy.deepcopy(old)
    new["spec"]["ephemeralContainers"] = [*(old["spec"].get("ephemeralContainers") or []), *containers]
    new["spec"].update(extra)
    new["status"] = {"phase": "Failed"}
    EPHEMERAL.prepare_for_update(new, old)
    EPHEMERAL.default(new)
    return new, EPHEMERAL.validate_update(new, old)


def details(errors: list) -> list[tuple[str, str]]:
    return [(e.field, e.reason) for e in errors]


def test_the_subresource_changes_only_ephemeral_containers() -> None:
    old = stored_pod()
    new, errors = debug_update(old, {"name": "debugger", "image": "busybox", "stdin": True, "tty": True,
                                     "targetContainerName": "app"}, restartPolicy="Never")
    assert errors == []
    assert isinstance(EPHEMERAL, EphemeralContainersStrategy)
    assert new["spec"]["restartPolicy"] == "Always" and new["status"] == {"phase": "Running"}
    (added,) = new["spec"]["ephemeralContainers"]
    assert added["terminationMessagePolicy"] == "File" and added["imagePullPolicy"] == "Always"
    assert PODS.spec_changed(new, old)          # the pod's generation moves on


def test_ephemeral_containers_are_validated_as_upstream() -> None:
    old = stored_pod()
    _, errors = debug_update(old, {"name": "app", "image": "busybox"},
                             {"name": "d2", "image": "busybox", "ports": [{"containerPort": 80}],
                              "resources": {"limits": {"cpu": "1"}}, "targetContainerName": "nope",
                              "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "x"}]})
    assert ("spec.ephemeralContainers[0].name", "FieldValueDuplicate") in details(errors)
    assert ("spec.ephemeralContainers[1].ports", "FieldValueForbidden") in details(errors)
    assert ("spec.ephemeralContainers[1].resources", "FieldValueForbidden") in details(errors)
    assert ("spec.ephemeralContainers[1].targetContainerName", "FieldValueNotFound") in details(errors)
    assert ("spec.ephemeralContainers[1].volumeMounts[0].subPath", "FieldValueForbidden") in details(errors)


def test_existing_ephemeral_containers_cannot_change_or_go() -> None:
    old, _ = debug_update(stored_pod(), {"name": "d", "image": "busybox"})
    changed = copy.deepcopy(old)
    changed["spec"]["ephemeralContainers"][0]["image"] = "other"
    EPHEMERAL.prepare_for_update(changed, old)
    assert "may not be changed" in EPHEMERAL.validate_update(changed, old)[0].detail
    removed = copy.deepcopy(old)
    removed["spec"]["ephemeralContainers"] = []
    EPHEMERAL.prepare_for_update(removed, old)
    assert "may not be removed" in EPHEMERAL.validate_update(removed, old)[0].detail


def test_static_pods_and_plain_updates_refuse_ephemeral_containers() -> None:
    mirror = stored_pod()
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    _, errors = debug_update(mirror, {"name": "d", "image": "busybox"})
    assert any("static pods" in e.detail for e in errors)
    old = stored_pod()
    new = copy.deepcopy(old)
    new["spec"]["ephemeralContainers"] = [{"name": "d", "image": "busybox"}]
    assert any(e.field == "spec" for e in PODS.validate_update(new, old))
    created = stored_pod(ephemeralContainers=[{"name": "d", "image": "busybox"}])
    del created["metadata"]["resourceVersion"]
    assert ("spec.ephemeralContainers", "FieldValueForbidden") in details(PODS.validate(created))


def test_sleep_action_and_stop_signal_validation() -> None:
    def errors_of(lifecycle: dict, **spec) -> list:
        obj = stored_pod(containers=[{"name": "app", "image": "busybox", "lifecycle": lifecycle}], **spec)
        del obj["metadata"]["resourceVersion"]
        return details(PODS.validate(obj))
    assert errors_of({"preStop": {"sleep": {"seconds": 0}}}) == []
    assert errors_of({"preStop": {"sleep": {"seconds": 30}}}) == []
    assert errors_of({"postStart": {"sleep": {"seconds": 31}}}) == \
        [("spec.containers[0].lifecycle.postStart.sleep", "FieldValueInvalid")]
    assert errors_of({"preStop": {"sleep": {"seconds": -1}}}) == \
        [("spec.containers[0].lifecycle.preStop.sleep", "FieldValueInvalid")]
    assert errors_of({"stopSignal": "SIGUSR1"}) == [("spec.containers[0].lifecycle.stopSignal", "FieldValueForbidden")]
    assert errors_of({"stopSignal": "SIGUSR1"}, os={"name": "linux"}) == []
    assert errors_of({"stopSignal": "SIGRTMIN+3"}, os={"name": "linux"}) == []
    assert errors_of({"stopSignal": "SIGNOPE"}, os={"name": "linux"}) == \
        [("spec.containers[0].lifecycle.stopSignal", "FieldValueNotSupported")]
    assert errors_of({"stopSignal": "SIGUSR1"}, os={"name": "windows"}) == \
        [("spec.containers[0].lifecycle.stopSignal", "FieldValueNotSupported")]


def test_stop_signal_names() -> None:
    assert signal_number("SIGUSR1") == signal.SIGUSR1
    assert signal_number("SIGRTMIN+3") == signal.SIGRTMIN + 3
    assert signal_number("SIGRTMAX-1") == signal.SIGRTMAX - 1
    assert signal_number("SIGRTMIN+99") is None and signal_number("SIGNOPE") is None


# ------------------------------------------------------------------------------------------ agent
def runtime(*containers: ContainerState) -> PodRuntimeStatus:
    return PodRuntimeStatus(uid="u1",
                            sandboxes=[SandboxState(id="sb", ready=True, attempt=0, ip="10.0.0.5", created_at=1)],
                            containers=list(containers))


def running(name: str, container_id: str, attempt: int = 0) -> ContainerState:
    return ContainerState(id=container_id, name=name, phase=ContainerPhase.RUNNING, attempt=attempt,
                          started_at=1_000_000_000, hash="")


def test_ephemeral_containers_start_once_and_are_never_killed_as_strangers() -> None:
    pod = stored_pod(ephemeralContainers=[{"name": "d", "image": "busybox"}])
    actions = compute_pod_actions(pod, runtime(running("app", "c1")))
    assert [(s.name, s.ephemeral) for s in actions.ephemeral_start] == [("d", True)]
    assert not actions.start and not actions.kill and not actions.kill_pod
    started = runtime(running("app", "c1"), running("d", "c2"))
    assert compute_pod_actions(pod, started).nothing_to_do
    exited = runtime(running("app", "c1"), ContainerState(id="c2", name="d", phase=ContainerPhase.EXITED,
                                                          exit_code=0, attempt=0, hash=""))
    assert compute_pod_actions(pod, exited).nothing_to_do          # never restarted


def test_ephemeral_status_and_observed_generation() -> None:
    from datetime import datetime, timezone
    pod = stored_pod(ephemeralContainers=[{"name": "d", "image": "busybox"}])
    pod["metadata"]["generation"] = 3
    pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True", "observedGeneration": 1}]
    status = generate_pod_status(pod, runtime(running("app", "c1"), running("d", "c2")), {}, host_ips=["10.0.0.1"],
                                 runtime_name="containerd", now=datetime.now(timezone.utc))
    (ephemeral,) = status["ephemeralContainerStatuses"]
    assert ephemeral["name"] == "d" and "running" in ephemeral["state"] and ephemeral["ready"] is False
    assert "started" not in ephemeral
    assert status["observedGeneration"] == 3
    generations = {c["type"]: c.get("observedGeneration") for c in status["conditions"]}
    assert generations == {"PodReadyToStartContainers": 3, "Initialized": 3, "Ready": 3, "ContainersReady": 3,
                           "PodScheduled": 1}


def test_an_ephemeral_container_with_a_target_joins_its_pid_namespace() -> None:
    pod = stored_pod(ephemeralContainers=[{"name": "d", "image": "busybox", "targetContainerName": "app"}])
    container = pod["spec"]["ephemeralContainers"][0]
    config = container_config(pod, container, restart_count=0, node_name="n", context=PodContext(),
                              target_id="c1")
    options = config.linux.security_context.namespace_options
    assert (options.pid, options.target_id) == (api_pb2.TARGET, "c1")
    plain = container_config(pod, pod["spec"]["containers"][0], restart_count=0, node_name="n", context=PodContext())
    assert plain.linux.security_context.namespace_options.pid == api_pb2.CONTAINER
