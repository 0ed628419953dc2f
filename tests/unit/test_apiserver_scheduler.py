from apiserver.scheduler.predicates import Resources, filter_reasons, pod_requests, schedule, score


def node(name, cpu="2", memory="4Gi", pods="110", ready=True, **spec):
    return {"metadata": {"name": name, "labels": {"zone": name}}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(cpu=None, memory=None, **spec):
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}], **spec},
            "status": {"phase": "Pending"}}


def test_pod_requests_sum_and_init_max():
    p = pod(cpu="250m", memory="64Mi")
    p["spec"]["containers"].append({"name": "d", "resources": {"limits": {"cpu": "250m"}}})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}]
    assert pod_requests(p) == Resources(1000, 64 * 2**20, 1)


def test_filters():
    assert filter_reasons(pod(), node("a", ready=False), []) == ["node(s) were not ready"]
    assert filter_reasons(pod(), node("a", unschedulable=True), []) == ["node(s) were unschedulable"]
    assert filter_reasons(pod(cpu="3"), node("a"), []) == ["Insufficient cpu"]
    assert filter_reasons(pod(memory="5Gi"), node("a"), []) == ["Insufficient memory"]
    assert filter_reasons(pod(), node("a", pods="1"), [pod()]) == ["Too many pods"]
    assert filter_reasons(pod(cpu="1"), node("a"), [pod(cpu="1500m")]) == ["Insufficient cpu"]
    done = pod(cpu="1500m")
    done["status"]["phase"] = "Succeeded"
    assert filter_reasons(pod(cpu="1"), node("a"), [done]) == []
    assert filter_reasons(pod(nodeSelector={"zone": "b"}), node("a"), []) == \
        ["node(s) didn't match Pod's node affinity/selector"]
    tainted = node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
    assert filter_reasons(pod(), tainted, []) == ["node(s) had untolerated taint {k: v}"]
    assert filter_reasons(pod(tolerations=[{"key": "k", "operator": "Exists"}]), tainted, []) == []


def test_score_prefers_free_resources():
    assert score(pod(cpu="1"), node("a"), []) > score(pod(cpu="1"), node("a"), [pod(cpu="500m")])


def test_schedule_picks_least_allocated_and_explains_failures():
    nodes = [node("a"), node("b"), node("c", ready=False)]
    decision = schedule(pod(cpu="500m"), nodes, {"a": [pod(cpu="1")]})
    assert decision.node_name == "b"
    failure = schedule(pod(cpu="8"), nodes, {})
    assert failure.node_name is None
    assert failure.message == "0/3 nodes are available: 1 node(s) were not ready, 2 Insufficient cpu."
    assert schedule(pod(), [], {}).message == "no nodes available to schedule pods"
