"""DaemonSet, StatefulSet and ControllerRevision decisions (pure rules), and the VolumeBinding pre-filter."""
import datetime

from apiserver.controllers import daemonset_rules as ds_rules
from apiserver.controllers import revision_rules
from apiserver.controllers import statefulset_rules as sts_rules
from apiserver.kinds.daemonsets import DaemonSetStrategy
from apiserver.kinds.statefulsets import StatefulSetStrategy
from apiserver.patch import STRATEGIC_MERGE_PATCH, apply_patch
from apiserver.scheduler.volumes import claim_problem, prefilter_message

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
READY_AT = "2026-01-01T11:00:00Z"


def node(name, labels=None, taints=None):
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def daemonset(**spec):
    obj = {"apiVersion": "apps/v1", "kind": "DaemonSet",
           "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 1,
                        "annotations": {"deprecated.daemonset.template.generation": "1"}},
           "spec": {"selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": {"labels": {"app": "agent"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, **spec}}
    DaemonSetStrategy().default(obj)
    return obj


def pod(name, node_name, hash_value="h1", ready=True, phase="Running", created="2026-01-01T10:00:00Z",
        deleting=False, **labels):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "creationTimestamp": created,
            "labels": {"controller-revision-hash": hash_value, **labels}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:59:00Z"
    conditions = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": READY_AT}]
    return {"metadata": meta, "spec": {"nodeName": node_name},
            "status": {"phase": phase, "conditions": conditions}}


# --- DaemonSets ----------------------------------------------------------------------------------------
def test_daemon_tolerations_and_node_pinning():
    spec = {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 5}], "hostNetwork": True}
    ds_rules.add_daemon_tolerations(spec)
    keys = [(t["key"], t["effect"]) for t in spec["tolerations"]]
    assert keys == [("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                    ("node.kubernetes.io/pid-pressure", "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule"),
                    ("node.kubernetes.io/network-unavailable", "NoSchedule")]
    assert "tolerationSeconds" not in spec["tolerations"][0]  # replaced: daemon pods never time out
    affinity = ds_rules.pin_to_node({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}]}}, "n2")
    assert affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}
    assert affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [{"weight": 1}]
    created = ds_rules.pod_for_node(daemonset(), "h1", "n2")
    assert ds_rules.target_node(created) == "n2"
    assert created["metadata"]["generateName"] == "agent-"
    assert created["metadata"]["labels"] == {"app": "agent", "pod-template-generation": "1",
                                             "controller-revision-hash": "h1"}
    assert created["metadata"]["ownerReferences"][0]["uid"] == "ds-uid"


def test_which_nodes_run_the_daemon():
    ds = daemonset()
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert ds_rules.node_should_run(node("n", {"disk": "ssd"}), ds) == (True, True)
    assert ds_rules.node_should_run(node("n", {"disk": "hdd"}), ds) == (False, False)
    ssd = {"disk": "ssd"}
    no_schedule = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    no_execute = [{"key": "dedicated", "value": "x", "effect": "NoExecute"}]
    assert ds_rules.node_should_run(node("n", ssd, no_schedule), ds) == (False, True)  # existing pods stay
    assert ds_rules.node_should_run(node("n", ssd, no_execute), ds) == (False, False)
    cordoned = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]
    assert ds_rules.node_should_run(node("n", ssd, cordoned), ds) == (True, True)


def test_manage_creates_missing_and_deletes_extra_failed_and_misplaced_pods():
    ds = daemonset()
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"run": "yes"}
    nodes = [node("a", {"run": "yes"}), node("b", {"run": "yes"}), node("c", {"run": "yes"}), node("off")]
    node_pods = {"b": [pod("b1", "b"), pod("b2", "b", created="2026-01-01T10:05:00Z")],
                 "c": [pod("c1", "c", phase="Failed")],
                 "off": [pod("o1", "off")],
                 "gone": [{**pod("g1", ""), "spec": {}}]}
    plan = ds_rules.manage(ds, nodes, node_pods, "h1", NOW)
    assert plan.create_on == ["a"]
    assert sorted(p["metadata"]["name"] for p in plan.delete) == ["b2", "c1", "g1", "o1"]
    assert [(p["metadata"]["name"], n) for p, n in plan.failed] == [("c1", "c")]


