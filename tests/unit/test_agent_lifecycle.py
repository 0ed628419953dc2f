"""Pure lifecycle rules: init containers, restart backoff, phases and conditions, env sources,
resources, QoS and security context — each as upstream kubelet computes it."""
from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest

from cri.gen import api_pb2

from agent.backoff import Backoff
from agent.container_config import (ContainerConfigError, EnvSources, ImageUser, NodeResources, PodContext,
                                    container_config, container_env, container_resources, oom_score_adj, service_env,
                                    verify_run_as_non_root)
from agent.image_manager import go_seconds
from agent.pod_actions import compute_pod_actions
from agent.pod_status import ContainerWaiting, generate_pod_status, pod_phase
from agent.runtime_state import ContainerPhase, ContainerState, PodRuntimeStatus, SandboxState
from agent.sandbox_config import managed_hosts_file, sandbox_config
from agent.dns import ResolvConf
from shipmate.qos import pod_qos_class as qos_class
from shipmate.durations import format_go_duration

NOW = datetime(2026, 11, 26, 2, 0, 0, tzinfo=timezone.utc)
SECOND = 1_000_000_000


def init_pod(policy: str = "Always", inits: tuple[str, ...] = ("i1", "i2"), apps: tuple[str, ...] = ("app",)) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": policy,
                     "initContainers": [{"name": n, "image": "busybox"} for n in inits],
                     "containers": [{"name": n, "image": "busybox"} for n in apps]},
            "status": {}}


def sandbox(ready: bool = True, attempt: int = 0) -> SandboxState:
    return SandboxState(id=f"sb{attempt}", attempt=attempt, ready=ready, created_at=attempt + 1, ip="10.244.0.9")


def ctr(name: str, phase: ContainerPhase, attempt: int = 0, exit_code: int = 0, reason: str = "") -> ContainerState:
    return ContainerState(id=f"{name}-{attempt}", name=name, attempt=attempt, phase=phase, started_at=10 * SECOND,
                          finished_at=20 * SECOND if phase == ContainerPhase.EXITED else 0, exit_code=exit_code,
                          reason=reason, created_at=attempt + 1)


def runtime(*containers: ContainerState, sandboxes: tuple[SandboxState, ...] = (sandbox(),)) -> PodRuntimeStatus:
    return PodRuntimeStatus("u", list(sandboxes), sorted(containers, key=lambda c: -c.attempt))


def status_of(pod: dict, observed: PodRuntimeStatus, waiting: dict | None = None) -> dict:
    return generate_pod_status(pod, observed, waiting or {}, host_ips=["192.0.2.2"], runtime_name="containerd",
                               now=NOW)


# ---------------------------------------------------------------- init containers: actions
def test_new_pod_with_init_containers_starts_only_the_first_one() -> None:
    actions = compute_pod_actions(init_pod(), PodRuntimeStatus("u"))
    assert actions.create_sandbox
    assert [(c.name, c.init) for c in actions.init_start] == [("i1", True)] and not actions.start


def test_init_containers_run_one_at_a_time_in_order() -> None:
    pod = init_pod()
    assert compute_pod_actions(pod, runtime(ctr("i1", ContainerPhase.RUNNING))).nothing_to_do
    actions = compute_pod_actions(pod, runtime(ctr("i1", ContainerPhase.EXITED)))
    assert [c.name for c in actions.init_start] == ["i2"] and not actions.start
    actions = compute_pod_actions(pod, runtime(ctr("i1", ContainerPhase.EXITED), ctr("i2", ContainerPhase.EXITED)))
    assert not actions.init_start and [c.name for c in actions.start] == ["app"]


def test_existing_sandbox_without_any_init_container_starts_the_first() -> None:
    actions = compute_pod_actions(init_pod(), runtime())
    assert [(c.name, c.restart_count) for c in actions.init_start] == [("i1", 0)]


@pytest.mark.parametrize("policy", ["Always", "OnFailure"])
def test_failed_init_container_restarts_with_the_next_restart_count(policy: str) -> None:
    actions = compute_pod_actions(init_pod(policy), runtime(ctr("i1", ContainerPhase.EXITED, attempt=1, exit_code=1)))
    assert [(c.name, c.restart_count) for c in actions.init_start] == [("i1", 2)]
    assert not actions.kill_pod


def test_failed_init_container_under_never_kills_the_pod() -> None:
    actions = compute_pod_actions(init_pod("Never"), runtime(ctr("i1", ContainerPhase.EXITED, exit_code=3)))
    assert actions.kill_pod and not actions.init_start and not actions.start


