"""Preemption rules (kube-scheduler's DefaultPreemption): who may preempt, the victims on a node (lowest priority
first, PodDisruptionBudgets respected where possible), the node chosen, and the messages when nothing helps."""
from collections import Counter

from apiserver.scheduler import preemption
from apiserver.scheduler.predicates import Resources, node_info, pod_facts, schedule

_uids = iter(range(10**6))


def node(name, cpu="2", memory="4Gi", pods="110", **spec):
    return {"metadata": {"name": name, "labels": {}}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}}


def pod(name, cpu="1", priority=0, labels=None, started=None, node_name=None, **spec):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}-{next(_uids)}", "labels": labels or {}}
    status = {"phase": "Running" if node_name else "Pending"}
    if started:
        status["startTime"] = started
    return {"metadata": meta,
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}], "priority": priority,
                     **({"nodeName": node_name} if node_name else {}), **spec},
            "status": status}


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def budget(allowed, disrupted=(), namespace="default", **selector):
    return {"metadata": {"name": "pdb", "namespace": namespace},
            "spec": {"selector": {"matchLabels": selector} if selector else {}},
            "status": {"disruptionsAllowed": allowed, "disruptedPods": {name: "t" for name in disrupted}}}


def test_victims_are_the_fewest_least_important_pods_that_make_room():
    info = node_info(node("a"), [pod("low", priority=1), pod("mid", priority=2)])
    found = preemption.select_victims(pod_facts(pod("high", priority=10)), info, [])
    assert isinstance(found, preemption.Candidate) and names(found.victims) == ["low"] and found.pdb_violations == 0
    # both must go for a pod asking for the whole node; most important first
    found = preemption.select_victims(pod_facts(pod("big", cpu="2", priority=10)), info, [])
    assert names(found.victims) == ["mid", "low"]
    # equal priority: the pod started later goes first
    info = node_info(node("a"), [pod("old", started="2025-01-01T00:00:00Z"),
                                 pod("new", started="2025-01-02T00:00:00Z")])
    assert names(preemption.select_victims(pod_facts(pod("high", priority=5)), info, []).victims) == ["new"]


def test_nodes_where_preemption_does_not_help():
    info = node_info(node("a"), [pod("same", priority=10), pod("higher", priority=20)])
    assert preemption.select_victims(pod_facts(pod("p", priority=10)), info, []) == [
        "No preemption victims found for incoming pod"]
    info = node_info(node("a"), [pod("low", priority=1), pod("higher", priority=20)])
    assert preemption.select_victims(pod_facts(pod("p", cpu="1500m", priority=10)), info, []) == ["Insufficient cpu"]


def test_budgets_protect_pods_where_another_victim_will_do():
    guarded, free = pod("guarded", labels={"app": "db"}), pod("free", labels={"app": "web"})
    info = node_info(node("a"), [guarded, free])
    found = preemption.select_victims(pod_facts(pod("p", priority=1)), info, [budget(0, app="db")])
    assert names(found.victims) == ["free"] and found.pdb_violations == 0
    # when both must go, the violation is counted
    found = preemption.select_victims(pod_facts(pod("p", cpu="2", priority=1)), info, [budget(0, app="db")])
    assert sorted(names(found.victims)) == ["free", "guarded"] and found.pdb_violations == 1


def test_split_by_budgets():
    a, b, c = (pod(n, labels={"app": "db"}) for n in "abc")
    assert [names(part) for part in preemption.split_by_budgets([a, b, c], [budget(1, app="db")])] == [
        ["b", "c"], ["a"]]
    # a pod the budget already counts as disrupted spends nothing
    assert [names(part) for part in preemption.split_by_budgets([a, b], [budget(1, ["a"], app="db")])] == [
        [], ["a", "b"]]
    # empty selectors, other namespaces and pods without labels match nothing
    assert preemption.split_by_budgets([a], [budget(0)]) == ([], [a])
    assert preemption.split_by_budgets([a], [budget(0, namespace="other", app="db")]) == ([], [a])
    bare = pod("bare")
    assert preemption.split_by_budgets([bare], [budget(0, app="db")]) == ([], [bare])


def candidate(node_name, *victims, violations=0):
    return preemption.Candidate(node_name, list(victims), violations)