def test_rolling_update_without_surge_stays_within_max_unavailable():
    ds = daemonset()
    nodes = [node(n) for n in ("a", "b", "c", "d")]
    node_pods = {n: [pod(f"{n}1", n, hash_value="old")] for n in ("a", "b", "c", "d")}
    plan = ds_rules.rolling_update(ds, nodes, node_pods, "new", NOW)
    assert len(plan.delete) == 1 and not plan.create_on
    node_pods["a"] = [pod("a2", "a", hash_value="new", ready=False)]   # a replacement not yet available
    assert ds_rules.rolling_update(ds, nodes, node_pods, "new", NOW).delete == []
    node_pods["b"] = [pod("b1", "b", hash_value="old", ready=False)]   # unavailable old pods go at once
    assert [p["metadata"]["name"] for p in ds_rules.rolling_update(ds, nodes, node_pods, "new", NOW).delete] == ["b1"]
    ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "50%"
    node_pods["a"] = [pod("a2", "a", hash_value="new")]
    node_pods["b"] = [pod("b1", "b", hash_value="old")]
    assert len(ds_rules.rolling_update(ds, nodes, node_pods, "new", NOW).delete) == 2


def test_rolling_update_with_surge_starts_new_pods_first():
    ds = daemonset()
    ds["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 0, "maxSurge": 1}
    nodes = [node(n) for n in ("a", "b", "c")]
    node_pods = {n: [pod(f"{n}1", n, hash_value="old")] for n in ("a", "b", "c")}
    plan = ds_rules.rolling_update(ds, nodes, node_pods, "new", NOW)
    assert plan.create_on == ["a"] and plan.delete == []
    node_pods["a"].append(pod("a2", "a", hash_value="new", ready=False))
    assert ds_rules.rolling_update(ds, nodes, node_pods, "new", NOW).create_on == []  # the surge is used up
    node_pods["a"][1] = pod("a2", "a", hash_value="new")
    plan = ds_rules.rolling_update(ds, nodes, node_pods, "new", NOW)
    assert [p["metadata"]["name"] for p in plan.delete] == ["a1"] and plan.create_on == ["b"]
    # manage keeps both pods of a surging node while the new one is not ready, then drops the old one.
    surging = {"a": [pod("a1", "a", hash_value="old"), pod("a2", "a", hash_value="new", ready=False,
                                                              created="2026-01-01T11:00:00Z")]}
    assert ds_rules.manage(ds, nodes[:1], surging, "new", NOW).delete == []
    surging["a"][1] = pod("a2", "a", hash_value="new", created="2026-01-01T11:00:00Z")
    assert [p["metadata"]["name"] for p in ds_rules.manage(ds, nodes[:1], surging, "new", NOW).delete] == ["a1"]


def test_daemonset_status_counts_nodes():
    ds = daemonset()
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"run": "yes"}
    nodes = [node("a", {"run": "yes"}), node("b", {"run": "yes"}), node("c", {"run": "yes"}), node("off")]
    node_pods = {"a": [pod("a1", "a")], "b": [pod("b1", "b", hash_value="old", ready=False)],
                 "off": [pod("o1", "off")]}
    status = ds_rules.daemonset_status(ds, nodes, node_pods, "h1", NOW)
    assert status == {"currentNumberScheduled": 2, "numberMisscheduled": 1, "desiredNumberScheduled": 3,
                      "numberReady": 1, "observedGeneration": 1, "updatedNumberScheduled": 1, "numberAvailable": 1,
                      "numberUnavailable": 2}
    ds["spec"]["minReadySeconds"] = 7200
    assert "numberAvailable" not in ds_rules.daemonset_status(ds, nodes, node_pods, "h1", NOW)


def test_daemonset_history_cleanup_spares_live_hashes():
    ds = daemonset(revisionHistoryLimit=1)
    old = [{"metadata": {"name": f"agent-{i}", "labels": {"controller-revision-hash": f"h{i}"}}, "revision": i}
           for i in (1, 2, 3)]
    assert [r["metadata"]["name"] for r in ds_rules.history_to_delete(ds, old, {"h1"})] == ["agent-2", "agent-3"]