def test_running_app_container_means_initialized_even_without_init_containers() -> None:
    assert compute_pod_actions(init_pod(), runtime(ctr("app", ContainerPhase.RUNNING))).nothing_to_do


def test_new_sandbox_reruns_init_containers_and_removes_the_old_ones() -> None:
    observed = runtime(ctr("i1", ContainerPhase.EXITED), ctr("i2", ContainerPhase.EXITED),
                       ctr("app", ContainerPhase.EXITED, exit_code=1), sandboxes=(sandbox(ready=False),))
    actions = compute_pod_actions(init_pod(), observed)
    assert actions.create_sandbox and actions.kill_pod and actions.attempt == 1
    assert [(c.name, c.restart_count) for c in actions.init_start] == [("i1", 1)]
    assert sorted(actions.remove) == ["i1-0", "i2-0"]


def test_only_the_newest_run_of_an_init_container_is_kept() -> None:
    observed = runtime(ctr("i1", ContainerPhase.RUNNING, attempt=2), ctr("i1", ContainerPhase.EXITED, attempt=1, exit_code=1),
                       ctr("i1", ContainerPhase.EXITED, attempt=0, exit_code=1))
    assert compute_pod_actions(init_pod(), observed).remove == ["i1-0"]


def test_finished_pod_has_its_sandbox_stopped() -> None:
    pod = init_pod("OnFailure", inits=())
    actions = compute_pod_actions(pod, runtime(ctr("app", ContainerPhase.EXITED)))
    assert actions.kill_pod and not actions.start


# ---------------------------------------------------------------- init containers: status
def test_initializing_pod_status_as_kubectl_reads_it() -> None:
    status = status_of(init_pod(), runtime(ctr("i1", ContainerPhase.RUNNING)))
    assert status["phase"] == "Pending"
    i1, i2 = status["initContainerStatuses"]
    assert "running" in i1["state"] and i1["started"] is True and i1["ready"] is False
    assert i2["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Initialized"] == {
        "type": "Initialized", "status": "False", "reason": "ContainersNotInitialized",
        "message": "containers with incomplete status: [i1 i2]",
        "lastTransitionTime": "2026-11-26T02:00:00Z", "lastProbeTime": None}
    assert conditions["Ready"]["message"] == "containers with unready status: [app]"


def test_completed_init_containers_are_ready_and_initialized_says_pod_completed() -> None:
    observed = runtime(ctr("i1", ContainerPhase.EXITED), ctr("i2", ContainerPhase.EXITED),
                       ctr("app", ContainerPhase.RUNNING))
    status = status_of(init_pod(), observed)
    assert status["phase"] == "Running"
    assert [s["state"]["terminated"]["reason"] for s in status["initContainerStatuses"]] == ["Completed"] * 2
    assert all(s["ready"] for s in status["initContainerStatuses"])
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Initialized"]["status"], conditions["Initialized"]["reason"]) == ("True", "PodCompleted")
    assert conditions["Ready"]["status"] == "True"


