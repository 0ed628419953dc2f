"""Pure decisions of the workload controllers and the garbage collector."""
import datetime

from apiserver.controllers import deployment_rules as rules
from apiserver.controllers.gc_rules import OwnerGraph, OwnerState, decide
from apiserver.controllers.replicaset_rules import claim_pods, pod_from_template, pods_to_delete, replica_diff, \
    replica_status

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
OWNER = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
         "metadata": {"name": "web", "namespace": "ns", "uid": "rs-1", "generation": 2},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web", "tier": "a"}},
                               "spec": {"containers": [{"name": "c", "image": "i"}]}}}}


def matches(labels):
    return labels.get("app") == "web"


def pod(name, *, owner="rs-1", labels=None, node="n1", phase="Running", ready=True, created="2026-01-01T11:00:00Z",
        ready_at="2026-01-01T11:30:00Z", restarts=0, deleting=False):
    meta = {"name": name, "uid": f"uid-{name}", "labels": labels if labels is not None else {"app": "web"},
            "creationTimestamp": created}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "web", "uid": owner, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    status = {"phase": phase, "containerStatuses": [{"restartCount": restarts}]}
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]
    return {"metadata": meta, "spec": {"nodeName": node}, "status": status}


def test_claim_adopts_orphans_releases_strays_and_skips_inactive():
    pods = [pod("a"), pod("orphan", owner=None), pod("stray", labels={"app": "other"}),
            pod("theirs", owner="rs-2"), pod("done", phase="Succeeded"), pod("going", deleting=True)]
    claim = claim_pods(OWNER, matches, pods)
    assert [p["metadata"]["name"] for p in claim.owned] == ["a", "orphan"]
    assert [p["metadata"]["name"] for p in claim.adopt] == ["orphan"]
    assert [p["metadata"]["name"] for p in claim.release] == ["stray"]
    deleting_owner = {**OWNER, "metadata": {**OWNER["metadata"], "deletionTimestamp": "x"}}
    assert claim_pods(deleting_owner, matches, pods).adopt == []


def test_replica_diff_is_bounded_by_the_burst():
    assert replica_diff(3, 1) == 2 and replica_diff(1, 3) == -2 and replica_diff(2000, 0) == 500


def test_delete_order_prefers_unscheduled_pending_unready_new_and_restarting_pods():
    pods = [pod("old-ready", created="2026-01-01T10:00:00Z"),
            pod("unscheduled", node="", phase="Pending", ready=False),
            pod("pending", phase="Pending", ready=False),
            pod("not-ready", ready=False),
            pod("recently-ready", ready_at="2026-01-01T11:59:00Z"),
            pod("restarting", restarts=5, created="2026-01-01T10:00:00Z")]
    order = [p["metadata"]["name"] for p in pods_to_delete(pods, 6)]
    assert order == ["unscheduled", "pending", "not-ready", "recently-ready", "restarting", "old-ready"]
    assert len(pods_to_delete(pods, 2)) == 2


def test_pod_from_template():
    created = pod_from_template(OWNER)
    assert created["metadata"]["generateName"] == "web-"
    assert created["metadata"]["labels"] == {"app": "web", "tier": "a"}
    assert created["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                       "uid": "rs-1", "controller": True, "blockOwnerDeletion": True}]
    assert created["spec"] == OWNER["spec"]["template"]["spec"]


def test_replica_status_counts_and_min_ready_seconds():
    owner = {**OWNER, "spec": {**OWNER["spec"], "minReadySeconds": 60}}
    owned = [pod("a", labels={"app": "web", "tier": "a"}), pod("b", ready_at="2026-01-01T11:59:30Z"),
             pod("c", ready=False)]
    result = replica_status(owner, owned, NOW)
    assert result.status == {"replicas": 3, "fullyLabeledReplicas": 1, "readyReplicas": 2, "availableReplicas": 1,
                             "observedGeneration": 2}
    assert result.recheck_in == 30
    failed = replica_status(OWNER, owned[:1], NOW, "quota exceeded", "t")
    assert failed.status["conditions"][0] == {"type": "ReplicaFailure", "status": "True", "lastTransitionTime": "t",
                                              "reason": "FailedCreate", "message": "quota exceeded"}


# --- deployments -------------------------------------------------------------------------------------
def deployment(replicas=3, surge="25%", unavailable="25%", kind="RollingUpdate", status=None):
    strategy = {"type": kind}
    if kind == "RollingUpdate":
        strategy["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "web", "generation": 2, "annotations": {"team": "a"}},
            "spec": {"replicas": replicas, "strategy": strategy, "progressDeadlineSeconds": 600,
                     "revisionHistoryLimit": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}},
            "status": status or {}}