# --- revisions --------------------------------------------------------------------------------------
def test_revision_names_hashes_and_data():
    assert revision_rules.fnv32(b"") == 0x811C9DC5
    assert revision_rules.fnv32(b"a") == 0x050C5D7E  # FNV-1 (multiply, then xor), not FNV-1a
    sts = statefulset()
    revision = revision_rules.statefulset_revision(sts, 1, 0)
    hash_value = revision["metadata"]["labels"]["controller.kubernetes.io/hash"]
    assert revision["metadata"]["name"] == f"web-{hash_value}"
    assert set(hash_value) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert revision["metadata"]["labels"]["app"] == "web"
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"
    assert revision_rules.statefulset_revision(sts, 1, 1)["metadata"]["name"] != revision["metadata"]["name"]
    assert revision_rules.matches(sts, revision)
    # kubectl rollout undo: the data is a strategic merge patch that puts the template back.
    changed = statefulset()
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    changed["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    assert not revision_rules.matches(changed, revision)
    restored = apply_patch(STRATEGIC_MERGE_PATCH, changed, revision["data"])
    assert restored["spec"]["template"] == sts["spec"]["template"]
    ds = daemonset()
    ds_revision = revision_rules.daemonset_revision(ds, 2)
    assert ds_revision["metadata"]["name"] == "agent-" + revision_rules.daemonset_hash(ds)
    assert ds_revision["metadata"]["labels"]["controller-revision-hash"] == revision_rules.daemonset_hash(ds)
    assert ds_revision["revision"] == 2


def test_history_limits():
    revisions = [{"metadata": {"name": f"r{i}"}, "revision": i} for i in (3, 1, 2, 4)]
    assert revision_rules.next_revision(revisions) == 5
    doomed = revision_rules.revisions_to_delete(revisions, {"r4", "r1"}, 1)
    assert [r["metadata"]["name"] for r in doomed] == ["r2"]


# --- StatefulSets -----------------------------------------------------------------------------------
def statefulset(replicas=3, **spec):
    obj = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid", "generation": 1},
           "spec": {"replicas": replicas, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, **spec}}
    StatefulSetStrategy().default(obj)
    return obj


def member(ordinal, revision="web-r1", ready=True, phase="Running", deleting=False):
    return pod(f"web-{ordinal}", "n1", hash_value=revision, ready=ready, phase=phase, deleting=deleting,
               **{"statefulset.kubernetes.io/pod-name": f"web-{ordinal}", "apps.kubernetes.io/pod-index": str(ordinal)})


def revision(name, sts):
    made = revision_rules.statefulset_revision(sts, 1, 0)
    made["metadata"]["name"] = name
    return made


def verbs(plan):
    return [(a.verb, a.pod["metadata"]["name"]) for a in plan.actions if a.verb != "claims"]


