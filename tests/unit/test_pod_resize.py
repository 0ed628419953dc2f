"""In-place pod resize: the pods/resize strategy (what it keeps, upstream's ValidatePodResize messages), the
requests the scheduler and quota count, the agent's resize decisions (admission, update or restart, the applied
resources it reports, allocations surviving an agent restart) and the status it writes."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from fractions import Fraction

from agent.pod_status import generate_pod_status
from agent.resize import (AllocationManager, RuntimeResources, actual_resources, admit_resize, resize_action,
                          wanted_runtime, with_allocation)
from agent.runtime_state import ContainerPhase, ContainerState, PodRuntimeStatus, SandboxState
from apiserver.kinds.pods import PodStrategy
from shipmate.pod_resources import pod_requests

PODS = PodStrategy()
RESIZE = PODS.subresource_strategies()["resize"]


def _container(name: str = "app", cpu: tuple[str, str] = ("100m", "200m"), memory: tuple[str, str] = ("32Mi", "64Mi"),
               **extra) -> dict:
    return {"name": name, "image": "busybox", "resources": {"requests": {"cpu": cpu[0], "memory": memory[0]},
                                                            "limits": {"cpu": cpu[1], "memory": memory[1]}}, **extra}


def stored_pod(*containers: dict, **spec) -> dict:
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5", "generation": 1},
           "spec": {"containers": list(containers) or [_container()], "nodeName": "n1", **spec},
           "status": {"phase": "Running", "qosClass": "Burstable"}}
    PODS.default(obj)
    return obj


def resize(old: dict, change) -> tuple[dict, list]:
    new = copy.deepcopy(old)
    change(new)
    RESIZE.prepare_for_update(new, old)
    RESIZE.default(new)
    return new, RESIZE.validate_update(new, old)


def messages(errors: list) -> list[str]:
    return [f"{e.field}: {e.detail}" for e in errors]


def test_resize_keeps_only_resources_and_resize_policy():
    old = stored_pod()

    def change(new):
        new["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "400m"
        new["spec"]["containers"][0]["image"] = "nginx"                 # dropped
        new["spec"]["containers"][0]["resizePolicy"] = [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]
        new["metadata"]["labels"] = {"x": "y"}                           # dropped
        new["status"] = {"phase": "Failed"}                              # dropped
    new, errors = resize(old, change)
    assert errors == []
    assert new["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "400m"
    assert new["spec"]["containers"][0]["image"] == "busybox" and "labels" not in new["metadata"]
    assert new["status"]["phase"] == "Running"
    assert new["spec"]["containers"][0]["resizePolicy"][0]["restartPolicy"] == "NotRequired"
    assert RESIZE.spec_changed(new, old)                                 # generation moves


def test_resize_refusals():
    old = stored_pod()
    _, errors = resize(old, lambda new: new["spec"]["containers"][0]["resources"].update(
        {"requests": {"cpu": "200m", "memory": "64Mi"}}))
    assert messages(errors) == ["spec: Pod QOS Class may not change as a result of resizing"]   # now Guaranteed
    _, errors = resize(old, lambda new: new["spec"]["containers"][0]["resources"]["limits"].pop("cpu"))
    assert "spec.containers[0].resources.limits[cpu]: resource limits cannot be removed" in messages(errors)
    _, errors = resize(old, lambda new: new["spec"]["containers"][0]["resources"]["limits"].update(
        {"ephemeral-storage": "1Gi"}))
    assert messages(errors) == ["spec: only cpu and memory resources are mutable"]
    _, errors = resize(old, lambda new: new["spec"]["containers"].append(_container("two")))
    assert messages(errors) == ["spec.containers: containers may not be added or removed"]
    static = stored_pod()
    static["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    _, errors = resize(static, lambda new: new["spec"]["containers"][0]["resources"]["limits"].update(cpu="1"))
    assert messages(errors) == [": static pods cannot be resized"]
    _, errors = resize(old, lambda new: new["spec"]["containers"][0].update(
        resizePolicy=[{"resourceName": "cpu", "restartPolicy": "Sometimes"}]))
    assert any("resizePolicy[0].restartPolicy" in m for m in messages(errors))
    _, errors = resize(old, lambda new: new["spec"]["containers"][0]["resources"]["requests"].update(cpu="300m"))
    assert any("must be less than or equal to cpu limit" in m for m in messages(errors))


def test_non_restartable_init_containers_cannot_be_resized():
    old = stored_pod(initContainers=[_container("init"), _container("sidecar", restartPolicy="Always")])
    _, errors = resize(old, lambda new: new["spec"]["initContainers"][0]["resources"]["limits"].update(cpu="300m"))
    assert messages(errors) == ["spec.initContainers[0].resources: resize is not supported for non-restartable init "
                                "containers"]
    _, errors = resize(old, lambda new: new["spec"]["initContainers"][1]["resources"]["limits"].update(cpu="300m"))
    assert errors == []


def test_scheduler_and_quota_count_the_largest_of_desired_allocated_and_actual():
    pod = stored_pod(_container(cpu=("100m", "1")))
    pod["status"]["containerStatuses"] = [{"name": "app", "allocatedResources": {"cpu": "500m", "memory": "32Mi"},
                                           "resources": {"requests": {"cpu": "500m"}}}]
    assert pod_requests(pod)["cpu"] == Fraction(1, 10)
    assert pod_requests(pod, use_status=True)["cpu"] == Fraction(1, 2)
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "800m"
    assert pod_requests(pod, use_status=True)["cpu"] == Fraction(4, 5)
    pod["status"]["conditions"] = [{"type": "PodResizePending", "status": "True", "reason": "Infeasible"}]
    assert pod_requests(pod, use_status=True)["cpu"] == Fraction(1, 2)          # the infeasible wish is not counted


# ---------------------------------------------------------------- the agent
def test_admission_of_a_resize():
    assert admit_resize((500, 0), (1000, 0), (2000, 8 << 30)).admit
    deferred = admit_resize((1500, 0), (1000, 0), (2000, 8 << 30))
    assert (deferred.reason, deferred.message) == ("Deferred", "Node didn't have enough resource: cpu, requested: "
                                                   "1500, used: 1000, capacity: 2000")
    infeasible = admit_resize((3000, 0), (0, 0), (2000, 8 << 30))
    assert (infeasible.reason, infeasible.message) == ("Infeasible", "Node didn't have enough capacity: cpu, "
                                                       "requested: 3000, capacity: 2000")


def test_update_or_restart_per_resize_policy():
    allocated = {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "400m", "memory": "64Mi"}}
    applied = RuntimeResources(102, 20000, 100000, 64 << 20)              # still at a 200m limit
    container = _container(resizePolicy=[{"resourceName": "memory", "restartPolicy": "RestartContainer"}])
    assert wanted_runtime(allocated) == RuntimeResources(102, 40000, 100000, 64 << 20)
    assert resize_action(container, allocated, applied) == "update"
    assert resize_action(container, allocated, RuntimeResources(102, 40000, 100000, 64 << 20)) == ""
    bigger = {**allocated, "limits": {"cpu": "400m", "memory": "96Mi"}}
    assert resize_action(container, bigger, RuntimeResources(102, 40000, 100000, 64 << 20)) == "restart"
    assert resize_action(container, allocated, None) == ""


def test_applied_resources_as_reported():
    allocated = {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "400m", "memory": "64Mi"}}
    assert actual_resources(allocated, RuntimeResources(102, 40000, 100000, 64 << 20)) == allocated
    stale = actual_resources(allocated, RuntimeResources(102, 20000, 100000, 64 << 20))
    assert stale["limits"] == {"cpu": "200m", "memory": "64Mi"}


def _manager(pods: list[dict], allocatable=(2000, 8 << 30)) -> AllocationManager:
    return AllocationManager(lambda: allocatable, lambda: pods)


def test_allocation_manager_admits_defers_and_resumes_from_status():
    pod = stored_pod()
    other = stored_pod(_container(cpu=("1500m", "1500m")))
    other["metadata"]["uid"] = "u2"
    manager = _manager([pod, other])
    assert manager.sync(pod).allocated["app"]["limits"]["cpu"] == "200m"
    grown = copy.deepcopy(pod)
    grown["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "800m"
    grown["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "1"
    view = manager.sync(grown)
    assert view.pending is not None and view.pending[0] == "Deferred"
    assert view.allocated["app"]["requests"]["cpu"] == "100m"
    manager.pods = lambda: [grown]                   # the other pod went: the resize fits now
    assert manager.sync(grown).allocated["app"]["requests"]["cpu"] == "800m"
    assert with_allocation(pod, manager.allocation(grown))["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "1"
    # a restarted agent resumes from the status it wrote, not from the (newer) spec
    restarted = _manager([grown])
    seen = copy.deepcopy(grown)
    seen["status"]["containerStatuses"] = [{"name": "app", "allocatedResources": {"cpu": "100m", "memory": "32Mi"},
                                            "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}}}]
    assert restarted.allocation(seen)["app"] == {"requests": {"cpu": "100m", "memory": "32Mi"},
                                                 "limits": {"cpu": "200m", "memory": "64Mi"}}


def test_status_carries_allocation_applied_resources_and_conditions():
    pod = stored_pod()
    pod["metadata"]["generation"] = 2
    runtime = PodRuntimeStatus("u1", sandboxes=[SandboxState("s1", 0, True, ip="10.0.0.5")],
                               containers=[ContainerState("c1", "app", 0, ContainerPhase.RUNNING, "s1",
                                                          resources=RuntimeResources(102, 20000, 100000, 64 << 20))])
    view = _manager([pod]).sync(pod)
    view.pending = ("Deferred", "Node didn't have enough resource: cpu")
    status = generate_pod_status(pod, runtime, {}, host_ips=["10.0.0.1"], runtime_name="containerd",
                                 now=datetime(2026, 1, 1, tzinfo=timezone.utc), resize=view)
    app = status["containerStatuses"][0]
    assert app["allocatedResources"] == {"cpu": "100m", "memory": "32Mi"}
    assert app["resources"] == {"requests": {"cpu": "100m", "memory": "32Mi"},
                                "limits": {"cpu": "200m", "memory": "64Mi"}}
    pending = next(c for c in status["conditions"] if c["type"] == "PodResizePending")
    assert (pending["status"], pending["reason"], pending["observedGeneration"]) == ("True", "Deferred", 2)
    assert not any(c["type"] == "PodResizeInProgress" for c in status["conditions"])
    view.pending, view.error = None, "failed to update resources of container app: boom"
    status = generate_pod_status(pod, runtime, {}, host_ips=["10.0.0.1"], runtime_name="containerd",
                                 now=datetime(2026, 1, 1, tzinfo=timezone.utc), resize=view)
    progress = next(c for c in status["conditions"] if c["type"] == "PodResizeInProgress")
    assert progress["reason"] == "Error" and "boom" in progress["message"]


# ---------------------------------------------------------------- through the API: LimitRanger and ResourceQuota
def test_limit_ranger_and_quota_evaluate_resizes(tmp_path):
    import asyncio

    import pytest

    from apiserver import errors
    from apiserver.api import API
    from apiserver.storage.sqlite import SQLiteStorage

    async def scenario() -> None:
        storage = SQLiteStorage(str(tmp_path / "state.db"))
        await storage.start()
        try:
            server = API(storage)
            await server.start()
            await server.create(server.registry("", "limitranges"), "default", {
                "metadata": {"name": "limits"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}})
            await server.create(server.registry("", "resourcequotas"), "default", {
                "metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "700m", "limits.cpu": "2"}}})
            await server.create(server.pods, "default", {"metadata": {"name": "web"}, "spec": {"containers": [
                _container(cpu=("500m", "800m"))]}})
            patch = {"spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": "2"}}}]}}
            with pytest.raises(errors.APIError) as refused:
                await server.patch(server.pods, "default", "web", "application/strategic-merge-patch+json", patch,
                                   subresource="resize")
            assert refused.value.code == 403
            assert "maximum cpu usage per Container is 1, but limit is 2" in refused.value.message
            patch = {"spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "900m"},
                                                                          "limits": {"cpu": "900m"}}}]}}
            with pytest.raises(errors.APIError) as exceeded:
                await server.patch(server.pods, "default", "web", "application/strategic-merge-patch+json", patch,
                                   subresource="resize")
            assert exceeded.value.code == 403 and "exceeded quota: q, requested: requests.cpu=400m" in \
                exceeded.value.message
            patch = {"spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "600m"}}}]}}
            resized = await server.patch(server.pods, "default", "web", "application/strategic-merge-patch+json",
                                         patch, subresource="resize")
            assert resized["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "600m"
            assert resized["metadata"]["generation"] == 2
        finally:
            await storage.close()
    asyncio.run(scenario())


def test_resize_policy_validation_on_create():
    def errors_of(policies, restart="Always"):
        pod = stored_pod(_container(resizePolicy=policies), restartPolicy=restart)
        pod["metadata"].pop("resourceVersion")
        return messages(PODS.validate(pod))
    assert errors_of([{"resourceName": "cpu", "restartPolicy": "RestartContainer"}]) == []
    assert any("resizePolicy[1].resourceName" in m for m in errors_of(
        [{"resourceName": "cpu", "restartPolicy": "NotRequired"}, {"resourceName": "cpu", "restartPolicy": "NotRequired"}]))
    assert any("resizePolicy[0].resourceName" in m for m in errors_of(
        [{"resourceName": "gpu", "restartPolicy": "NotRequired"}]))
    assert errors_of([{"resourceName": "memory", "restartPolicy": "RestartContainer"}], restart="Never") == [
        "spec.containers[0].resizePolicy[0].restartPolicy: must be 'NotRequired' when `restartPolicy` is 'Never'"]