def test_the_node_chosen_follows_upstreams_criteria_in_order():
    p1, p5 = pod("p1", priority=1), pod("p5", priority=5)
    pick = preemption.pick_candidate
    assert pick([]) is None
    assert pick([candidate("a", p1, violations=1), candidate("b", p5)]).node == "b"          # fewer PDB violations
    assert pick([candidate("a", p5), candidate("b", p1, pod("x", priority=1))]).node == "b"  # lower top priority
    assert pick([candidate("a", p1, pod("y", priority=1)), candidate("b", p1, pod("z", priority=0))]).node == "b"
    assert pick([candidate("a", p1, pod("q", priority=-3)), candidate("b", p1)]).node == "b"  # smaller sum
    older = pod("older", priority=1, started="2025-01-01T00:00:00Z")
    newer = pod("newer", priority=1, started="2025-06-01T00:00:00Z")
    assert pick([candidate("a", older), candidate("b", newer)]).node == "b"                 # latest start
    assert pick([candidate("a", newer), candidate("b", newer)]).node == "a"                 # then the first


def test_candidates_and_the_message_when_none_helps():
    nodes = [node_info(node("a"), [pod("low", priority=1)]),
             node_info(node("b"), [pod("peer", priority=10)]),
             node_info(node("c", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])),
             node_info(node("d", cpu="1"), [pod("tiny", priority=1)])]
    wanted = pod("p", cpu="2", priority=10)
    decision = schedule(wanted, nodes)
    assert decision.node_name is None and decision.fit_message == (
        "0/4 nodes are available: 1 node(s) had untolerated taint {k: v}, 3 Insufficient cpu.")
    candidates, statuses = preemption.find_candidates(wanted, nodes, decision.failures, [])
    assert [(c.node, names(c.victims)) for c in candidates] == [("a", ["low"])]
    assert preemption.no_candidate_message(4, statuses) == (
        "0/4 nodes are available: 1 Insufficient cpu, 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling.")


def test_who_may_preempt():
    assert preemption.ineligible(pod("p", priority=5, preemptionPolicy="Never"), {}) == \
        "not eligible due to preemptionPolicy=Never."
    victim = pod("victim", priority=1, node_name="a")
    victim["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    victim["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True",
                                       "reason": "PreemptionByScheduler"}]
    nodes = {"a": node_info(node("a"), [victim])}
    waiting = pod("p", priority=5)
    waiting["status"]["nominatedNodeName"] = "a"
    assert preemption.ineligible(waiting, nodes) == "not eligible due to a terminating pod on the nominated node."
    assert preemption.ineligible(waiting, nodes, nominated_unresolvable=True) == ""
    assert preemption.ineligible(pod("q", priority=5), nodes) == ""
    victim["status"]["conditions"][0]["reason"] = "EvictionByEvictionAPI"
    assert preemption.ineligible(waiting, nodes) == ""


def test_nominated_pods_hold_their_room_and_their_node_is_tried_first():
    nodes = [node_info(node("a")), node_info(node("b"))]
    # a pod of equal or higher priority nominated to "a" holds 2 cpu there
    assert schedule(pod("p", cpu="1"), nodes, tie_breaker=min, reserved={"a": Resources(2000, 0, 1)}).node_name == "b"
    full = schedule(pod("p", cpu="1"), nodes[:1], reserved={"a": Resources(2000, 0, 1)})
    assert full.node_name is None and full.fit_message == "0/1 nodes are available: 1 Insufficient cpu."
    nominated = pod("n", cpu="1")
    nominated["status"]["nominatedNodeName"] = "b"
    assert schedule(nominated, nodes, tie_breaker=min).node_name == "b"


def test_lower_priority_nominations_on_the_node_are_cleared():
    low, high, elsewhere = pod("low", priority=1), pod("high", priority=50), pod("elsewhere", priority=1)
    for p, where in ((low, "a"), (high, "a"), (elsewhere, "b")):
        p["status"]["nominatedNodeName"] = where
    preemptor = pod("p", priority=10)
    assert names(preemption.lower_priority_nominated(preemptor, "a", [low, high, elsewhere, preemptor])) == ["low"]
    assert Counter(preemption.importance(p) for p in (low, low))[preemption.importance(low)] == 2


def test_looking_for_victims_leaves_the_node_as_it_is():
    low = pod("low", priority=1, node_name="a")
    low["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    info = node_info(node("a", cpu="1"), [low])
    found = preemption.select_victims(pod_facts(pod("high", priority=10)), info, [])
    assert isinstance(found, preemption.Candidate) and names(found.victims) == ["low"]
    # the dry run removed and re-added pods on a copy: the node still holds low's host port
    assert info.used_ports == Counter({("", "TCP", 8080): 1}) and names(info.pods.values()) == ["low"]
