from collections import Counter

from apiserver.scheduler.cache import ClusterCache
from apiserver.scheduler.predicates import (Resources, filter_reasons, least_allocated_score, matches_node_affinity,
                                            node_info, pod_facts, requested_resources, schedule, spread_count)


def node(name, cpu="2", memory="4Gi", pods="110", labels=None, **spec):
    return {"metadata": {"name": name, "labels": {"zone": name, **(labels or {})}}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


_uids = iter(range(10**6))


def pod(cpu=None, memory=None, owner=None, labels=None, **spec):
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    meta = {"name": "p", "namespace": "default", "uid": f"uid-{next(_uids)}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "uid": owner, "controller": True}]
    return {"metadata": meta, "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}], **spec},
            "status": {"phase": "Pending"}}


def reasons(p, n, placed=()):
    return filter_reasons(pod_facts(p), node_info(n, placed))


def test_pod_requests_sum_init_max_and_non_zero_defaults():
    p = pod(cpu="250m", memory="64Mi")
    p["spec"]["containers"].append({"name": "d", "resources": {"limits": {"cpu": "250m"}}})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}]
    assert requested_resources(p) == Resources(1000, 64 * 2**20, 1)
    # scoring counts 100m / 200Mi for a container without requests (upstream's non-zero requests)
    assert requested_resources(pod(), non_zero=True) == Resources(100, 200 * 2**20, 1)
    assert requested_resources(pod()) == Resources(0, 0, 1)


def test_resource_filters():
    assert reasons(pod(cpu="3"), node("a")) == ["Insufficient cpu"]
    assert reasons(pod(memory="5Gi"), node("a")) == ["Insufficient memory"]
    assert reasons(pod(cpu="3", memory="5Gi"), node("a")) == ["Insufficient cpu", "Insufficient memory"]
    assert reasons(pod(), node("a", pods="1"), [pod()]) == ["Too many pods"]
    assert reasons(pod(cpu="1"), node("a"), [pod(cpu="1500m")]) == ["Insufficient cpu"]
    done = pod(cpu="1500m")
    done["status"]["phase"] = "Succeeded"
    assert reasons(pod(cpu="1"), node("a"), [done]) == []


def test_unschedulable_and_taints():
    assert reasons(pod(), node("a", unschedulable=True)) == ["node(s) were unschedulable"]
    tolerates_cordon = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                         "effect": "NoSchedule"}])
    assert reasons(tolerates_cordon, node("a", unschedulable=True)) == []
    tainted = node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
    assert reasons(pod(), tainted) == ["node(s) had untolerated taint {k: v}"]
    assert reasons(pod(tolerations=[{"key": "k", "operator": "Exists"}]), tainted) == []
    assert reasons(pod(tolerations=[{"key": "k", "operator": "Equal", "value": "w"}]), tainted) != []
    assert reasons(pod(tolerations=[{"operator": "Exists"}]), tainted) == []
    assert reasons(pod(tolerations=[{"key": "k", "operator": "Exists", "effect": "NoExecute"}]), tainted) != []
    prefer = node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}])
    assert reasons(pod(), prefer) == []
    # not-ready nodes are kept out by the lifecycle controller's taint, not by a condition check
    unreachable = node("a", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}])
    assert reasons(pod(), unreachable) == ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]


