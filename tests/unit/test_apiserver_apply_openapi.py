"""OpenAPI v3 documents for `kubectl explain`: every served kind has a schema, every reference resolves."""
import json

from apiserver.http.discovery import group_versions
from apiserver.http.openapi import group_version_document, schema_name
from apiserver.kinds import all_strategies
from apiserver.openapi_schemas import DEFINITIONS

RESOURCES = [strategy.info for strategy in all_strategies()]


def refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_every_kind_has_a_schema_with_its_gvk_and_references_resolve():
    for group, versions in group_versions(RESOURCES).items():
        for version in versions:
            document = group_version_document(RESOURCES, group, version)
            schemas = document["components"]["schemas"]
            for ref in refs(document):
                assert ref.removeprefix("#/components/schemas/") in schemas, ref
            for info in RESOURCES:
                if (info.group, info.version) == (group, version):
                    schema = schemas[schema_name(info)]
                    assert schema["x-kubernetes-group-version-kind"] == [
                        {"group": info.group, "version": info.version, "kind": info.kind}]
                    assert schema["properties"]["metadata"]["description"]


def test_explained_kinds_describe_top_level_and_spec_fields():
    for kind in ("core.Pod", "apps.Deployment", "apps.ReplicaSet", "core.Service"):
        definition = DEFINITIONS[kind]
        spec_type = definition.fields["spec"][0]
        for name, (_, description) in {**definition.fields, **DEFINITIONS[spec_type].fields}.items():
            assert description, f"{kind}.{name}"
    document = group_version_document(RESOURCES, "apps", "v1")
    spec = document["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["required"] == ["selector", "template"]
    assert spec["properties"]["template"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec"}]
    surge = document["components"]["schemas"]["io.k8s.api.apps.v1.RollingUpdateDeployment"]["properties"]["maxSurge"]
    assert surge["allOf"] == [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]
    # Exact kinds declare strategic merge on PATCH and publish upstream's merge keys: kubectl's client-side apply
    # computes its three-way merge from them.
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert sorted(patch["requestBody"]["content"]) == [
        "application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
        "application/strategic-merge-patch+json"]
    core = group_version_document(RESOURCES, "", "v1")
    schemas = core["components"]["schemas"]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert (containers["x-kubernetes-patch-merge-key"], containers["x-kubernetes-patch-strategy"]) == ("name", "merge")
    ports = schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    env = schemas["io.k8s.api.core.v1.Container"]["properties"]["env"]
    assert env["x-kubernetes-patch-merge-key"] == "name" and env["x-kubernetes-list-type"] == "map"
    # a kind with free-form parts does not offer strategic merge from its schema
    node_patch = core["paths"]["/api/v1/nodes/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in node_patch["requestBody"]["content"]