def test_crash_looping_init_container_waits_with_its_last_run() -> None:
    observed = runtime(ctr("i1", ContainerPhase.EXITED, attempt=2, exit_code=1))
    status = status_of(init_pod(), observed, {"i1": ContainerWaiting("CrashLoopBackOff", "back-off 20s")})
    i1 = status["initContainerStatuses"][0]
    assert i1["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}}
    assert i1["lastState"]["terminated"]["exitCode"] == 1 and i1["restartCount"] == 2
    assert status["phase"] == "Pending"


def test_failed_init_container_under_never_fails_the_pod() -> None:
    status = status_of(init_pod("Never"), runtime(ctr("i1", ContainerPhase.EXITED, exit_code=1)))
    assert status["phase"] == "Failed"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Ready"]["reason"], conditions["ContainersReady"]["reason"]) == ("PodFailed", "PodFailed")


def test_terminal_phase_never_goes_back() -> None:
    pod = init_pod("Always", inits=())
    pod["status"] = {"phase": "Succeeded"}
    assert status_of(pod, runtime(ctr("app", ContainerPhase.RUNNING)))["phase"] == "Succeeded"


def test_oom_killed_reason_comes_from_the_runtime() -> None:
    status = status_of(init_pod("Never", inits=()), runtime(ctr("app", ContainerPhase.EXITED, exit_code=137,
                                                                  reason="OOMKilled")))
    assert status["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"
    assert status["phase"] == "Failed"


def test_succeeded_pod_conditions() -> None:
    status = status_of(init_pod("Never", inits=()), runtime(ctr("app", ContainerPhase.EXITED)))
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Succeeded"
    assert (conditions["Initialized"]["reason"], conditions["Ready"]["reason"]) == ("PodCompleted", "PodCompleted")
    assert "reason" not in conditions["PodScheduled"] and conditions["PodScheduled"]["status"] == "True"


def test_phase_counts_init_containers() -> None:
    pod = init_pod("Always")
    done = {"state": {"terminated": {"exitCode": 0}}}
    assert pod_phase(pod, [{"name": "app", "state": {"running": {}}}],
                     False, [dict(done, name="i1"), dict(done, name="i2")]) == "Running"
    assert pod_phase(pod, [{"name": "app", "state": {"waiting": {}}}], False, [dict(done, name="i1")]) == "Pending"


# ---------------------------------------------------------------- restart backoff
def test_restart_backoff_counts_from_the_exit_and_doubles() -> None:
    now = [1000.0]
    backoff = Backoff(clock=lambda: now[0])
    assert not backoff.in_backoff_since("k", 999.0)        # first exit: restart at once
    assert backoff.next("k", 999.0) == 10
    now[0] = 1005.0                                         # second exit at 1004: wait 10 s from the exit
    assert backoff.in_backoff_since("k", 1004.0) and backoff.remaining_since("k", 1004.0) == 9
    now[0] = 1014.5
    assert not backoff.in_backoff_since("k", 1004.0)
    assert backoff.next("k", 1004.0) == 20
    assert [backoff.next("k", 1004.0) for _ in range(5)] == [40, 80, 160, 300, 300]


def test_restart_backoff_resets_after_ten_minutes_of_running() -> None:
    now = [0.0]
    backoff = Backoff(clock=lambda: now[0])
    for _ in range(4):
        backoff.next("k", now[0])
    assert backoff.current_delay("k") == 80
    now[0] = 601.0                                          # the container ran > 2 × 5 min
    assert not backoff.in_backoff_since("k", 601.0)
    assert backoff.next("k", 601.0) == 10


@pytest.mark.parametrize("seconds, text", [(10, "10s"), (80, "1m20s"), (300, "5m0s"), (3600, "1h0m0s")])
def test_go_duration(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text


@pytest.mark.parametrize("seconds, text", [(0.5234, "523ms"), (1.2, "1.2s"), (62.3456, "1m2.345s")])
def test_go_seconds(seconds: float, text: str) -> None:
    assert go_seconds(seconds) == text


# ---------------------------------------------------------------- env
def pod_with(container: dict, **meta) -> dict:
    return {"metadata": {"name": "web", "namespace": "demo", "uid": "u-1", "labels": {"b": "2", "a": "1"},
                         "annotations": {"note": 'say "hi"'}, **meta},
            "spec": {"containers": [container], "nodeName": "node-a", "serviceAccountName": "robot"}}


CONTEXT = PodContext(pod_ips=("10.244.0.5", "fd00::5"), host_ips=("192.0.2.2",), node_name="node-a",
                     node=NodeResources(allocatable_cpu_milli=2000, allocatable_memory=4 * 1024 ** 3,
                                        memory_capacity=8 * 1024 ** 3))


def test_field_refs_as_kubelet_renders_them() -> None:
    paths = ["metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels['a']",
             "metadata.annotations['note']", "spec.nodeName", "spec.serviceAccountName", "status.podIP",
             "status.podIPs", "status.hostIP", "metadata.labels"]
    container = {"name": "c", "image": "x",
                 "env": [{"name": f"V{i}", "valueFrom": {"fieldRef": {"fieldPath": p}}} for i, p in enumerate(paths)]}
    values = [v for _, v in container_env(pod_with(container), container, CONTEXT)]
    assert values == ["web", "demo", "u-1", "1", 'say "hi"', "node-a", "robot", "10.244.0.5",
                      "10.244.0.5,fd00::5", "192.0.2.2", 'a="1"\nb="2"']


def test_resource_field_refs_round_up_and_default_to_allocatable() -> None:
    container = {"name": "c", "image": "x", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}},
                 "env": [{"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                         {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu",
                                                                                  "divisor": "1m"}}},
                         {"name": "MEM_REQ_MI", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory",
                                                                                   "divisor": "1Mi"}}},
                         {"name": "CPU_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                         {"name": "MEM_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}]}
    assert dict(container_env(pod_with(container), container, CONTEXT)) == {
        "CPU_REQ": "1", "CPU_REQ_M": "250", "MEM_REQ_MI": "64", "CPU_LIM": "2", "MEM_LIM": str(4 * 1024 ** 3)}


