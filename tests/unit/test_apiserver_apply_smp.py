"""Strategic merge patches as kubectl's client-side apply sends them (three-way merge directives)."""
import pytest

from apiserver.patch import PatchError, strategic_merge_patch

DEPLOYMENT = {
    "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
    "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}},
             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
             "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                 "tolerations": [{"key": "a", "operator": "Exists"}],
                 "volumes": [{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}],
                 "containers": [
                     {"name": "a", "image": "busybox:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                      "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81, "protocol": "TCP"}],
                      "volumeMounts": [{"name": "v1", "mountPath": "/a"}, {"name": "v2", "mountPath": "/b"}]},
                     {"name": "b", "image": "busybox:2"}]}}}}

# What kubectl v1.35 sent for the manifest change in tests/integration/test_kubectl_fidelity.py.
KUBECTL_PATCH = {
    "metadata": {"labels": {"tier": None}},
    "spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"},
             "template": {"spec": {
                 "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                 "$setElementOrder/volumes": [{"name": "v2"}],
                 "containers": [{"image": "busybox:3", "name": "b"},
                                {"$setElementOrder/env": [{"name": "Y"}],
                                 "$setElementOrder/ports": [{"containerPort": 81}],
                                 "$setElementOrder/volumeMounts": [{"mountPath": "/b"}],
                                 "env": [{"name": "Y", "value": "3"}, {"$patch": "delete", "name": "X"}], "name": "a",
                                 "ports": [{"$patch": "delete", "containerPort": 80}],
                                 "volumeMounts": [{"$patch": "delete", "mountPath": "/a"}]}],
                 "tolerations": None,
                 "volumes": [{"$retainKeys": ["hostPath", "name"], "emptyDir": None, "hostPath": {"path": "/tmp"},
                              "name": "v2"}, {"$patch": "delete", "name": "v1"}]}}}}


def test_kubectl_three_way_patch_applies_every_directive():
    result = strategic_merge_patch(DEPLOYMENT, KUBECTL_PATCH)
    assert result["metadata"]["labels"] == {"app": "web"}
    assert result["spec"]["replicas"] == 5  # not owned by the file: kept
    assert result["spec"]["strategy"] == {"type": "Recreate"}
    pod = result["spec"]["template"]["spec"]
    assert "tolerations" not in pod
    assert pod["volumes"] == [{"name": "v2", "hostPath": {"path": "/tmp"}}]
    assert [c["name"] for c in pod["containers"]] == ["b", "a"]
    b, a = pod["containers"]
    assert b == {"name": "b", "image": "busybox:3"}
    assert a["env"] == [{"name": "Y", "value": "3"}]
    assert a["ports"] == [{"containerPort": 81, "protocol": "TCP"}]
    assert a["volumeMounts"] == [{"name": "v2", "mountPath": "/b"}]
    assert not any(key.startswith("$") for key in str(result).split("'"))


def test_retain_keys_clears_unlisted_fields_without_explicit_nulls():
    patched = strategic_merge_patch(DEPLOYMENT, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert patched["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(PatchError):
        strategic_merge_patch(DEPLOYMENT, {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}})


def test_set_element_order_keeps_server_only_elements_in_place():
    current = {"spec": {"containers": [{"name": "a"}, {"name": "sidecar"}, {"name": "b"}]}}
    patched = strategic_merge_patch(current, {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                                                       "containers": [{"name": "b", "image": "x"}]}})
    # upstream's mergeSortedSlice: "sidecar" stood before "b" on the server, so it stays before it.
    assert [c["name"] for c in patched["spec"]["containers"]] == ["sidecar", "b", "a"]
    added = strategic_merge_patch(current, {"spec": {"$setElementOrder/containers": [{"name": "new"}, {"name": "a"}],
                                                     "containers": [{"name": "new"}]}})
    assert [c["name"] for c in added["spec"]["containers"]] == ["new", "a", "sidecar", "b"]
    finalizers = strategic_merge_patch({"metadata": {"finalizers": ["x", "y"]}},
                                       {"metadata": {"$setElementOrder/finalizers": ["y", "x"]}})
    assert finalizers["metadata"]["finalizers"] == ["y", "x"]


def test_merge_keys_of_pod_templates_and_pods():
    pod = {"spec": {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}],
                    "imagePullSecrets": [{"name": "r1"}],
                    "initContainers": [{"name": "i", "env": [{"name": "A", "value": "1"}]}]}}
    patched = strategic_merge_patch(pod, {"spec": {
        "topologySpreadConstraints": [{"topologyKey": "host", "maxSkew": 2}],
        "imagePullSecrets": [{"name": "r2"}],
        "initContainers": [{"name": "i", "env": [{"name": "B", "value": "2"}]}]}})
    assert [t["topologyKey"] for t in patched["spec"]["topologySpreadConstraints"]] == ["zone", "host"]
    assert patched["spec"]["imagePullSecrets"] == [{"name": "r1"}, {"name": "r2"}]
    assert [e["name"] for e in patched["spec"]["initContainers"][0]["env"]] == ["A", "B"]
    template = strategic_merge_patch({"spec": {"template": pod}}, {"spec": {"template": {"spec": {
        "imagePullSecrets": [{"name": "r3"}]}}}})
    assert template["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "r1"}, {"name": "r3"}]
    tolerations = strategic_merge_patch({"spec": {"tolerations": [{"key": "a"}]}},
                                        {"spec": {"tolerations": [{"key": "b"}]}})
    assert tolerations["spec"]["tolerations"] == [{"key": "b"}]  # atomic upstream: replaced


def test_replace_directive_on_lists_and_maps_drops_directives():
    replaced = strategic_merge_patch(DEPLOYMENT, {"spec": {"template": {"spec": {"containers": [
        {"name": "only", "image": "x", "env": [{"name": "A", "value": "1"}]}, {"$patch": "replace"}]}}}})
    assert replaced["spec"]["template"]["spec"]["containers"] == [
        {"name": "only", "image": "x", "env": [{"name": "A", "value": "1"}]}]


def test_webhooks_merge_by_name_as_upstreams_patch_merge_key() -> None:
    """admissionregistration/v1: `webhooks` has patchMergeKey=name; kubectl apply's patch changing one field
    names only that webhook and the field, and everything else of it stays."""
    current = {"webhooks": [{"name": "a.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                             "clientConfig": {"url": "https://a.example.com"}},
                            {"name": "b.example.com", "sideEffects": "None"}]}
    patched = strategic_merge_patch(current, {"webhooks": [{"name": "a.example.com", "failurePolicy": "Ignore"}]})
    assert patched["webhooks"][0] == {**current["webhooks"][0], "failurePolicy": "Ignore"}
    assert patched["webhooks"][1] == current["webhooks"][1]


def test_cronjob_pod_template_containers_merge_by_name() -> None:
    containers = [{"name": "a", "image": "one"}, {"name": "b", "image": "two"}]
    current = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": containers}}}}}}
    patch = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "3"}]}}}}}}
    patched = strategic_merge_patch(current, patch)
    assert patched["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"] == [
        containers[0], {"name": "b", "image": "3"}]
