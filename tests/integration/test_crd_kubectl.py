"""CustomResourceDefinitions through real kubectl v1.35 (and the official Python client's dynamic client)
against a `shipmate server`: discovery without a restart, structural schemas (422s with upstream's paths,
defaults, pruning), printer columns, scale, explain, status, several versions, patches, server-side apply,
watch, field selectors, garbage collection, namespace deletion, CRD deletion and RBAC."""
import json
import shutil
import subprocess
import threading
import time

import pytest

from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

GROUP = "stable.example.com"

WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"],
                  "categories": ["all"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                     "statusReplicasPath": ".status.replicas",
                                                     "labelSelectorPath": ".status.selector"}},
            "additionalPrinterColumns": [
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
                {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
            "schema": {"openAPIV3Schema": {
                "type": "object", "description": "A Widget is a thing with a color.",
                "properties": {
                    "spec": {"type": "object", "description": "Desired state of the widget.",
                             "required": ["color"],
                             "properties": {
                                 "replicas": {"type": "integer", "minimum": 0, "default": 1,
                                              "description": "How many."},
                                 "color": {"type": "string", "enum": ["red", "green", "blue"]},
                                 "size": {"x-kubernetes-int-or-string": True},
                                 "ports": {"type": "array", "x-kubernetes-list-type": "map",
                                           "x-kubernetes-list-map-keys": ["name"],
                                           "items": {"type": "object", "required": ["name"], "properties": {
                                               "name": {"type": "string"}, "port": {"type": "integer"}}}},
                                 "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}},
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"}, "selector": {"type": "string"},
                        "conditions": {"type": "array", "items": {"type": "object", "properties": {
                            "type": {"type": "string"}, "status": {"type": "string"}}}}}}}}}}]}}


def kubectl(server, *args, body=None, check=True):
    return server.kubectl(*args, input=json.dumps(body) if body is not None else None, check=check)


def widget(name, **spec):
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def established(server, name):
    out = kubectl(server, "get", "crd", name, "-o", "json").stdout
    conditions = {c["type"]: c for c in json.loads(out).get("status", {}).get("conditions", [])}
    return conditions.get("Established", {}).get("status") == "True"


@pytest.fixture(scope="module")
def crd_server(module_server):
    kubectl(module_server, "apply", "-f", "-", body=WIDGETS)
    wait_for(lambda: established(module_server, f"widgets.{GROUP}"), timeout=10)
    return module_server


def test_crd_is_established_and_discovered_without_a_restart(crd_server):
    crd = json.loads(kubectl(crd_server, "get", "crd", f"widgets.{GROUP}", "-o", "json").stdout)
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["NamesAccepted"]["reason"] == "NoConflicts"
    assert conditions["Established"]["reason"] == "InitialNamesAccepted"
    assert crd["status"]["acceptedNames"]["shortNames"] == ["wd"] and crd["status"]["storedVersions"] == ["v1"]
    rows = {line.split()[0]: line for line in kubectl(crd_server, "api-resources", "-o", "wide").stdout.splitlines()}
    assert " wd " in rows["widgets"] and f"{GROUP}/v1" in rows["widgets"] and rows["widgets"].rstrip().endswith("all")
    assert "crd,crds" in rows["customresourcedefinitions"]
    status, aggregated = crd_server.request("GET", "/apis")
    assert any(g["name"] == GROUP for g in aggregated["groups"])
    resources = json.loads(kubectl(crd_server, "get", "--raw", f"/apis/{GROUP}/v1").stdout)["resources"]
    assert {r["name"] for r in resources} == {"widgets", "widgets/status", "widgets/scale"}
    assert json.loads(kubectl(crd_server, "get", "--raw", "/api/v1").stdout)["groupVersion"] == "v1"


def test_invalid_objects_get_422_with_upstream_field_paths(crd_server):
    bad = widget("bad", color="purple", replicas=-1, size=[1])
    result = kubectl(crd_server, "create", "--validate=false", "-f", "-", body=bad, check=False)
    assert result.returncode != 0
    assert 'The Widget "bad" is invalid:' in result.stderr
    assert 'spec.color: Unsupported value: "purple": supported values: "red", "green", "blue"' in result.stderr
    assert "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0" \
        in result.stderr
    assert 'spec.size: Invalid value: "array": spec.size in body must be of type integer,string: "array"' \
        in result.stderr
    assert ".spec.replicas: Invalid value: -1: should be a non-negative integer" in result.stderr
    missing = kubectl(crd_server, "create", "--validate=false", "-f", "-", body=widget("bad2"), check=False)
    assert "spec.color: Required value" in missing.stderr
    unknown = kubectl(crd_server, "create", "-f", "-", body=widget("bad3", color="red", bogus=1), check=False)
    assert 'Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.bogus"' \
        in unknown.stderr