def rs(name, replicas, available=None, created="2026-01-01T10:00:00Z", revision=None, **status):
    meta = {"name": name, "uid": name, "creationTimestamp": created, "annotations": {}, "generation": 1}
    if revision is not None:
        meta["annotations"]["deployment.kubernetes.io/revision"] = str(revision)
    return {"metadata": meta, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": replicas if available is None else available,
                       "observedGeneration": 1, **status}}


def test_fenceposts_round_surge_up_and_unavailable_down():
    assert rules.fenceposts(deployment(3)) == (1, 0)
    assert rules.fenceposts(deployment(10, surge=0, unavailable=0)) == (0, 1)
    assert rules.max_unavailable(deployment(3, unavailable=5)) == 3
    assert rules.max_surge(deployment(3, kind="Recreate")) == 0


def test_rolling_steps_never_go_below_the_minimum_available():
    d = deployment(3, surge=1, unavailable=0)
    old, new = rs("old", 3), rs("new", 0, created="2026-01-01T11:00:00Z")
    assert rules.new_rs_replicas(d, [old, new], new) == 1  # 3 + maxSurge 1 = 4 pods at most
    new = rs("new", 1, available=0, created="2026-01-01T11:00:00Z")
    assert rules.old_scale_down(d, [old, new], [old], new) == {}  # the new pod is not available yet
    new = rs("new", 1, available=1, created="2026-01-01T11:00:00Z")
    assert rules.old_scale_down(d, [old, new], [old], new) == {"old": 2}
    d = deployment(4, surge=0, unavailable=2)
    old, new = rs("old", 4), rs("new", 0, created="2026-01-01T11:00:00Z")
    assert rules.new_rs_replicas(d, [old, new], new) == 0
    assert rules.old_scale_down(d, [old, new], [old], new) == {"old": 2}


def test_unhealthy_old_pods_go_first():
    d = deployment(4, surge=1, unavailable=0)
    older, old = rs("older", 2, available=0), rs("old", 2, created="2026-01-01T10:30:00Z")
    new = rs("new", 1, available=0, created="2026-01-01T11:00:00Z")
    assert rules.old_scale_down(d, [older, old, new], [older, old], new) == {}  # the new pod counts as missing
    new = rs("new", 1, available=1, created="2026-01-01T11:00:00Z")
    assert rules.old_scale_down(d, [older, old, new], [older, old], new) == {"older": 1}


def test_proportional_scaling_spreads_over_active_sets():
    d = deployment(20, surge=3, unavailable=2, status={"replicas": 10})
    old = rs("old", 8, created="2026-01-01T10:00:00Z")
    new = rs("new", 5, created="2026-01-01T11:00:00Z")
    for replica_set in (old, new):
        replica_set["metadata"]["annotations"][rules.MAX_REPLICAS_ANNOTATION] = "13"
    sizes = rules.proportional_sizes(d, new, [old])
    assert sum(sizes.values()) == 23 and sizes["old"] > sizes["new"] > 5
    assert rules.proportional_sizes(deployment(5), rs("only", 3), []) == {"only": 5}


def test_hash_and_template_equality():
    template = deployment()["spec"]["template"]
    first = rules.pod_template_hash(template, None)
    assert first == rules.pod_template_hash(template, None) and first != rules.pod_template_hash(template, 1)
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
    labelled = rules.new_rs_template(deployment(), first)
    assert labelled["metadata"]["labels"] == {"app": "web", "pod-template-hash": first}
    assert rules.templates_equal(labelled, template)


def test_revision_bookkeeping():
    d = deployment()
    created = rules.new_rs_annotations(d, {}, 1, exists=False)
    assert created == {"team": "a", "deployment.kubernetes.io/revision": "1",
                       "deployment.kubernetes.io/desired-replicas": "3", "deployment.kubernetes.io/max-replicas": "4"}
    rolled_back = rules.new_rs_annotations(d, {"deployment.kubernetes.io/revision": "1"}, 3, exists=True)
    assert rolled_back["deployment.kubernetes.io/revision"] == "3"
    assert rolled_back["deployment.kubernetes.io/revision-history"] == "1"
    assert rules.new_rs_annotations(d, {"deployment.kubernetes.io/revision": "5"}, 3, exists=True)[
        "deployment.kubernetes.io/revision"] == "5"
    assert rules.max_revision([rs("a", 0, revision=2), rs("b", 0, revision=7), rs("c", 0)]) == 7


def test_history_cleanup_keeps_the_limit_and_live_sets():
    d = deployment()  # revisionHistoryLimit 1
    sets = [rs("r1", 0, revision=1), rs("r2", 0, revision=2), rs("r3", 1, revision=3), rs("r4", 0, revision=4)]
    assert [r["metadata"]["name"] for r in rules.replica_sets_to_clean(d, sets)] == ["r1", "r2"]


