"""The API server (status.qosClass at create) and the agent (the status it reports, the OOM score it sets)
compute the same QoS class, upstream's (pkg/apis/core/v1/helper/qos: ComputePodQOS)."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from agent.container_config import BEST_EFFORT_OOM_SCORE_ADJ, GUARANTEED_OOM_SCORE_ADJ, oom_score_adj
from agent.pod_status import generate_pod_status
from agent.runtime_state import PodRuntimeStatus
from apiserver.kinds.pods import PodStrategy

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
MEMORY_CAPACITY = 8 * 1024 ** 3


def container(name: str = "c", requests: dict | None = None, limits: dict | None = None) -> dict:
    resources = {key: value for key, value in (("requests", requests), ("limits", limits)) if value is not None}
    return {"name": name, "image": "registry.example/app:1.0", "resources": resources}


def both(cpu: str = "1", memory: str = "1Gi") -> dict:
    return {"cpu": cpu, "memory": memory}


CASES = [
    ("no resources", [container()], [], None, "BestEffort"),
    ("only limits: requests default to them", [container(limits=both())], [], None, "Guaranteed"),
    ("requests equal limits", [container(requests=both(), limits=both())], [], None, "Guaranteed"),
    ("requests below limits", [container(requests=both("500m"), limits=both())], [], None, "Burstable"),
    ("only requests", [container(requests=both())], [], None, "Burstable"),
    ("cpu only", [container(limits={"cpu": "1"})], [], None, "Burstable"),
    ("memory only", [container(limits={"memory": "1Gi"})], [], None, "Burstable"),
    ("zero requests count as unset", [container(requests={"cpu": "0", "memory": "0"})], [], None, "BestEffort"),
    ("zero limits and requests", [container(requests=both("0", "0"), limits=both("0", "0"))], [], None,
     "BestEffort"),
    ("zero memory beside a cpu limit", [container(limits={"cpu": "1", "memory": "0"})], [], None, "Burstable"),
    ("extended resources are ignored", [container(requests={"example.com/gpu": "1"},
                                                  limits={"example.com/gpu": "1"})], [], None, "BestEffort"),
    ("extended beside guaranteed cpu and memory",
     [container(limits={**both(), "example.com/gpu": "2", "ephemeral-storage": "1Gi"})], [], None, "Guaranteed"),
    ("equal quantities written differently", [container(requests=both("1000m", "1024Mi"), limits=both())], [],
     None, "Guaranteed"),
    ("one guaranteed, one best-effort container",
     [container("a", limits=both()), container("b")], [], None, "Burstable"),
    ("every container guaranteed", [container("a", limits=both()), container("b", limits=both("2", "2Gi"))], [],
     None, "Guaranteed"),
    ("an init container without resources", [container(limits=both())], [container("init")], None,
     "Burstable"),
    ("a guaranteed init container", [container(limits=both())], [container("init", limits=both("2", "2Gi"))],
     None, "Guaranteed"),
    ("resources only on an init container", [container()], [container("init", requests={"memory": "64Mi"})],
     None, "Burstable"),
    ("pod-level limits replace the containers'", [container(requests={"cpu": "100m"})], [],
     {"limits": both()}, "Guaranteed"),
    ("pod-level requests below pod-level limits", [container(limits=both())], [],
     {"requests": both("500m"), "limits": both()}, "Burstable"),
    ("pod-level memory only", [container(limits=both())], [], {"limits": {"memory": "1Gi"}}, "Burstable"),
    ("pod-level resources without cpu or memory", [container(limits=both())], [],
     {"limits": {"hugepages-2Mi": "2Mi"}}, "BestEffort"),
]


def pod(containers: list, init_containers: list, pod_resources: dict | None) -> dict:
    spec: dict = {"containers": copy.deepcopy(containers)}
    if init_containers:
        spec["initContainers"] = copy.deepcopy(init_containers)
    if pod_resources is not None:
        spec["resources"] = copy.deepcopy(pod_resources)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": spec}


def server_qos(obj: dict) -> str:
    strategy = PodStrategy()
    strategy.default(obj)
    strategy.prepare_for_create(obj)
    return obj["status"]["qosClass"]


def agent_qos(obj: dict) -> str:
    status = generate_pod_status(obj, PodRuntimeStatus("u"), {}, host_ips=["192.0.2.2"],
                                 runtime_name="containerd", now=NOW)
    return status["qosClass"]


@pytest.mark.parametrize("containers, init_containers, pod_resources, expected",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_server_and_agent_agree_with_upstream(containers, init_containers, pod_resources, expected) -> None:
    assert server_qos(pod(containers, init_containers, pod_resources)) == expected
    assert agent_qos(pod(containers, init_containers, pod_resources)) == expected


@pytest.mark.parametrize("containers, init_containers, pod_resources, expected",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_the_agents_oom_score_follows_the_same_class(containers, init_containers, pod_resources, expected) -> None:
    obj = pod(containers, init_containers, pod_resources)
    score = oom_score_adj(obj, obj["spec"]["containers"][0], MEMORY_CAPACITY)
    if expected == "Guaranteed":
        assert score == GUARANTEED_OOM_SCORE_ADJ
    elif expected == "BestEffort":
        assert score == BEST_EFFORT_OOM_SCORE_ADJ
    else:
        assert GUARANTEED_OOM_SCORE_ADJ < score < BEST_EFFORT_OOM_SCORE_ADJ


def test_the_agent_keeps_the_class_the_server_recorded() -> None:
    obj = pod([container(limits=both())], [], None)
    obj["status"] = {"qosClass": "Burstable"}  # fixed at creation, as GetPodQOS reads it
    assert agent_qos(obj) == "Burstable"
    assert oom_score_adj(obj, obj["spec"]["containers"][0], MEMORY_CAPACITY) != GUARANTEED_OOM_SCORE_ADJ