def test_env_from_config_maps_and_secrets() -> None:
    secret_data = {"password": base64.b64encode(b"s3cret").decode()}
    sources = EnvSources(config_maps={"settings": {"data": {"MODE": "fast", "LEVEL": "3"}}},
                         secrets={"creds": {"data": secret_data}})
    container = {"name": "c", "image": "x",
                 "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
                             {"secretRef": {"name": "creds"}}],
                 "env": [{"name": "CFG_MODE", "value": "slow-$(CFG_LEVEL)"},
                         {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                         {"name": "LVL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}}},
                         {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k",
                                                                            "optional": True}}}]}
    assert dict(container_env(pod_with(container), container, CONTEXT, sources)) == {
        "CFG_MODE": "slow-3", "CFG_LEVEL": "3", "password": "s3cret", "PW": "s3cret", "LVL": "3"}


@pytest.mark.parametrize("var, message", [
    ({"configMapKeyRef": {"name": "missing", "key": "k"}}, 'configmap "missing" not found'),
    ({"configMapKeyRef": {"name": "settings", "key": "nokey"}}, "couldn't find key nokey in ConfigMap demo/settings"),
    ({"secretKeyRef": {"name": "missing", "key": "k"}}, 'secret "missing" not found'),
])
def test_missing_env_sources_are_config_errors(var: dict, message: str) -> None:
    container = {"name": "c", "image": "x", "env": [{"name": "V", "valueFrom": var}]}
    sources = EnvSources(config_maps={"settings": {"data": {}}, "missing": None}, secrets={"missing": None})
    with pytest.raises(ContainerConfigError, match=message):
        container_env(pod_with(container), container, CONTEXT, sources)


# ---------------------------------------------------------------- resources, QoS, security
def limited(cpu_req: str | None = None, mem_req: str | None = None, cpu_lim: str | None = None,
            mem_lim: str | None = None) -> dict:
    requests = {k: v for k, v in (("cpu", cpu_req), ("memory", mem_req)) if v}
    limits = {k: v for k, v in (("cpu", cpu_lim), ("memory", mem_lim)) if v}
    return {"name": "c", "image": "x", "resources": {"requests": requests, "limits": limits}}


def test_qos_classes_and_oom_score_adjust() -> None:
    memory = 8 * 1024 ** 3
    guaranteed = pod_with(limited(cpu_lim="1", mem_lim="1Gi"))
    assert qos_class(guaranteed) == "Guaranteed"
    assert oom_score_adj(guaranteed, guaranteed["spec"]["containers"][0], memory) == -997
    best_effort = pod_with({"name": "c", "image": "x"})
    assert (qos_class(best_effort), oom_score_adj(best_effort, best_effort["spec"]["containers"][0], memory)) == \
        ("BestEffort", 1000)
    burstable = pod_with(limited(mem_req="1Gi"))
    assert qos_class(burstable) == "Burstable"
    assert oom_score_adj(burstable, burstable["spec"]["containers"][0], memory) == 875
    tiny = pod_with(limited(cpu_req="100m"))
    assert oom_score_adj(tiny, tiny["spec"]["containers"][0], memory) == 999
    mostly = pod_with(limited(mem_req="8Gi", cpu_lim="1"))
    assert oom_score_adj(mostly, mostly["spec"]["containers"][0], memory) == 3


def test_cpu_period_is_always_set_and_quota_only_with_a_limit() -> None:
    resources = container_resources(limited(cpu_req="100m"))
    assert (resources.cpu_shares, resources.cpu_period, resources.cpu_quota) == (102, 100000, 0)
    assert container_resources(limited(cpu_lim="5m")).cpu_quota == 1000


