"""Storage's pure rules: PersistentVolume/StorageClass/claim strategies (defaulting, messages, columns), the
binding matcher, the local-path provisioner's decisions and path safety, quota usage of claims, the
scheduler's VolumeBinding decisions, the node's volume status transitions and the admission plugins' steps."""
from __future__ import annotations

import asyncio
import datetime
import os
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import pytest

from apiserver.admission.storage import _SetDefaultClass, has_class, with_finalizer
from apiserver.auth.node_restriction import volume_status_problem
from apiserver.controllers import pv_rules as rules
from apiserver.errors import invalid_object
from apiserver.kinds.persistentvolumeclaims import PersistentVolumeClaimStrategy
from apiserver.kinds.persistentvolumes import PersistentVolumeStrategy, pv_row
from apiserver.kinds.storageclasses import (StorageClassStrategy, default_class, local_path_class,
                                            storage_class_row)
from apiserver.quota import claim_storage_usage, object_usage
from apiserver.scheduler import volumes as binding
from apiserver.scheduler.predicates import node_info
from shipmate import local_path

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
CREATED = "2025-12-31T23:58:00Z"


def pv(name: str = "pv1", size: str = "1Gi", **spec: Any) -> dict[str, Any]:
    obj = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name, "creationTimestamp": CREATED},
           "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/d"},
                    **spec}, "status": {"phase": "Available"}}
    return obj


def pvc(name: str = "data", size: str = "1Gi", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "creationTimestamp": CREATED},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec},
            "status": {"phase": "Pending"}}


def message(strategy, obj, old=None) -> str:
    problems = strategy.validate(obj) if old is None else strategy.validate_update(obj, old)
    return invalid_object(strategy.info.group, strategy.info.kind, "x", problems).message if problems else ""


def affinity(node: str) -> dict[str, Any]:
    return {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}


