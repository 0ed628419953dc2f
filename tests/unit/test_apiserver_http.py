from apiserver.errors import invalid_object, not_found, required
from apiserver.http import discovery, openapi
from apiserver.requestinfo import RequestInfo, parse_resource_path
from apiserver.http.server import Rendering, negotiate
from apiserver.allocation.pod_cidrs import CIDRAllocator, CIDRExhausted
from apiserver.kinds import all_strategies

RESOURCES = [s.info for s in all_strategies()]


def test_parse_resource_paths():
    assert parse_resource_path("/api/v1/namespaces/default/pods") == RequestInfo("", "v1", "pods", "default")
    assert parse_resource_path("/api/v1/namespaces/default/pods/web/status") == \
        RequestInfo("", "v1", "pods", "default", "web", "status")
    assert parse_resource_path("/api/v1/namespaces/kube-system") == RequestInfo("", "v1", "namespaces", "", "kube-system")
    assert parse_resource_path("/api/v1/namespaces/x/finalize") == RequestInfo("", "v1", "namespaces", "", "x", "finalize")
    assert parse_resource_path("/api/v1/nodes/n1") == RequestInfo("", "v1", "nodes", "", "n1")
    assert parse_resource_path("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1") == \
        RequestInfo("coordination.k8s.io", "v1", "leases", "kube-node-lease", "n1")
    assert parse_resource_path("/api/v1") is None
    assert parse_resource_path("/apis/coordination.k8s.io/v1") is None


def test_discovery_documents():
    core = discovery.api_resource_list(RESOURCES, "", "v1")
    names = {r["name"]: r for r in core["resources"]}
    assert {"pods", "pods/status", "pods/binding", "nodes", "nodes/status", "namespaces", "events"} <= set(names)
    assert names["pods"]["shortNames"] == ["po"] and names["pods"]["namespaced"] is True
    assert names["pods/binding"]["kind"] == "Binding"
    assert names["pods/exec"]["kind"] == "PodExecOptions" and names["pods/log"]["verbs"] == ["get"]
    groups = discovery.api_group_list(RESOURCES)
    assert {"coordination.k8s.io", "discovery.k8s.io"} <= {g["name"] for g in groups["groups"]}
    named = discovery.aggregated_discovery(RESOURCES, False, "apidiscovery.k8s.io/v2")
    slices = next(i for i in named["items"] if i["metadata"]["name"] == "discovery.k8s.io")
    assert slices["versions"][0]["resources"][0]["resource"] == "endpointslices"
    aggregated = discovery.aggregated_discovery(RESOURCES, True, "apidiscovery.k8s.io/v2")
    pods = next(r for r in aggregated["items"][0]["versions"][0]["resources"] if r["resource"] == "pods")
    assert pods["scope"] == "Namespaced" and {"status", "binding", "log", "exec", "attach"} <= \
        {s["subresource"] for s in pods["subresources"]}


def test_openapi_declares_field_validation_on_patch():
    document = openapi.group_version_document(RESOURCES, "", "v1")
    patch = document["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    root = openapi.root_document(RESOURCES)
    assert root["paths"]["api/v1"]["serverRelativeURL"].startswith("/openapi/v3/api/v1?hash=")


def test_content_negotiation():
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
    assert negotiate(accept) == Rendering("Table", "v1")
    assert negotiate("application/json;as=Table;v=v1beta1;g=meta.k8s.io") == Rendering("Table", "v1beta1")
    assert negotiate("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json") == \
        Rendering("PartialObjectMetadata", "v1")
    assert negotiate("application/vnd.kubernetes.protobuf,application/json") == Rendering()
    assert negotiate("application/json") == Rendering() == negotiate("")


def test_status_shapes():
    status = not_found("", "pods", "x").status()
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": 'pods "x" not found', "reason": "NotFound",
                      "details": {"name": "x", "kind": "pods"}, "code": 404}
    invalid = invalid_object("", "Pod", "web", [required("spec.containers[0].image")]).status()
    assert invalid["code"] == 422 and invalid["reason"] == "Invalid"
    assert invalid["message"] == 'Pod "web" is invalid: spec.containers[0].image: Required value'
    assert invalid["details"]["causes"] == [{"reason": "FieldValueRequired", "message": "Required value",
                                             "field": "spec.containers[0].image"}]
    assert not_found("coordination.k8s.io", "leases", "n").message == 'leases.coordination.k8s.io "n" not found'


def test_cidr_allocator():
    allocator = CIDRAllocator("10.244.0.0/22", 24)
    assert allocator.occupy("10.244.0.0/24")
    assert not allocator.occupy("10.1.0.0/24")
    assert [allocator.allocate() for _ in range(3)] == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    try:
        allocator.allocate()
        raise AssertionError("expected exhaustion")
    except CIDRExhausted:
        pass
    allocator.release("10.244.2.0/24")
    assert allocator.allocate() == "10.244.2.0/24"


def test_cidr_allocator_conflicts():
    """What a requested podCIDR must not be: outside the cluster CIDR or over another node's subnet."""
    allocator = CIDRAllocator("10.244.0.0/16", 24)
    assert allocator.occupy("10.244.3.0/24", "n3")
    assert allocator.conflict("10.244.4.0/24", "n4") is None
    assert allocator.conflict("10.244.3.0/24", "n3") is None  # its own
    assert allocator.conflict("10.244.3.128/25", "n4") == 'overlaps the podCIDR 10.244.3.0/24 of node "n3"'
    assert allocator.conflict("10.244.0.0/16", "n4") == 'overlaps the podCIDR 10.244.3.0/24 of node "n3"'
    for outside in ("10.96.0.0/24", "0.0.0.0/0", "10.0.0.0/8", "fd00::/64"):
        assert allocator.conflict(outside, "n4") == "must be within the cluster CIDR 10.244.0.0/16"
    assert allocator.occupy("10.244.0.0/23", "admin-set")  # any prefix inside: allocation skips what it overlaps
    assert allocator.allocate("n5") == "10.244.2.0/24"


def test_openapi_v2_is_an_empty_protobuf_document():
    document = openapi.v2_document()
    assert document.startswith(b"\x0a\x032.0\x12")  # swagger = "2.0", then info
    assert b"Kubernetes" in document and discovery.GIT_VERSION.encode() in document