def test_security_context_merges_pod_defaults() -> None:
    container = {"name": "c", "image": "x",
                 "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": True, "privileged": True,
                                     "allowPrivilegeEscalation": False,
                                     "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}
    pod = pod_with(container)
    pod["spec"]["securityContext"] = {"runAsUser": 5, "runAsGroup": 3000, "fsGroup": 2000,
                                      "supplementalGroups": [4000]}
    config = container_config(pod, container, restart_count=0, node_name="n", context=CONTEXT)
    security = config.linux.security_context
    assert (security.run_as_user.value, security.run_as_group.value) == (1000, 3000)
    assert list(security.supplemental_groups) == [2000, 4000]
    assert security.readonly_rootfs and security.privileged and security.no_new_privs
    assert (list(security.capabilities.add_capabilities), list(security.capabilities.drop_capabilities)) == \
        (["NET_ADMIN"], ["ALL"])
    assert security.seccomp.profile_type == api_pb2.SecurityProfile.Unconfined
    sandbox = sandbox_config(pod, attempt=0, node_name="n", dns=ResolvConf())
    assert sandbox.linux.security_context.privileged
    assert list(sandbox.linux.security_context.supplemental_groups) == [2000, 4000]


def test_run_as_non_root_checks() -> None:
    container = {"name": "c", "image": "x", "securityContext": {"runAsNonRoot": True}}
    pod = pod_with(container)
    verify_run_as_non_root(pod, container, ImageUser(uid=1000))
    with pytest.raises(ContainerConfigError, match="image will run as root"):
        verify_run_as_non_root(pod, container, ImageUser(uid=0))
    with pytest.raises(ContainerConfigError, match=r"non-numeric user \(nobody\)"):
        verify_run_as_non_root(pod, container, ImageUser(username="nobody"))
    container["securityContext"]["runAsUser"] = 0
    with pytest.raises(ContainerConfigError, match="runAsUser breaks non-root policy"):
        verify_run_as_non_root(pod, container, ImageUser(uid=1000))


def test_pre_stop_handler_is_kept_in_an_annotation() -> None:
    container = {"name": "c", "image": "x", "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}}
    config = container_config(pod_with(container), container, restart_count=0, node_name="n", context=CONTEXT)
    assert config.annotations["io.kubernetes.container.preStopHandler"] == '{"exec":{"command":["sleep","1"]}}'


def test_managed_hosts_file() -> None:
    pod = {"metadata": {"name": "web", "namespace": "demo"},
           "spec": {"hostname": "h", "subdomain": "s", "hostAliases": [{"ip": "192.0.2.9", "hostnames": ["a", "b"]}]}}
    lines = managed_hosts_file(pod, ["10.244.0.5"], "cluster.local", "").splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert "10.244.0.5\th.s.demo.svc.cluster.local\th" in lines
    assert lines[-2:] == ["# Entries added by HostAliases.", "192.0.2.9\ta\tb"]
    host = managed_hosts_file({"metadata": pod["metadata"], "spec": {"hostNetwork": True}}, ["192.0.2.2"],
                              "cluster.local", "127.0.0.1 localhost\n")
    assert host == "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"


def test_service_environment_variables() -> None:
    kubernetes = {"metadata": {"name": "kubernetes", "namespace": "default"},
                  "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
    local = {"metadata": {"name": "my-db", "namespace": "demo"},
             "spec": {"clusterIP": "10.96.7.7", "ports": [{"port": 5432}, {"name": "metrics", "port": 9187,
                                                                              "protocol": "UDP"}]}}
    headless = {"metadata": {"name": "peers", "namespace": "demo"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}
    env = service_env([kubernetes, local, headless], "demo", True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443" and env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.0.1" and env["KUBERNETES_PORT_443_TCP_PROTO"] == "tcp"
    assert env["MY_DB_SERVICE_HOST"] == "10.96.7.7" and env["MY_DB_SERVICE_PORT_METRICS"] == "9187"
    assert env["MY_DB_PORT_9187_UDP"] == "udp://10.96.7.7:9187" and not any(k.startswith("PEERS") for k in env)
    assert set(service_env([kubernetes, local], "demo", False)) == {k for k in env if k.startswith("KUBERNETES")}
    container = {"name": "c", "image": "x", "env": [{"name": "URL", "value": "https://$(KUBERNETES_SERVICE_HOST)"},
                                                    {"name": "MY_DB_SERVICE_HOST", "value": "override"}]}
    values = container_env(pod_with(container), container, CONTEXT, EnvSources(services=(kubernetes, local)))
    assert values[:2] == [("URL", "https://10.96.0.1"), ("MY_DB_SERVICE_HOST", "override")]
    assert dict(values)["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_termination_message_from_the_file_or_the_log(tmp_path) -> None:
    from agent.termination_message import last_log_messages, termination_message
    log = tmp_path / "0.log"
    log.write_text("2026-01-01T00:00:00Z stdout F first\n2026-01-01T00:00:00Z stderr P par\n"
                   "2026-01-01T00:00:00Z stderr F tial\n")
    assert last_log_messages(log.read_text()) == "first\npartial\n"
    assert last_log_messages(log.read_text(), max_lines=1) == "partial\n"
    message_file = tmp_path / "msg"
    message_file.write_text("")

    def status(policy: str, exit_code: int) -> api_pb2.ContainerStatus:
        return api_pb2.ContainerStatus(
            exit_code=exit_code, log_path=str(log),
            annotations={"io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
                         "io.kubernetes.container.terminationMessagePolicy": policy},
            mounts=[api_pb2.Mount(container_path="/dev/termination-log", host_path=str(message_file))])
    assert termination_message(status("File", 1)) == ""
    assert termination_message(status("FallbackToLogsOnError", 1)) == "first\npartial\n"
    assert termination_message(status("FallbackToLogsOnError", 0)) == ""
    message_file.write_text("bye")
    assert termination_message(status("FallbackToLogsOnError", 1)) == "bye"


def test_container_status_lists_its_volume_mounts() -> None:
    pod = init_pod("Always", inits=())
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"},
                                                    {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}]
    status = status_of(pod, runtime(ctr("app", ContainerPhase.RUNNING)))["containerStatuses"][0]
    assert status["volumeMounts"] == [{"name": "data", "mountPath": "/data"},
                                      {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True,
                                       "recursiveReadOnly": "Disabled"}]


# ---------------------------------------------------------------- sidecars (restartable init containers)
def sidecar_pod(policy: str = "Always") -> dict:
    pod = init_pod(policy, inits=("setup", "proxy", "last"))
    pod["spec"]["initContainers"][1]["restartPolicy"] = "Always"
    return pod


def test_sidecar_starts_in_order_and_keeps_running() -> None:
    pod = sidecar_pod()
    actions = compute_pod_actions(pod, runtime(ctr("setup", ContainerPhase.EXITED)))
    assert [c.name for c in actions.init_start] == ["proxy"]
    actions = compute_pod_actions(pod, runtime(ctr("setup", ContainerPhase.EXITED), ctr("proxy", ContainerPhase.RUNNING)))
    assert [c.name for c in actions.init_start] == ["last"]         # a running sidecar lets the next start
    done = runtime(ctr("setup", ContainerPhase.EXITED), ctr("proxy", ContainerPhase.RUNNING),
                   ctr("last", ContainerPhase.EXITED))
    assert [c.name for c in compute_pod_actions(pod, done).start] == ["app"]
    crashed = runtime(ctr("setup", ContainerPhase.EXITED), ctr("proxy", ContainerPhase.EXITED, exit_code=1),
                      ctr("last", ContainerPhase.EXITED), ctr("app", ContainerPhase.RUNNING))
    actions = compute_pod_actions(pod, crashed)
    assert [(c.name, c.restart_count) for c in actions.init_start] == [("proxy", 1)] and not actions.start


def test_sidecar_does_not_keep_a_finished_pod_alive() -> None:
    pod = sidecar_pod("Never")
    observed = runtime(ctr("setup", ContainerPhase.EXITED), ctr("proxy", ContainerPhase.RUNNING),
                       ctr("last", ContainerPhase.EXITED), ctr("app", ContainerPhase.EXITED))
    actions = compute_pod_actions(pod, observed)
    assert actions.kill_pod and not actions.init_start


def test_sidecar_status_phase_and_readiness() -> None:
    pod = sidecar_pod()
    observed = runtime(ctr("setup", ContainerPhase.EXITED), ctr("proxy", ContainerPhase.RUNNING),
                       ctr("last", ContainerPhase.EXITED), ctr("app", ContainerPhase.RUNNING))
    status = status_of(pod, observed)
    proxy = status["initContainerStatuses"][1]
    assert (proxy["ready"], proxy["started"]) == (True, True)
    assert status["phase"] == "Running"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Initialized"] == conditions["Ready"] == "True"
    initializing = status_of(pod, runtime(ctr("setup", ContainerPhase.EXITED), ctr("proxy", ContainerPhase.RUNNING)))
    assert initializing["phase"] == "Pending"
    assert next(c for c in initializing["conditions"] if c["type"] == "Ready")["message"] == \
        "containers with unready status: [app]"