def test_status_and_conditions():
    d = deployment(3, status={"updatedReplicas": 1, "replicas": 3})
    new = rs("new", 3, created="2026-01-01T11:00:00Z", readyReplicas=3)
    result = rules.rollout_status(d, [new], new, NOW)
    assert result.status["replicas"] == 3 and result.status["availableReplicas"] == 3
    conditions = {c["type"]: c for c in result.status["conditions"]}
    assert conditions["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conditions["Progressing"]["message"] == 'ReplicaSet "new" has successfully progressed.'
    assert result.recheck_in is None
    stuck = deployment(3, status={"replicas": 3, "updatedReplicas": 1, "availableReplicas": 2, "conditions": [{
        "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "",
        "lastUpdateTime": "2026-01-01T11:00:00Z", "lastTransitionTime": "2026-01-01T11:00:00Z"}]})
    old, half = rs("old", 2), rs("half", 1, available=0, created="2026-01-01T11:00:00Z")
    timed_out = rules.rollout_status(stuck, [old, half], half, NOW).status
    progressing = {c["type"]: c for c in timed_out["conditions"]}["Progressing"]
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    paused = deployment()
    paused["spec"]["paused"] = True
    rules.paused_condition(paused, paused["status"], NOW)
    assert paused["status"]["conditions"][0]["reason"] == "DeploymentPaused"


# --- garbage collector -----------------------------------------------------------------------------
def test_gc_decisions():
    ref_a, ref_b = {"uid": "a"}, {"uid": "b"}
    assert decide([], (), False).action == "keep"
    assert decide([(ref_a, OwnerState.SOLID)], (), False).action == "keep"
    mixed = decide([(ref_a, OwnerState.SOLID), (ref_b, OwnerState.DANGLING)], (), False)
    assert (mixed.action, mixed.remove_owner_uids) == ("remove-refs", ("b",))
    gone = decide([(ref_a, OwnerState.DANGLING)], (), False)
    assert (gone.action, gone.propagation_policy) == ("delete", "Background")
    assert decide([(ref_a, OwnerState.WAITING)], (), True).propagation_policy == "Foreground"
    assert decide([(ref_a, OwnerState.DANGLING)], ("orphan",), False).propagation_policy == "Orphan"


def test_owner_graph_tracks_dependents_and_blocking_references():
    graph = OwnerGraph()
    owner = {"metadata": {"uid": "rs", "name": "web", "namespace": "ns"}}
    child = {"metadata": {"uid": "p1", "name": "web-1", "namespace": "ns",
                          "ownerReferences": [{"uid": "rs", "blockOwnerDeletion": True}]}}
    loose = {"metadata": {"uid": "p2", "name": "web-2", "namespace": "ns", "ownerReferences": [{"uid": "rs"}]}}
    graph.observe("ADDED", child, "", "pods")
    assert graph.needs_owner_check(graph.nodes["p1"])  # owner not seen yet
    graph.observe("ADDED", owner, "apps", "replicasets")
    graph.observe("ADDED", loose, "", "pods")
    assert not graph.needs_owner_check(graph.nodes["p1"])
    assert [n.uid for n in graph.dependents("rs")] == ["p1", "p2"]
    assert [n.uid for n in graph.blocking_dependents("rs")] == ["p1"]
    deleting = {"metadata": {**owner["metadata"], "deletionTimestamp": "x", "finalizers": ["foregroundDeletion"]}}
    graph.observe("MODIFIED", deleting, "apps", "replicasets")
    assert graph.nodes["rs"].deleting_dependents and graph.needs_owner_check(graph.nodes["p1"])
    graph.observe("DELETED", child, "", "pods")
    assert [n.uid for n in graph.blocking_dependents("rs")] == []


def test_expectations_wait_for_own_writes():
    from apiserver.controllers.expectations import Expectations
    expectations = Expectations(expiry=60)
    assert expectations.satisfied("ns/web")
    expectations.expect_create("ns/web", "web-a")
    expectations.expect_delete("ns/web", "uid-b")
    assert not expectations.satisfied("ns/web")
    expectations.observe("ns/web", "ADDED", "web-a", "uid-a", False)
    assert not expectations.satisfied("ns/web")
    expectations.observe("ns/web", "MODIFIED", "web-b", "uid-b", True)  # terminating counts as deleted
    assert expectations.satisfied("ns/web")
    stale = Expectations(expiry=0)
    stale.expect_create("k", "lost")
    assert stale.satisfied("k")