def test_defaults_pruning_printer_columns_and_explain(crd_server):
    body = widget("w1", color="red", bogus=True, size="50%")
    kubectl(crd_server, "create", "--validate=false", "-f", "-", body=body)
    stored = json.loads(kubectl(crd_server, "get", "wd", "w1", "-o", "json").stdout)
    assert stored["spec"] == {"color": "red", "replicas": 1, "size": "50%"}  # defaulted, pruned
    assert stored["metadata"]["generation"] == 1
    lines = kubectl(crd_server, "get", "widgets").stdout.splitlines()
    assert lines[0].split() == ["NAME", "REPLICAS", "COLOR", "READY", "AGE"]
    assert lines[1].split()[:3] == ["w1", "1", "red"]
    explained = kubectl(crd_server, "explain", "widget.spec").stdout
    assert "KIND:       Widget" in explained and "Desired state of the widget." in explained
    assert "replicas\t<integer>" in explained and "color\t<string> -required-" in explained


def test_scale_and_status_subresources(crd_server):
    kubectl(crd_server, "apply", "-f", "-", body=widget("scaled", color="green"))
    assert "scaled" in kubectl(crd_server, "scale", "widget", "scaled", "--replicas=3").stdout
    obj = json.loads(kubectl(crd_server, "get", "widget", "scaled", "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 3 and obj["metadata"]["generation"] == 2
    kubectl(crd_server, "patch", "widget", "scaled", "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"replicas": 3, "selector": "app=x",
                                   "conditions": [{"type": "Ready", "status": "True"}]}}))
    scale = json.loads(kubectl(crd_server, "get", "--raw",
                               f"/apis/{GROUP}/v1/namespaces/default/widgets/scaled/scale").stdout)
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 3, "selector": "app=x"}
    row = kubectl(crd_server, "get", "widget", "scaled").stdout.splitlines()[1].split()
    assert row[:4] == ["scaled", "3", "green", "True"]
    # the main resource cannot change status; status writes do not move generation
    kubectl(crd_server, "patch", "widget", "scaled", "--type=merge", "-p", '{"status":{"replicas":9}}')
    obj = json.loads(kubectl(crd_server, "get", "widget", "scaled", "-o", "json").stdout)
    assert obj["status"]["replicas"] == 3 and obj["metadata"]["generation"] == 2
    bad = kubectl(crd_server, "patch", "widget", "scaled", "--subresource=status", "--type=merge", "-p",
                  '{"status":{"replicas":"x"}}', check=False)
    assert 'status.replicas: Invalid value: "string": replicas in body must be of type integer: "string"' in bad.stderr


def test_patches_strategic_merge_is_refused(crd_server):
    kubectl(crd_server, "apply", "-f", "-", body=widget("patched", color="red"))
    refused = kubectl(crd_server, "patch", "widget", "patched", "--type=strategic", "-p", '{"spec":{"color":"blue"}}',
                      check=False)
    assert "the body of the request was in an unknown format - accepted media types include: " \
           "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml" in refused.stderr
    kubectl(crd_server, "patch", "widget", "patched", "--type=json", "-p",
            '[{"op":"replace","path":"/spec/color","value":"blue"}]')
    kubectl(crd_server, "patch", "widget", "patched", "--type=merge", "-p", '{"spec":{"replicas":4}}')
    spec = json.loads(kubectl(crd_server, "get", "widget", "patched", "-o", "json").stdout)["spec"]
    assert spec["color"] == "blue" and spec["replicas"] == 4
    # kubectl apply (client side) falls back to a merge patch for custom resources, as upstream
    body = widget("patched", color="green")
    assert "configured" in kubectl(crd_server, "apply", "-f", "-", body=body).stdout


def test_server_side_apply_keys_map_lists_and_records_managed_fields(crd_server):
    body = widget("ssa", color="red", ports=[{"name": "a", "port": 1}, {"name": "b", "port": 2}])
    kubectl(crd_server, "apply", "--server-side", "-f", "-", body=body)
    other = widget("ssa", color="red", ports=[{"name": "c", "port": 3}])
    kubectl(crd_server, "apply", "--server-side", "--field-manager=other", "-f", "-", body=other)
    obj = json.loads(kubectl(crd_server, "get", "widget", "ssa", "-o", "json", "--show-managed-fields").stdout)
    assert [p["name"] for p in obj["spec"]["ports"]] == ["a", "b", "c"]
    managers = {entry["manager"]: entry for entry in obj["metadata"]["managedFields"]}
    assert set(managers) == {"kubectl", "other"}
    assert 'k:{"name":"c"}' in managers["other"]["fieldsV1"]["f:spec"]["f:ports"]
    conflict = kubectl(crd_server, "apply", "--server-side", "--field-manager=other", "-f", "-",
                       body=widget("ssa", color="blue"), check=False)
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.color' in conflict.stderr