def test_new_pod_identity_and_claims():
    sts = statefulset(volumeClaimTemplates=[{"metadata": {"name": "data", "labels": {"tier": "db"}},
                                             "spec": {"accessModes": ["ReadWriteOnce"],
                                                      "resources": {"requests": {"storage": "1Gi"}}}}])
    sts["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}]
    created = sts_rules.new_pod(sts, 2, "web-r1")
    assert created["metadata"]["name"] == "web-2" and created["metadata"]["generateName"] == "web-"
    assert created["metadata"]["labels"] == {"app": "web", "statefulset.kubernetes.io/pod-name": "web-2",
                                             "apps.kubernetes.io/pod-index": "2", "controller-revision-hash": "web-r1"}
    assert (created["spec"]["hostname"], created["spec"]["subdomain"]) == ("web-2", "web")
    assert created["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}},
                                          {"name": "cfg", "emptyDir": {}}]
    claim = sts_rules.claims_for(sts, 2)["data"]
    assert claim["metadata"] == {"name": "data-web-2", "namespace": "default", "labels": {"tier": "db", "app": "web"}}
    assert sts_rules.identity_matches(sts, {**created, "metadata": {**created["metadata"], "namespace": "default"}})


def test_claim_owner_references_follow_the_retention_policy():
    sts = statefulset(replicas=1)
    live, gone = member(0), member(1)
    claim = {"metadata": {"name": "data-web-0"}}
    assert sts_rules.claim_owner_refs(sts, live, claim) is None  # Retain/Retain: no references
    sts["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete", "whenScaled": "Retain"}
    refs = sts_rules.claim_owner_refs(sts, live, claim)
    assert refs == [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "sts-uid",
                     "controller": True, "blockOwnerDeletion": True}]
    assert sts_rules.claim_owner_refs(sts, live, {"metadata": {"ownerReferences": refs}}) is None
    sts["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete", "whenScaled": "Delete"}
    refs = sts_rules.claim_owner_refs(sts, gone, {"metadata": {"ownerReferences": refs}})
    assert refs == [{"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "uid-web-1", "controller": True,
                     "blockOwnerDeletion": True}]
    other = [{"apiVersion": "v1", "kind": "Foo", "name": "x", "uid": "x", "controller": True}]
    assert sts_rules.claim_owner_refs(sts, live, {"metadata": {"ownerReferences": other}}) is None
    stale = [{"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "earlier"}]
    assert sts_rules.stale_claim({"metadata": {"ownerReferences": stale}}, "web-1", "")


def test_ordered_ready_creates_one_pod_at_a_time():
    sts = statefulset()
    current = revision("web-r1", sts)
    plan = sts_rules.plan_pass(sts, [], current, current, NOW)
    assert verbs(plan) == [("create", "web-0")]
    plan = sts_rules.plan_pass(sts, [member(0, ready=False)], current, current, NOW)
    assert verbs(plan) == [] and "web-0" in plan.waiting
    plan = sts_rules.plan_pass(sts, [member(0)], current, current, NOW)
    assert verbs(plan) == [("create", "web-1")]
    parallel = statefulset(podManagementPolicy="Parallel")
    assert verbs(sts_rules.plan_pass(parallel, [], current, current, NOW)) == \
        [("create", "web-0"), ("create", "web-1"), ("create", "web-2")]


def test_scale_down_goes_from_the_highest_ordinal_and_waits():
    sts = statefulset(replicas=1)
    current = revision("web-r1", sts)
    pods = [member(0), member(1), member(2)]
    assert verbs(sts_rules.plan_pass(sts, pods, current, current, NOW)) == [("delete", "web-2")]
    pods[2] = member(2, deleting=True)
    assert verbs(sts_rules.plan_pass(sts, pods, current, current, NOW)) == []
    assert verbs(sts_rules.plan_pass(sts, pods[:2], current, current, NOW)) == [("delete", "web-1")]
    failed = [member(0, phase="Failed", ready=False)]
    assert verbs(sts_rules.plan_pass(sts, failed, current, current, NOW)) == [("recreate-failed", "web-0")]


def test_rolling_update_from_the_top_down_to_the_partition():
    sts = statefulset()
    sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 1
    old, new = revision("web-r1", sts), revision("web-r2", sts)
    pods = [member(0), member(1), member(2)]
    assert verbs(sts_rules.plan_pass(sts, pods, old, new, NOW)) == [("delete", "web-2")]
    pods[2] = member(2, revision="web-r2", ready=False)
    assert verbs(sts_rules.plan_pass(sts, pods, old, new, NOW)) == []  # waits for web-2
    pods[2] = member(2, revision="web-r2")
    assert verbs(sts_rules.plan_pass(sts, pods, old, new, NOW)) == [("delete", "web-1")]
    pods[1] = member(1, revision="web-r2")
    assert verbs(sts_rules.plan_pass(sts, pods, old, new, NOW)) == []  # web-0 is below the partition
    # A pod recreated below the partition gets the current revision, above it the update revision.
    plan = sts_rules.plan_pass(sts, pods[1:], old, new, NOW)
    assert plan.actions[0].pod["metadata"]["labels"]["controller-revision-hash"] == "web-r1"
    on_delete = statefulset(updateStrategy={"type": "OnDelete"})
    assert verbs(sts_rules.plan_pass(on_delete, [member(0), member(1), member(2)], old, new, NOW)) == []


def test_statefulset_status():
    sts = statefulset()
    pods = [member(0), member(1, revision="web-r2"), member(2, ready=False)]
    status = sts_rules.statefulset_status(sts, pods, "web-r1", "web-r2", 0, NOW)
    assert status == {"observedGeneration": 1, "replicas": 3, "readyReplicas": 2, "currentReplicas": 2,
                      "updatedReplicas": 1, "availableReplicas": 2, "currentRevision": "web-r1",
                      "updateRevision": "web-r2", "collisionCount": 0}
    done = [member(0, revision="web-r2"), member(1, revision="web-r2"), member(2, revision="web-r2")]
    status = sts_rules.statefulset_status(sts, done, "web-r1", "web-r2", 0, NOW)
    assert status["currentRevision"] == "web-r2" and status["currentReplicas"] == 3


# --- scheduling with claims -------------------------------------------------------------------------
def test_claim_prefilter_reasons():
    with_claim = {"metadata": {"namespace": "ns"},
                  "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}
    assert claim_problem({"metadata": {"namespace": "ns"}, "spec": {}}, {}) == ""
    assert claim_problem(with_claim, {}) == 'persistentvolumeclaim "data" not found'
    claim = {"metadata": {"name": "data"}, "spec": {}, "status": {"phase": "Pending"}}
    assert claim_problem(with_claim, {"ns/data": claim}) == "pod has unbound immediate PersistentVolumeClaims"
    bound = {"metadata": {"name": "data"}, "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}
    assert claim_problem(with_claim, {"ns/data": bound}) == ""
    lost = {**bound, "status": {"phase": "Lost"}}
    assert claim_problem(with_claim, {"ns/data": lost}) == \
        'persistentvolumeclaim "data" bound to non-existent persistentvolume "pv1"'
    assert prefilter_message(2, "pod has unbound immediate PersistentVolumeClaims") == (
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/2 nodes are "
        "available: 2 Preemption is not helpful for scheduling.")
