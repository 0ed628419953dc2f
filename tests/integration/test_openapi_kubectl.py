"""OpenAPI v2 and v3 with real kubectl: every served kind (built-in and custom) published with its
group-version-kind, references that resolve, upstream's merge keys and list types, and kubectl's client-side
apply computing its three-way merge from the published v3 schema (a re-apply that drops one env var and one port
changes exactly those), explain, and strict validation."""
import json
import shutil

import pytest

from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "merge-keys"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "m"}}, "template": {
        "metadata": {"labels": {"app": "m"}},
        "spec": {"containers": [{"name": "web", "image": "nginx",
                                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                 "ports": [{"containerPort": 80}, {"containerPort": 81}],
                                 "livenessProbe": {"httpGet": {"path": "/", "port": 80}}}]}}}}

CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "documents.openapi.example.com"},
       "spec": {"group": "openapi.example.com", "scope": "Namespaced",
                "names": {"plural": "documents", "kind": "Document"},
                "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                    "type": "object", "properties": {"spec": {"type": "object", "properties": {
                        "title": {"type": "string", "description": "The title."}}}}}}}]}}


def kubectl(server, *args, body=None, check=True):
    return server.kubectl(*args, input=json.dumps(body) if body is not None else None, check=check)


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_client_side_apply_merges_lists_by_published_keys(module_server):
    srv = module_server
    kubectl(srv, "apply", "-f", "-", body=DEPLOYMENT)
    kubectl(srv, "set", "env", "deployment/merge-keys", "C=3")  # another manager's addition must survive
    changed = json.loads(json.dumps(DEPLOYMENT))
    container = changed["spec"]["template"]["spec"]["containers"][0]
    container["env"] = container["env"][:1]
    container["ports"] = container["ports"][:1]
    result = kubectl(srv, "apply", "-v=8", "-f", "-", body=changed)
    assert "warning: error calculating patch from openapi" not in result.stderr
    assert "application/strategic-merge-patch+json" in result.stderr
    assert '\\"$patch\\":\\"delete\\",\\"name\\":\\"B\\"' in result.stderr
    assert '\\"$patch\\":\\"delete\\",\\"containerPort\\":81' in result.stderr
    live = json.loads(kubectl(srv, "get", "deployment", "merge-keys", "-o", "json").stdout)
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


def test_v3_documents_every_kind_with_merge_keys(module_server):
    srv = module_server
    kubectl(srv, "apply", "-f", "-", body=CRD)
    wait_for(lambda: kubectl(srv, "get", "documents", check=False).returncode == 0, timeout=10)
    root = json.loads(kubectl(srv, "get", "--raw", "/openapi/v3").stdout)["paths"]
    assert "apis/openapi.example.com/v1" in root and "api/v1" in root and "apis/apps/v1" in root
    resources = {}
    for line in kubectl(srv, "api-resources", "--no-headers", "-o", "wide").stdout.splitlines():
        parts = line.split()
        resources[parts[0]] = parts
    for path in root:
        document = json.loads(kubectl(srv, "get", "--raw", "/openapi/v3/" + path).stdout)
        schemas = document["components"]["schemas"]
        for ref in refs(document):
            assert ref.removeprefix("#/components/schemas/") in schemas, (path, ref)
        kinds = {g["kind"] for s in schemas.values() for g in s.get("x-kubernetes-group-version-kind", [])}
        for item in document["paths"].values():
            for operation in item.values():
                if isinstance(operation, dict) and "x-kubernetes-group-version-kind" in operation:
                    assert operation["x-kubernetes-group-version-kind"]["kind"] in kinds, (path, operation)
    apps = json.loads(kubectl(srv, "get", "--raw", "/openapi/v3/apis/apps/v1").stdout)["components"]["schemas"]
    strategy = apps["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    custom = json.loads(kubectl(srv, "get", "--raw", "/openapi/v3/apis/openapi.example.com/v1").stdout)
    patch = custom["paths"]["/apis/openapi.example.com/v1/namespaces/{namespace}/documents/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "com.example.openapi.v1.Document" in custom["components"]["schemas"]


def test_v2_json_for_code_generators(module_server):
    srv = module_server
    kubectl(srv, "apply", "-f", "-", body=CRD)
    wait_for(lambda: kubectl(srv, "get", "documents", check=False).returncode == 0, timeout=10)
    swagger = json.loads(kubectl(srv, "get", "--raw", "/openapi/v2").stdout)
    assert swagger["swagger"] == "2.0"
    definitions = swagger["definitions"]
    for ref in refs(swagger):
        assert ref.removeprefix("#/definitions/") in definitions, ref
    for name in ("io.k8s.api.apps.v1.Deployment", "io.k8s.api.core.v1.Pod", "com.example.openapi.v1.Document",
                 "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
                 "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration"):
        assert definitions[name]["x-kubernetes-group-version-kind"], name
    env = definitions["io.k8s.api.core.v1.Container"]["properties"]["env"]
    assert env["x-kubernetes-patch-merge-key"] == "name"
    assert "/apis/apps/v1/namespaces/{namespace}/deployments" in swagger["paths"]


def test_explain_and_strict_validation(module_server):
    srv = module_server
    explained = kubectl(srv, "explain", "deployment.spec.template.spec.containers.livenessProbe.httpGet").stdout
    assert "port\t<IntOrString> -required-" in explained
    bad = json.loads(json.dumps(DEPLOYMENT))
    bad["metadata"]["name"] = "strict"
    bad["spec"]["template"]["spec"]["containers"][0]["bogus"] = True
    result = kubectl(srv, "create", "--validate=strict", "-f", "-", body=bad, check=False)
    assert result.returncode != 0
    assert 'strict decoding error: unknown field "spec.template.spec.containers[0].bogus"' in result.stderr