def test_several_versions_with_a_storage_version(crd_server):
    gadgets = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Cluster", "names": {"plural": "gadgets", "kind": "Gadget"},
                 "versions": [
                     {"name": "v1beta1", "served": True, "storage": False, "deprecated": True,
                      "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                          "type": "object", "properties": {"size": {"type": "integer"}}}}}}},
                     {"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                          "type": "object", "properties": {"size": {"type": "integer", "default": 3},
                                                           "mode": {"type": "string", "default": "fast"}}}}}}}]}}
    kubectl(crd_server, "apply", "-f", "-", body=gadgets)
    wait_for(lambda: established(crd_server, f"gadgets.{GROUP}"), timeout=10)
    group = json.loads(kubectl(crd_server, "get", "--raw", f"/apis/{GROUP}").stdout)
    assert group["preferredVersion"]["version"] == "v1"
    old = {"apiVersion": f"{GROUP}/v1beta1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}}
    created = kubectl(crd_server, "create", "-f", "-", body=old)
    assert f"Warning: {GROUP}/v1beta1 Gadget is deprecated; use {GROUP}/v1 Gadget" in created.stderr
    as_v1 = json.loads(kubectl(crd_server, "get", f"gadgets.v1.{GROUP}", "g1", "-o", "json").stdout)
    assert as_v1["apiVersion"] == f"{GROUP}/v1" and as_v1["spec"] == {"size": 1, "mode": "fast"}
    as_beta = json.loads(kubectl(crd_server, "get", f"gadgets.v1beta1.{GROUP}", "g1", "-o", "json").stdout)
    assert as_beta["apiVersion"] == f"{GROUP}/v1beta1" and as_beta["spec"] == {"size": 1}
    assert "deleted" in kubectl(crd_server, "delete", "crd", f"gadgets.{GROUP}", "--timeout=30s").stdout


def test_watch_and_field_selectors(crd_server):
    proc = subprocess.Popen(["kubectl", "--kubeconfig", crd_server.kubeconfig, "get", "widgets", "-w",
                             "--output-watch-events", "--field-selector", "metadata.name=watched", "--no-headers"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        time.sleep(1.5)
        kubectl(crd_server, "apply", "-f", "-", body=widget("watched", color="red"))
        kubectl(crd_server, "apply", "-f", "-", body=widget("ignored", color="red"))
        kubectl(crd_server, "delete", "widget", "watched")
        wait_for(lambda: any("DELETED" in line for line in lines), timeout=10)
    finally:
        proc.terminate()
        proc.wait(5)
    assert [line.split()[:2] for line in lines] == [["ADDED", "watched"], ["DELETED", "watched"]]
    names = kubectl(crd_server, "get", "widgets", "--field-selector", "metadata.name=ignored", "-o", "name").stdout
    assert names.split() == [f"widget.{GROUP}/ignored"]
    bad = kubectl(crd_server, "get", "widgets", "--field-selector", "spec.color=red", check=False)
    assert "field label not supported: spec.color" in bad.stderr


def test_garbage_collection_and_namespace_deletion(crd_server):
    kubectl(crd_server, "apply", "-f", "-", body=widget("owner", color="red"))
    uid = json.loads(kubectl(crd_server, "get", "widget", "owner", "-o", "json").stdout)["metadata"]["uid"]
    child = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "owned-by-widget", "ownerReferences": [
                 {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "name": "owner", "uid": uid}]}}
    kubectl(crd_server, "apply", "-f", "-", body=child)
    kubectl(crd_server, "delete", "widget", "owner")
    wait_for(lambda: kubectl(crd_server, "get", "cm", "owned-by-widget", check=False).returncode != 0, timeout=15)
    kubectl(crd_server, "create", "namespace", "crd-ns")
    kubectl(crd_server, "apply", "-n", "crd-ns", "-f", "-", body=widget("inside", color="red"))
    kubectl(crd_server, "delete", "namespace", "crd-ns", "--timeout=30s")
    assert "inside" not in kubectl(crd_server, "get", "widgets", "-A").stdout


def test_rbac_by_resource_name(crd_server):
    forbidden = kubectl(crd_server, "--as=alice", "create", "-f", "-", body=widget("alices", color="red"),
                        check=False)
    assert 'widgets.stable.example.com is forbidden: User "alice" cannot create resource "widgets" in API group ' \
           '"stable.example.com" in the namespace "default"' in forbidden.stderr
    crd_denied = kubectl(crd_server, "--as=alice", "get", "crds", check=False)
    assert 'cannot list resource "customresourcedefinitions"' in crd_denied.stderr
    kubectl(crd_server, "create", "role", "widget-editor", "--verb=create,get", f"--resource=widgets.{GROUP}")
    kubectl(crd_server, "create", "rolebinding", "alice-widgets", "--role=widget-editor", "--user=alice")
    wait_for(lambda: kubectl(crd_server, "--as=alice", "auth", "can-i", "create", f"widgets.{GROUP}",
                             check=False).stdout.strip() == "yes", timeout=10)
    assert "created" in kubectl(crd_server, "--as=alice", "create", "-f", "-", body=widget("alices", color="red")).stdout


def test_deleting_the_crd_deletes_its_objects_and_its_resource(module_server):
    doomed = json.loads(json.dumps(WIDGETS).replace("widgets", "doomeds").replace('"Widget"', '"Doomed"')
                        .replace('"widget"', '"doomed"').replace('"wd"', '"dmd"'))
    kubectl(module_server, "apply", "-f", "-", body=doomed)
    wait_for(lambda: established(module_server, f"doomeds.{GROUP}"), timeout=10)
    kubectl(module_server, "apply", "-f", "-", body={"apiVersion": f"{GROUP}/v1", "kind": "Doomed",
                                                     "metadata": {"name": "d1"}, "spec": {"color": "red"}})
    kubectl(module_server, "delete", "crd", f"doomeds.{GROUP}", "--timeout=30s")
    assert kubectl(module_server, "get", "crd", f"doomeds.{GROUP}", check=False).returncode != 0
    keys = module_server.request("GET", f"/apis/{GROUP}/v1/namespaces/default/doomeds")
    assert keys[0] == 404
    rows = kubectl(module_server, "api-resources").stdout
    assert "doomeds" not in rows


def test_python_dynamic_client_custom_resource_flow(crd_server):
    """The dynamic-client flow of the official Python client's custom resource tests, with apiextensions v1."""
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ResourceNotFoundError
    client = DynamicClient(kubernetes.config.new_client_from_config(config_file=crd_server.kubeconfig))
    with pytest.raises(ResourceNotFoundError):
        client.resources.get(api_version="apps.example.com/v1", kind="ChangeMe")
    crd_api = client.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    manifest = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "changemes.apps.example.com"},
                "spec": {"group": "apps.example.com", "scope": "Namespaced",
                         "names": {"kind": "ChangeMe", "listKind": "ChangeMeList", "plural": "changemes",
                                   "singular": "changeme"},
                         "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                       "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                           "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                                       }}}}]}}
    resp = crd_api.create(manifest)
    assert resp.metadata.name == "changemes.apps.example.com" and resp.status
    wait_for(lambda: established(crd_server, "changemes.apps.example.com"), timeout=10)
    client.resources.invalidate_cache()
    changeme_api = client.resources.get(api_version="apps.example.com/v1", kind="ChangeMe")
    assert changeme_api.get().items == []
    body = {"apiVersion": "apps.example.com/v1", "kind": "ChangeMe", "metadata": {"name": "custom-resource"},
            "spec": {}}
    assert changeme_api.create(body=body, namespace="default").metadata.name == "custom-resource"
    body["spec"]["size"] = 3
    resp = changeme_api.patch(body=body, namespace="default", content_type="application/merge-patch+json")
    assert resp.spec.size == 3
    assert changeme_api.get(name="custom-resource", namespace="default").spec.size == 3
    assert len(changeme_api.get(namespace="default").items) == 1 and len(changeme_api.get().items) == 1
    changeme_api.delete(name="custom-resource", namespace="default")
    assert len(changeme_api.get().items) == 0
    crd_api.delete(name="changemes.apps.example.com")
    wait_for(lambda: kubectl(crd_server, "get", "crd", "changemes.apps.example.com", check=False).returncode != 0,
             timeout=15)
    client.resources.invalidate_cache()
    with pytest.raises(ResourceNotFoundError):
        client.resources.get(api_version="apps.example.com/v1", kind="ChangeMe")
