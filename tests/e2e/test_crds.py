"""Issue 18 on the `make up` cluster with real kubectl: a CRD with a structural schema (422s with upstream's field
paths, defaults, pruning, printer columns, `kubectl scale` through the scale subresource, `kubectl explain`), and
`kubectl apply` of a Deployment whose re-apply drops one env var and one port changing exactly those (the
three-way merge from the OpenAPI-published merge keys)."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from tests.e2e.cluster import Kubectl, unique_name
from tests.support import wait_for

pytestmark = pytest.mark.e2e


def widget_crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{
                     "name": "v1", "served": True, "storage": True,
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                              "statusReplicasPath": ".status.replicas"}},
                     "additionalPrinterColumns": [
                         {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                         {"name": "Color", "type": "string", "jsonPath": ".spec.color"}],
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                         "spec": {"type": "object", "description": "Desired state of the widget.",
                                  "required": ["color"], "properties": {
                                      "replicas": {"type": "integer", "minimum": 0, "default": 1},
                                      "color": {"type": "string", "enum": ["red", "green"]}}},
                         "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}}}]}}


@pytest.fixture
def crd_group(kubectl: Kubectl) -> Iterator[str]:
    group = f"{unique_name('e2e')}.example.com"
    kubectl.apply(widget_crd(group))
    wait_for(lambda: kubectl.run("get", f"widgets.{group}", "-A", check=False).returncode == 0, timeout=30,
             what="the custom resource to be served")
    try:
        yield group
    finally:
        kubectl.run("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def test_custom_resources_with_a_structural_schema(kubectl: Kubectl, namespace: str, crd_group: str) -> None:
    def widget(name: str, **spec: Any) -> str:
        return json.dumps({"apiVersion": f"{crd_group}/v1", "kind": "Widget",
                           "metadata": {"name": name, "namespace": namespace}, "spec": spec})
    bad = kubectl.run("create", "--validate=false", "-f", "-", stdin=widget("bad", color="blue", replicas=-1),
                      check=False)
    assert bad.returncode != 0
    assert 'spec.color: Unsupported value: "blue": supported values: "red", "green"' in bad.stderr
    assert "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0" \
        in bad.stderr
    kubectl.run("create", "--validate=false", "-f", "-", stdin=widget("w", color="red", unknown=True))
    stored = kubectl.json("get", f"widgets.{crd_group}", "w", "-n", namespace)
    assert stored["spec"] == {"color": "red", "replicas": 1}
    header = kubectl.run("get", f"widgets.{crd_group}", "-n", namespace).stdout.splitlines()
    assert header[0].split() == ["NAME", "REPLICAS", "COLOR"] and header[1].split() == ["w", "1", "red"]
    kubectl.run("scale", f"widgets.{crd_group}", "w", "-n", namespace, "--replicas=4")
    assert kubectl.json("get", f"widgets.{crd_group}", "w", "-n", namespace)["spec"]["replicas"] == 4
    explained = kubectl.run("explain", f"widgets.{crd_group}.spec").stdout
    assert "Desired state of the widget." in explained and "color\t<string> -required-" in explained


def test_apply_merges_lists_with_published_keys(kubectl: Kubectl, namespace: str) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "merge", "namespace": namespace},
                  "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "merge"}}, "template": {
                      "metadata": {"labels": {"app": "merge"}},
                      "spec": {"containers": [{"name": "c", "image": "127.0.0.1:5000/library/busybox:latest",
                                               "command": ["sleep", "3600"],
                                               "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                               "ports": [{"containerPort": 80}, {"containerPort": 81}]}]}}}}
    kubectl.apply(deployment)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["env"], container["ports"] = container["env"][:1], container["ports"][:1]
    result = kubectl.apply(deployment)
    assert "warning: error calculating patch from openapi" not in result.stderr
    live = kubectl.json("get", "deployment", "merge", "-n", namespace)["spec"]["template"]["spec"]["containers"][0]
    assert live["env"] == [{"name": "A", "value": "1"}]
    assert live["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
