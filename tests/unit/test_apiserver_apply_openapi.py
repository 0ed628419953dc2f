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
    # No request body types on PATCH: kubectl keeps its built-in strategic-merge metadata for apply.
    assert "requestBody" not in json.dumps(document)