def affinity(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def test_node_affinity_operators():
    labels = {"disk": "ssd", "cores": "8"}

    def match(*expressions, fields=()):
        term = {"matchExpressions": list(expressions)} if expressions else {}
        if fields:
            term["matchFields"] = list(fields)
        return matches_node_affinity({"affinity": affinity(term)}, labels, "node-a")
    assert match({"key": "disk", "operator": "In", "values": ["ssd", "nvme"]})
    assert not match({"key": "disk", "operator": "NotIn", "values": ["ssd"]})
    assert match({"key": "gpu", "operator": "NotIn", "values": ["x"]})
    assert match({"key": "disk", "operator": "Exists"}) and not match({"key": "gpu", "operator": "Exists"})
    assert match({"key": "gpu", "operator": "DoesNotExist"})
    assert match({"key": "cores", "operator": "Gt", "values": ["4"]})
    assert not match({"key": "cores", "operator": "Lt", "values": ["4"]})
    assert not match({"key": "disk", "operator": "Gt", "values": ["4"]})      # not an integer
    assert match(fields=[{"key": "metadata.name", "operator": "In", "values": ["node-a"]}])
    assert not match(fields=[{"key": "metadata.name", "operator": "NotIn", "values": ["node-a"]}])
    assert not match()                                                         # an empty term matches nothing
    # terms are ORed, expressions within a term ANDed
    spec = {"affinity": affinity({"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]},
                                 {"matchExpressions": [{"key": "cores", "operator": "In", "values": ["8"]}]})}
    assert matches_node_affinity(spec, labels, "node-a")
    assert not matches_node_affinity({"nodeSelector": {"disk": "hdd"}}, labels, "node-a")
    assert reasons(pod(nodeSelector={"zone": "b"}), node("a")) == ["node(s) didn't match Pod's node affinity/selector"]


def test_least_allocated_score_0_to_10():
    empty = node_info(node("a"))
    assert least_allocated_score(pod_facts(pod(cpu="1", memory="2Gi")), empty) == 5
    assert least_allocated_score(pod_facts(pod(cpu="2", memory="4Gi")), empty) == 0
    busy = node_info(node("a"), [pod(cpu="1", memory="1Gi")])
    assert least_allocated_score(pod_facts(pod(cpu="500m")), busy) < least_allocated_score(pod_facts(pod(cpu="500m")), empty)


def test_schedule_picks_least_allocated_then_spread():
    nodes = [node_info(node("a"), [pod(cpu="1")]), node_info(node("b"))]
    assert schedule(pod(cpu="500m"), nodes).node_name == "b"
    # equal scores: the node with fewer pods of the same ReplicaSet wins
    nodes = [node_info(node("a"), [pod(owner="rs1")]), node_info(node("b"), [pod(owner="rs2")])]
    assert schedule(pod(owner="rs1"), nodes, tie_breaker=min).node_name == "b"
    assert schedule(pod(owner="rs2"), nodes, tie_breaker=min).node_name == "a"
    # pods selected by the same Service count too
    nodes = [node_info(node("a"), [pod(labels={"app": "web"})]), node_info(node("b"), [pod(labels={"app": "db"})])]
    facts = pod_facts(pod(labels={"app": "web"}))
    assert spread_count(facts, nodes[0], [{"app": "web"}]) == 1
    assert schedule(pod(labels={"app": "web"}), nodes, [{"app": "web"}]).node_name == "b"


def test_failure_messages_as_kube_scheduler():
    nodes = [node_info(node("a", labels={"disk": "ssd"})), node_info(node("b")),
             node_info(node("c", taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]))]
    failure = schedule(pod(cpu="8", nodeSelector={"disk": "ssd"}), nodes)
    assert failure.node_name is None
    assert failure.message == (
        "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {dedicated: x}. preemption: 0/3 nodes are available: "
        "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.")
    never = schedule(pod(cpu="8", preemptionPolicy="Never"), nodes[:2])
    assert never.message == ("0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to "
                             "preemptionPolicy=Never.")
    assert schedule(pod(), []).message == "no nodes available to schedule pods"


def test_cache_assume_confirm_forget_and_terminal_pods():
    cache = ClusterCache()
    cache.set_node(node("a"))
    p = pod(cpu="1", owner="rs")
    cache.assume(p, "a")
    assert cache.nodes["a"].requested.milli_cpu == 1000 and cache.nodes["a"].owners == Counter({"rs": 1})
    cache.update_pod(p)                      # the informer still shows it pending: the assumption holds
    assert cache.nodes["a"].requested.milli_cpu == 1000
    bound = {**p, "spec": {**p["spec"], "nodeName": "a"}}
    cache.update_pod(bound)                  # binding seen: confirmed, counted once
    assert not cache.assumed and cache.nodes["a"].requested.milli_cpu == 1000
    finished = {**bound, "status": {"phase": "Succeeded"}}
    cache.update_pod(finished)
    assert cache.nodes["a"].requested.milli_cpu == 0 and not cache.nodes["a"].owners
    other = pod(cpu="1")
    cache.assume(other, "a")
    cache.forget_assumed(other["metadata"]["uid"])
    assert cache.nodes["a"].requested.milli_cpu == 0
    cache.update_pod({**other, "spec": {**other["spec"], "nodeName": "gone"}})
    assert [i.name for i in cache.ready_nodes()] == ["a"]   # a pod on an unknown node is no candidate
    cache.delete_pod(other)
    assert "gone" not in cache.nodes


def test_retry_queue_backoff_and_cluster_changes():
    from apiserver.scheduler.queue import RetryQueue
    queue = RetryQueue(initial=1.0, maximum=10.0, flush=10.0)
    assert queue.ready("p", 0.0) and queue.next_deadline() is None
    queue.failed("p", 0.0)
    assert not queue.ready("p", 5.0) and queue.ready("p", 10.0)          # no change: the periodic flush
    queue.cluster_changed()
    assert not queue.ready("p", 0.5) and queue.ready("p", 1.0)           # a change: after the 1 s backoff
    for attempt_at in (1.0, 3.0, 7.0, 15.0, 25.0):
        queue.failed("p", attempt_at)
    queue.cluster_changed()
    assert queue.next_deadline() == 35.0                                  # backoff capped at 10 s
    queue.forget("p")
    assert queue.ready("p", 0.0)


def test_requests_computed_once_per_pod_version(monkeypatch):
    from apiserver.scheduler import predicates
    calls = []
    real = predicates.requested_resources
    monkeypatch.setattr(predicates, "requested_resources",
                        lambda p, non_zero=False: calls.append(p) or real(p, non_zero))
    cache = ClusterCache()
    cache.set_node(node("a"))
    p = pod(cpu="1", memory="1Gi")
    assert schedule(p, cache.ready_nodes(), charge=cache.charges.of(p)).node_name == "a"
    cache.assume(p, "a")
    bound = {**p, "spec": {**p["spec"], "nodeName": "a"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "True"}]}}
    cache.update_pod(bound)                  # tried, assumed, confirmed: the same requests, computed once
    assert len(calls) == 2 and cache.nodes["a"].requested == Resources(1000, 2**30, 1)
    resized = {**bound, "spec": {**bound["spec"],
                                 "containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]}}
    cache.update_pod(resized)                # what the requests are read from changed: computed again
    assert cache.nodes["a"].requested == Resources(2000, 0, 1)
    assert cache.nodes["a"].non_zero_requested.memory == 200 * 2**20
    cache.delete_pod(resized)
    assert not cache.charges and cache.nodes["a"].requested == Resources()


def test_node_object_filters_answer_once_for_pods_alike_until_the_node_changes(monkeypatch):
    from apiserver.scheduler import predicates
    calls = []
    real = predicates.matches_node_affinity
    monkeypatch.setattr(predicates, "matches_node_affinity", lambda *a: calls.append(a) or real(*a))
    info = node_info(node("a", labels={"pool": "web"}))
    web = [pod(nodeSelector={"pool": "web"}) for _ in range(3)]
    assert [schedule(p, [info]).node_name for p in web] == ["a", "a", "a"] and len(calls) == 1
    db = schedule(pod(nodeSelector={"pool": "db"}), [info])
    assert db.node_name is None and db.failures == {"a": ["node(s) didn't match Pod's node affinity/selector"]}
    info.set_node(node("a", labels={"pool": "db"}))          # relabelled: the answers are asked again
    assert schedule(web[0], [info]).node_name is None
    assert schedule(pod(nodeSelector={"pool": "db"}), [info]).node_name == "a"
    info.set_node(node("a", labels={"pool": "db"}, taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]))
    tainted = schedule(pod(nodeSelector={"pool": "db"}), [info])
    assert tainted.failures == {"a": ["node(s) had untolerated taint {k: v}"]}
    tolerant = pod(nodeSelector={"pool": "db"}, tolerations=[{"key": "k", "operator": "Exists"}])
    assert schedule(tolerant, [info]).node_name == "a"


def test_retry_queue_moved_pods_in_backoff_order():
    from apiserver.scheduler.queue import RetryQueue
    queue = RetryQueue(initial=1.0, maximum=10.0, flush=10.0)
    queue.failed("early", 0.0)
    queue.failed("late", 0.5)
    assert queue.moved() == {}                                            # no change since they failed
    queue.cluster_changed()
    queue.failed("after", 0.7)                                            # failed after the change: not moved
    assert queue.moved() == {"early": 1, "late": 2}                       # backoff ends at 1.0 and 1.5
    assert not queue.ready("late", 1.0) and queue.ready("late", 1.5) and not queue.ready("after", 9.0)