# --- kinds -------------------------------------------------------------------------------------------------
def test_volume_defaults_validation_update_rules_and_columns():
    strategy = PersistentVolumeStrategy()
    obj = pv()
    del obj["status"]
    strategy.default(obj)
    assert obj["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and obj["spec"]["volumeMode"] == "Filesystem"
    assert obj["spec"]["hostPath"]["type"] == "" and obj["status"]["phase"] == "Pending"
    assert message(strategy, obj) == ""
    assert "spec.capacity: Required value" in message(strategy, {**obj, "spec": {**obj["spec"], "capacity": {}}})
    assert 'spec.capacity: Unsupported value: map[string]string{"cpu":"1"}' not in message(
        strategy, {**obj, "spec": {**obj["spec"], "capacity": {"cpu": "1"}}})
    assert "spec.capacity: Unsupported value" in message(
        strategy, {**obj, "spec": {**obj["spec"], "capacity": {"cpu": "1"}}})
    assert "spec.accessModes: Required value" in message(strategy, {**obj, "spec": {**obj["spec"], "accessModes": []}})
    assert "spec.nfs: Forbidden: may not specify more than 1 volume type" in message(
        strategy, {**obj, "spec": {**obj["spec"], "nfs": {"server": "s", "path": "/"}}})
    local = {**obj, "spec": {**{k: v for k, v in obj["spec"].items() if k != "hostPath"}, "local": {"path": "/mnt"}}}
    assert "spec.nodeAffinity: Required value: Local volume requires node affinity" in message(strategy, local)
    assert message(strategy, {**local, "spec": {**local["spec"], "nodeAffinity": affinity("n1")}}) == ""
    assert "spec.nodeAffinity.required.nodeSelectorTerms: Required value" in message(
        strategy, {**local, "spec": {**local["spec"], "nodeAffinity": {"required": {"nodeSelectorTerms": []}}}})
    assert "must not contain '..'" in message(strategy, pv(hostPath={"path": "/a/../b"}))
    changed = {**obj, "spec": {**obj["spec"], "hostPath": {"path": "/other", "type": ""}}}
    assert "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation" in \
        message(strategy, changed, obj)
    grown = {**obj, "spec": {**obj["spec"], "capacity": {"storage": "2Gi"}}}
    assert message(strategy, grown, obj) == ""                     # expansion updates the capacity
    bound = {**obj, "spec": {**obj["spec"], "claimRef": {"namespace": "ns", "name": "data"},
                             "storageClassName": "fast"}, "status": {"phase": "Bound"}}
    assert pv_row(bound, NOW).cells == ["pv1", "1Gi", "RWO", "Retain", "Bound", "ns/data", "fast", "<unset>", "",
                                        "2m", "Filesystem"]
    deleting = {**bound, "metadata": {**bound["metadata"], "deletionTimestamp": CREATED}}
    assert pv_row(deleting, NOW).cells[4] == "Terminating"
    status_change = {**obj, "status": {"phase": "Lost"}}
    assert strategy.validate_status_update(status_change, obj)[0].message().startswith('Unsupported value: "Lost"')


def test_storage_class_defaults_updates_default_choice_and_columns():
    strategy = StorageClassStrategy()
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
          "metadata": {"name": "fast", "creationTimestamp": CREATED}, "provisioner": "example.com/fast"}
    strategy.default(sc)
    assert sc["reclaimPolicy"] == "Delete" and sc["volumeBindingMode"] == "Immediate"
    assert message(strategy, sc) == ""
    assert "provisioner: Required value" in message(strategy, {**sc, "provisioner": ""})
    assert 'reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"' in \
        message(strategy, {**sc, "reclaimPolicy": "Recycle"})
    updated = {**sc, "provisioner": "example.com/slow", "parameters": {"a": "b"}, "reclaimPolicy": "Retain",
               "volumeBindingMode": "WaitForFirstConsumer"}
    text = message(strategy, updated, sc)
    for expected in ("parameters: Forbidden: updates to parameters are forbidden.",
                     "provisioner: Forbidden: updates to provisioner are forbidden.",
                     "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
                     'volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable'):
        assert expected in text
    assert storage_class_row(sc, NOW).cells == ["fast", "example.com/fast", "Delete", "Immediate", False, "2m"]
    builtin = {**local_path_class(), "metadata": {**local_path_class()["metadata"], "creationTimestamp": CREATED}}
    assert storage_class_row(builtin, NOW).cells == ["local-path (default)", "shipmate.io/local-path", "Delete",
                                                     "WaitForFirstConsumer", True, "2m"]
    older = {"metadata": {"name": "b", "creationTimestamp": "2025-01-01T00:00:00Z",
                          "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}
    newer = {"metadata": {"name": "c", "creationTimestamp": "2025-06-01T00:00:00Z",
                          "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}}}
    same_time = {"metadata": {"name": "a", "creationTimestamp": "2025-06-01T00:00:00Z",
                              "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}
    assert default_class([older, newer])["metadata"]["name"] == "c"
    assert default_class([older, newer, same_time])["metadata"]["name"] == "a"   # same time: first by name
    assert default_class([{"metadata": {"name": "x"}}]) is None


def test_claim_update_rules_binding_resize_and_retroactive_class():
    strategy = PersistentVolumeClaimStrategy()
    claim = pvc()
    assert message(strategy, {**claim, "spec": {**claim["spec"], "volumeName": "pv1"}}, claim) == ""
    classed = {**claim, "spec": {**claim["spec"], "storageClassName": "local-path"}}
    assert message(strategy, classed, claim) == ""                         # nil → a class: allowed once
    assert "spec is immutable after creation" in message(
        strategy, {**classed, "spec": {**classed["spec"], "storageClassName": "other"}}, classed)
    bound = {**classed, "spec": {**classed["spec"], "volumeName": "pv1"},
             "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}}}
    grown = {**bound, "spec": {**bound["spec"], "resources": {"requests": {"storage": "3Gi"}}}}
    assert message(strategy, grown, bound) == ""
    back = {**grown, "spec": {**grown["spec"], "resources": {"requests": {"storage": "2Gi"}}}}
    assert "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity" in \
        message(strategy, back, grown)
    partly = {**grown, "spec": {**grown["spec"], "resources": {"requests": {"storage": "2500Mi"}}}}
    assert message(strategy, partly, grown) == ""        # RecoverVolumeExpansionFailure: down to above capacity
    assert "spec.selector.matchExpressions[0].operator" in message(
        strategy, {**claim, "spec": {**claim["spec"], "selector": {"matchExpressions": [
            {"key": "a", "operator": "Near"}]}}})


# --- binding matcher ---------------------------------------------------------------------------------------
def test_matching_volume_smallest_fit_selector_class_modes_prebound_and_delay():
    small, big = pv("small", "1Gi"), pv("big", "5Gi")
    labelled = {**pv("gold", "2Gi"), "metadata": {"name": "gold", "labels": {"tier": "gold"}}}
    claim = pvc(size="500Mi")
    assert rules.find_matching_volume(claim, [big, small, labelled], False)["metadata"]["name"] == "small"
    assert rules.find_matching_volume(pvc(size="3Gi"), [big, small], False)["metadata"]["name"] == "big"
    assert rules.find_matching_volume(pvc(size="9Gi"), [big, small], False) is None
    picky = pvc(size="500Mi", selector={"matchLabels": {"tier": "gold"}})
    assert rules.find_matching_volume(picky, [big, small, labelled], False)["metadata"]["name"] == "gold"
    assert rules.find_matching_volume(pvc(storageClassName="fast"), [big, small], False) is None
    many = pvc(accessModes=["ReadWriteMany"])
    assert rules.find_matching_volume(many, [big, small], False) is None
    taken = {**small, "spec": {**small["spec"], "claimRef": {"namespace": "ns", "name": "other", "uid": "u"}}}
    assert rules.find_matching_volume(claim, [taken], False) is None
    reserved = {**big, "spec": {**big["spec"], "claimRef": {"namespace": "ns", "name": "data"}},
                "status": {"phase": "Available"}}
    assert rules.find_matching_volume(claim, [small, reserved], True)["metadata"]["name"] == "big"  # pre-bound
    assert rules.find_matching_volume(claim, [small], True) is None       # delayed binding: the scheduler's
    pinned = pv("pinned", "1Gi", nodeAffinity=affinity("n2"))
    assert rules.find_matching_volume(claim, [pinned], True, ({}, "n1")) is None
    assert rules.find_matching_volume(claim, [pinned], True, ({"kubernetes.io/hostname": "n2"}, "n2")) is pinned
    assert rules.find_matching_volume(claim, [pinned], True, ({"kubernetes.io/hostname": "n2"}, "n2"),
                                      frozenset({"pinned"})) is None
    waiting = {**pv("lp"), "metadata": {"name": "lp", "annotations": {local_path.PROVISIONED_BY: local_path.PROVISIONER}},
               "spec": {**pv()["spec"], "claimRef": {"namespace": "ns", "name": "data", "uid": "uid-data"}},
               "status": {"phase": "Pending"}}
    assert rules.find_matching_volume(claim, [waiting], False) is None   # its node has not made it yet
    assert rules.is_bound_to_claim(reserved, claim) and not rules.is_bound_to_claim(taken, claim)
    block = pvc(volumeMode="Block")
    assert rules.find_matching_volume(block, [small], False) is None


# --- local-path rules ----------------------------------------------------------------------------------------
def test_local_path_volume_naming_affinity_and_lifecycle_decisions():
    storage_class = {"metadata": {"name": "local-path"}, "provisioner": local_path.PROVISIONER,
                     "reclaimPolicy": "Delete"}
    claim = pvc(storageClassName="local-path")
    volume = local_path.new_volume(claim, storage_class, "n1", "/var/lib/shipmate/storage")
    assert volume["metadata"]["name"] == "pvc-uid-data"
    assert volume["spec"]["hostPath"] == {"path": "/var/lib/shipmate/storage/pvc-uid-data_ns_data",
                                          "type": "DirectoryOrCreate"}
    assert volume["metadata"]["labels"] == {local_path.NODE_LABEL: "n1"}
    assert volume["metadata"]["finalizers"] == [local_path.CLEANUP_FINALIZER]
    assert local_path.affinity_node(volume) == "n1" and local_path.is_local_path(volume)
    assert local_path.node_affinity_matches(volume, {"kubernetes.io/hostname": "n1"}, "n1")
    assert not local_path.node_affinity_matches(volume, {"kubernetes.io/hostname": "n2"}, "n2")
    two_terms = {"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
        affinity("a")["required"]["nodeSelectorTerms"][0], affinity("b")["required"]["nodeSelectorTerms"][0]]}}}}
    assert local_path.affinity_node(two_terms) is None
    assert local_path.awaiting_node(volume)                            # no status yet: Pending
    released = {**volume, "status": {"phase": "Released"}}
    assert local_path.wants_removal(released) and not local_path.awaiting_node(released)
    assert not local_path.wants_removal({**released, "status": {"phase": "Released",
                                                                "reason": local_path.REASON_REMOVED}})
    assert not local_path.wants_removal({**released, "spec": {**released["spec"],
                                                              "persistentVolumeReclaimPolicy": "Retain"}})
    deleted = {**volume, "metadata": {**volume["metadata"], "deletionTimestamp": CREATED},
               "status": {"phase": "Available"}}
    assert local_path.wants_removal(deleted)
    assert not local_path.wants_removal({**deleted, "status": {"phase": "Bound"}})
    kept = local_path.new_volume(claim, {**storage_class, "reclaimPolicy": "Retain"}, "n1", "/s")
    assert kept["metadata"]["finalizers"] == []
    assert local_path.provision_problem(pvc(accessModes=["ReadWriteMany"])) == \
        "NodePath only supports ReadWriteOnce and ReadWriteOncePod access modes"
    assert local_path.provision_problem(pvc(selector={"matchLabels": {"a": "b"}})) == \
        "claim.Spec.Selector is not supported"
    assert local_path.provision_problem(claim) is None


@pytest.mark.parametrize("path, problem", [
    ("/base/pv1_ns_c", None),
    ("/base/pv1_ns_c/", None),
    ("/elsewhere/pv1_ns_c", "is not directly under the local-path directory"),
    ("/base/sub/pv1_ns_c", "is not directly under the local-path directory"),
    ("/base/../etc", "contains '..'"),
    ("/base/pv2_ns_c", "is not named after volume"),
    ("/base", "is not directly under"),
    ("relative/pv1_ns_c", "is not absolute"),
    ("", "is not absolute"),
])
def test_directory_problem(path: str, problem: str | None):
    found = local_path.directory_problem(path, "/base", "pv1")
    assert (found is None) if problem is None else (problem in found)


def test_agent_creates_and_removes_only_its_own_directories(tmp_path):
    from agent.volumes.errors import VolumeError
    from agent.volumes.local_path import create_directory, remove_directory, volume_problem
    base = tmp_path / "storage"
    path = str(base / "pv1_ns_c")
    assert create_directory(str(base), path, "pv1") is True
    assert oct(os.stat(path).st_mode & 0o777) == "0o777"
    assert create_directory(str(base), path, "pv1") is False            # already there
    (base / "pv1_ns_c" / "data").write_text("x")
    assert remove_directory(str(base), path, "pv1") is True and not os.path.exists(path)
    assert remove_directory(str(base), path, "pv1") is False
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    os.symlink(victim, base / "pv2_ns_c")
    with pytest.raises(VolumeError, match="is a symlink"):
        create_directory(str(base), str(base / "pv2_ns_c"), "pv2")
    with pytest.raises(VolumeError, match="is a symlink"):
        remove_directory(str(base), str(base / "pv2_ns_c"), "pv2")
    assert (victim / "precious").read_text() == "keep"
    with pytest.raises(VolumeError, match="not directly under"):
        create_directory(str(base), str(victim / "pv3_ns_c"), "pv3")
    with pytest.raises(VolumeError, match="not directly under"):
        remove_directory(str(base), str(victim), "victim")
    assert (victim / "precious").exists()
    with pytest.raises(VolumeError, match="not named after volume"):
        remove_directory(str(base), str(base / "pv9_ns_c"), "pv1")
    (base / "pv4_ns_c").write_text("a file")
    with pytest.raises(VolumeError, match="not a directory"):
        remove_directory(str(base), str(base / "pv4_ns_c"), "pv4")
    mine = local_path.new_volume(pvc(), {"metadata": {"name": "local-path"}}, "n1", str(base))
    assert volume_problem(mine, "n1") is None
    assert "names node 'n1', not this node" in volume_problem(mine, "n2")
    assert volume_problem(pv(), "n1") == "not a local-path volume"


def test_node_volume_status_transitions():
    volume = local_path.new_volume(pvc(), {"metadata": {"name": "local-path"}}, "n1", "/s")
    pending = {**volume, "status": {"phase": "Pending"}}
    assert volume_status_problem("n1", {**volume, "status": {"phase": "Available"}}, pending) is None
    assert volume_status_problem("n1", {**volume, "status": {"phase": "Pending", "reason": "ProvisioningFailed"}},
                                 pending) is None
    assert "from phase Pending to Bound" in volume_status_problem("n1", {**volume, "status": {"phase": "Bound"}},
                                                                  pending)
    released = {**volume, "status": {"phase": "Released"}}
    assert volume_status_problem("n1", {**volume, "status": {"phase": "Released", "reason": "DirectoryRemoved"}},
                                 released) is None
    assert "local-path persistentvolumes on itself" in volume_status_problem(
        "n2", {**volume, "status": {"phase": "Available"}}, pending)
    relabelled = {**pending, "metadata": {**pending["metadata"], "labels": {local_path.NODE_LABEL: "n2"}}}
    assert "on itself" in volume_status_problem("n2", relabelled, relabelled)   # affinity still names n1
    assert "on itself" in volume_status_problem("n1", pv(), pv())


# --- quota and admission -------------------------------------------------------------------------------------
def test_claim_quota_usage():
    claim = pvc(size="2Gi", storageClassName="gold")
    assert claim_storage_usage(claim) == {
        "requests.storage": Fraction(2 * 2**30), "gold.storageclass.storage.k8s.io/requests.storage": Fraction(2 * 2**30),
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims": Fraction(1)}
    allocated = {**claim, "status": {"allocatedResources": {"storage": "3Gi"}}}
    assert claim_storage_usage(allocated)["requests.storage"] == Fraction(3 * 2**30)
    usage = object_usage("", "persistentvolumeclaims", pvc(size="1Gi", storageClassName=""), NOW)
    assert usage == {"count/persistentvolumeclaims": 1, "persistentvolumeclaims": 1,
                     "requests.storage": Fraction(2**30)}


def test_admission_default_class_and_finalizers():
    classes = SimpleNamespace(all=lambda: asyncio.sleep(0, [
        {"metadata": {"name": "lp", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}]))
    step = _SetDefaultClass(classes)
    assert asyncio.run(step.admit(pvc(), None))["spec"]["storageClassName"] == "lp"
    assert asyncio.run(step.admit(pvc(storageClassName=""), None))["spec"]["storageClassName"] == ""
    beta = {**pvc(), "metadata": {**pvc()["metadata"], "annotations": {
        "volume.beta.kubernetes.io/storage-class": "x"}}}
    assert has_class(beta) and "storageClassName" not in asyncio.run(step.admit(beta, None))["spec"]
    assert with_finalizer(pvc(), "kubernetes.io/pvc-protection")["metadata"]["finalizers"] == \
        ["kubernetes.io/pvc-protection"]
    once = with_finalizer(pvc(), "f")
    assert with_finalizer(once, "f")["metadata"]["finalizers"] == ["f"]


# --- scheduler's VolumeBinding -------------------------------------------------------------------------------
def _node(name: str, storage: str = "10Gi", local_dir: str | None = "/s", labels: dict[str, str] | None = None):
    node = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})},
                         "annotations": {local_path.DIR_ANNOTATION: local_dir} if local_dir else {}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": storage}}}
    return node_info(node)


def _binding(claims: list[dict], volumes: list[dict], classes: list[dict]) -> binding.VolumeBinding:
    plugin = binding.VolumeBinding.__new__(binding.VolumeBinding)
    plugin.claims = SimpleNamespace(cache={f"{c['metadata']['namespace']}/{c['metadata']['name']}": c for c in claims})
    plugin.volumes = SimpleNamespace(cache={f"/{v['metadata']['name']}": v for v in volumes})
    plugin.classes = SimpleNamespace(cache={f"/{c['metadata']['name']}": c for c in classes})
    plugin.assumed_volumes, plugin.assumed_nodes = {}, {}
    return plugin


def _pod(*claims: str) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "pod-uid"},
            "spec": {"containers": [{"name": "c"}],
                     "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]}}


LOCAL_PATH = {"metadata": {"name": "local-path"}, "provisioner": local_path.PROVISIONER,
              "volumeBindingMode": "WaitForFirstConsumer"}
LOCAL_DISKS = {"metadata": {"name": "disks"}, "provisioner": "kubernetes.io/no-provisioner",
               "volumeBindingMode": "WaitForFirstConsumer"}


def test_volume_binding_prefilter_filter_capacity_and_messages():
    wffc = pvc("w", "4Gi", storageClassName="local-path")
    immediate = pvc("i", storageClassName="")
    plugin = _binding([wffc, immediate], [], [LOCAL_PATH])
    assert plugin.prefilter(_pod("w")) == ""                   # WaitForFirstConsumer: the Filter's
    assert plugin.prefilter(_pod("i")) == binding.UNBOUND_IMMEDIATE
    assert plugin.prefilter(_pod("gone")) == 'persistentvolumeclaim "gone" not found'
    nodes = [_node("a"), _node("b", storage="3Gi"), _node("c", local_dir=None)]
    refused, plans = plugin.filter(_pod("w"), nodes)
    assert refused == {"b": [binding.REASON_NOT_ENOUGH_SPACE], "c": [binding.REASON_NOT_ENOUGH_SPACE]}
    assert [c["metadata"]["name"] for c in plans["a"].provision] == ["w"]
    plugin.assume(plans["a"], "a")                               # the next pod sees a's storage taken
    second = pvc("w2", "7Gi", storageClassName="local-path")
    plugin.claims.cache["ns/w2"] = second
    refused, _ = plugin.filter(_pod("w2"), [_node("a")])
    assert refused == {"a": [binding.REASON_NOT_ENOUGH_SPACE]}
    assert binding.fit_error(_pod("w2"), [_node("a")], refused).message == (
        "0/1 nodes are available: 1 node(s) did not have enough free storage. preemption: 0/1 nodes are "
        "available: 1 Preemption is not helpful for scheduling.")
    plugin.forget(plans["a"])
    assert plugin.filter(_pod("w2"), [_node("a")])[0] == {}
    # A claim with a selected node only fits that node.
    selected = {**wffc, "metadata": {**wffc["metadata"], "annotations": {rules.ANN_SELECTED_NODE: "b"}}}
    plugin.claims.cache["ns/w"] = selected
    refused, _ = plugin.filter(_pod("w"), [_node("a"), _node("b")])
    assert refused == {"a": [binding.REASON_BIND_CONFLICT]}


def test_volume_binding_static_volumes_and_bound_affinity():
    disk = pv("disk-b", "1Gi", storageClassName="disks", nodeAffinity=affinity("b"))
    claim = pvc("d", "1Gi", storageClassName="disks")
    plugin = _binding([claim], [disk], [LOCAL_DISKS])
    refused, plans = plugin.filter(_pod("d"), [_node("a"), _node("b")])
    assert refused == {"a": [binding.REASON_BIND_CONFLICT]}
    assert [(v["metadata"]["name"], c["metadata"]["name"]) for v, c in plans["b"].static] == [("disk-b", "d")]
    bound = {**claim, "metadata": {**claim["metadata"], "annotations": {rules.ANN_BIND_COMPLETED: "yes"}},
             "spec": {**claim["spec"], "volumeName": "disk-b"}, "status": {"phase": "Bound"}}
    plugin.claims.cache["ns/d"] = bound
    refused, _ = plugin.filter(_pod("d"), [_node("a"), _node("b")])
    assert refused == {"a": [binding.REASON_NODE_CONFLICT]}
    gone = {**bound, "spec": {**bound["spec"], "volumeName": "missing"}}
    plugin.claims.cache["ns/d"] = gone
    assert plugin.filter(_pod("d"), [_node("a")])[0] == {"a": [binding.REASON_PV_NOT_EXIST]}
    # A node refused by an earlier filter reports that reason, not VolumeBinding's.
    tainted = _node("t")
    tainted.blocking_taints = [{"key": "k", "value": "v", "effect": "NoSchedule"}]
    message = binding.fit_error(_pod("d"), [_node("a"), tainted],
                                {"a": [binding.REASON_NODE_CONFLICT], "t": [binding.REASON_NODE_CONFLICT]}).message
    assert message.startswith("0/2 nodes are available: 1 node(s) didn't match PersistentVolume's node affinity, "
                              "1 node(s) had untolerated taint {k: v}.")


def test_agent_local_path_dir_flag():
    from agent.config import parse_args
    base = ["--node-name", "n1", "--node-ip", "127.0.0.1"]
    assert parse_args(base).local_path_dir == "/var/lib/shipmate/storage"
    assert parse_args([*base, "--root-dir", "/srv/node7/agent/"]).local_path_dir == "/srv/node7/storage"
    assert parse_args([*base, "--local-path-dir", "/mnt/ssd//volumes/"]).local_path_dir == "/mnt/ssd/volumes"
    with pytest.raises(SystemExit):
        parse_args([*base, "--local-path-dir", "volumes"])
