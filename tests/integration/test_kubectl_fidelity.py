"""kubectl fidelity against a real server: client-side apply (three-way merge), --dry-run=server,
server-side apply with managed fields, kubectl explain from our OpenAPI documents."""
import json

import pytest


pytestmark = [pytest.mark.integration]

DEPLOYMENT_V1 = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  selector: {matchLabels: {app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1}
  template:
    metadata: {labels: {app: web}}
    spec:
      tolerations: [{key: a, operator: Exists}]
      volumes: [{name: v1, emptyDir: {}}, {name: v2, emptyDir: {}}]
      containers:
      - name: a
        image: busybox:1
        env: [{name: X, value: "1"}, {name: "Y", value: "2"}]
        ports: [{containerPort: 80}, {containerPort: 81}]
        volumeMounts: [{name: v1, mountPath: /a}, {name: v2, mountPath: /b}]
      - name: b
        image: busybox:2
"""
DEPLOYMENT_V2 = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {matchLabels: {app: web}}
  strategy:
    type: Recreate
  template:
    metadata: {labels: {app: web}}
    spec:
      volumes: [{name: v2, hostPath: {path: /tmp}}]
      containers:
      - name: b
        image: busybox:3
      - name: a
        image: busybox:1
        env: [{name: "Y", value: "3"}]
        ports: [{containerPort: 81}]
        volumeMounts: [{name: v2, mountPath: /b}]
"""


def get_json(server, *args):
    return json.loads(server.kubectl("get", *args, "-o", "json").stdout)


def test_client_side_apply_three_way_merge_keeps_scale_and_prunes_removed_fields(server):
    server.kubectl("apply", "-f", "-", input=DEPLOYMENT_V1)
    server.kubectl("scale", "deployment/web", "--replicas=4")
    server.kubectl("label", "deployment/web", "owner=ops")  # set outside the file: kept too
    out = server.kubectl("apply", "-f", "-", input=DEPLOYMENT_V2).stdout
    assert "deployment.apps/web configured" in out
    deployment = get_json(server, "deployment/web")
    assert deployment["spec"]["replicas"] == 4
    assert deployment["metadata"]["labels"] == {"app": "web", "owner": "ops"}
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert "tolerations" not in pod
    assert pod["volumes"] == [{"name": "v2", "hostPath": {"path": "/tmp", "type": ""}}] or \
        [v["name"] for v in pod["volumes"]] == ["v2"] and "emptyDir" not in pod["volumes"][0]
    assert [c["name"] for c in pod["containers"]] == ["b", "a"]
    b, a = pod["containers"]
    assert b["image"] == "busybox:3"
    assert a["env"] == [{"name": "Y", "value": "3"}]
    assert [p["containerPort"] for p in a["ports"]] == [81]
    assert a["volumeMounts"] == [{"name": "v2", "mountPath": "/b"}]
    # Applying the same file again changes nothing.
    assert "deployment.apps/web unchanged" in server.kubectl("apply", "-f", "-", input=DEPLOYMENT_V2).stdout
    # A file that starts owning replicas sets them; dropping them again removes the field (defaults to 1).
    owned = DEPLOYMENT_V2.replace("spec:\n  selector", "spec:\n  replicas: 2\n  selector", 1)
    server.kubectl("apply", "-f", "-", input=owned)
    assert get_json(server, "deployment/web")["spec"]["replicas"] == 2
    server.kubectl("apply", "-f", "-", input=DEPLOYMENT_V2)
    assert get_json(server, "deployment/web")["spec"]["replicas"] == 1


def test_dry_run_server_stores_nothing(server):
    out = server.kubectl("apply", "-f", "-", "--dry-run=server", input=DEPLOYMENT_V1).stdout
    assert "deployment.apps/web created (server dry run)" in out
    assert server.kubectl("get", "deployment/web", check=False).returncode != 0
    dry_created = json.loads(server.kubectl("create", "-f", "-", "--dry-run=server", "-o", "json",
                                            input=DEPLOYMENT_V1).stdout)
    assert dry_created["spec"]["replicas"] == 1 and dry_created["metadata"]["uid"]  # defaulted as if stored
    assert server.kubectl("get", "deployments", "-o", "name").stdout == ""

    server.kubectl("apply", "-f", "-", input=DEPLOYMENT_V1)
    before = get_json(server, "deployment/web")
    applied = json.loads(server.kubectl("apply", "-f", "-", "--dry-run=server", "-o", "json",
                                        input=DEPLOYMENT_V2).stdout)
    assert applied["spec"]["strategy"] == {"type": "Recreate"}
    scaled = server.kubectl("scale", "deployment/web", "--replicas=7", "--dry-run=server").stdout
    assert "scaled (server dry run)" in scaled
    patched = json.loads(server.kubectl("patch", "deployment/web", "--dry-run=server", "-o", "json", "-p",
                                        '{"metadata":{"labels":{"patched":"yes"}}}').stdout)
    assert patched["metadata"]["labels"]["patched"] == "yes"
    labelled = server.kubectl("label", "deployment/web", "x=y", "--dry-run=server").stdout
    assert "(server dry run)" in labelled
    deleted = server.kubectl("delete", "deployment/web", "--dry-run=server").stdout
    assert "(server dry run)" in deleted
    after = get_json(server, "deployment/web")  # (the controllers may have written status meanwhile)
    assert after["spec"] == before["spec"]
    for field in ("generation", "labels", "uid"):
        assert after["metadata"].get(field) == before["metadata"].get(field), field
    assert after["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == \
        before["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]


SSA_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
  labels: {app: ssa, extra: "1"}
spec:
  replicas: 2
  selector: {matchLabels: {app: ssa}}
  template:
    metadata: {labels: {app: ssa}}
    spec:
      containers:
      - name: c
        image: busybox:1
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
"""


def managers(obj):
    return {(e["manager"], e["operation"], e.get("subresource", "")): e for e in obj["metadata"]["managedFields"]}


def test_server_side_apply_managed_fields_conflicts_and_removal(server):
    out = server.kubectl("apply", "--server-side", "-f", "-", input=SSA_DEPLOYMENT).stdout
    assert "deployment.apps/ssa serverside-applied" in out
    created = get_json(server, "deployment/ssa", "--show-managed-fields")
    entry = managers(created)[("kubectl", "Apply", "")]
    assert entry["fieldsType"] == "FieldsV1" and entry["apiVersion"] == "apps/v1" and entry["time"]
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]
    assert entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']["."] == {}

    server.kubectl("patch", "deployment/ssa", "-p", '{"spec":{"replicas":3}}')
    server.kubectl("label", "deployment/ssa", "owner=ops")
    updated = managers(get_json(server, "deployment/ssa", "--show-managed-fields"))
    assert updated[("kubectl-patch", "Update", "")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert updated[("kubectl-label", "Update", "")]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:owner": {}}}}

    conflict = server.kubectl("apply", "--server-side", "-f", "-", input=SSA_DEPLOYMENT, check=False)
    assert conflict.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1: .spec.replicas' \
        in conflict.stderr
    assert get_json(server, "deployment/ssa")["spec"]["replicas"] == 3
    server.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=SSA_DEPLOYMENT)
    forced = get_json(server, "deployment/ssa", "--show-managed-fields")
    assert forced["spec"]["replicas"] == 2
    assert ("kubectl-patch", "Update", "") not in managers(forced)

    # Fields the applier stops applying go, unless another manager owns them (owner=ops stays).
    smaller = SSA_DEPLOYMENT.replace(', extra: "1"', "").replace(', {name: B, value: "2"}', "")
    server.kubectl("apply", "--server-side", "-f", "-", input=smaller)
    final = get_json(server, "deployment/ssa")
    assert final["metadata"]["labels"] == {"app": "ssa", "owner": "ops"}
    assert final["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


DNS_SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: ssa-dns}
spec:
  selector: {app: dns}
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
"""


def test_server_side_apply_keeps_one_port_per_protocol(server):
    """ServiceSpec.ports is keyed by port and protocol for apply (x-kubernetes-list-map-keys): re-applying a
    Service with 53/UDP and 53/TCP is a no-op, not a duplicate port."""
    for _ in range(2):
        assert "service/ssa-dns serverside-applied" in server.kubectl(
            "apply", "--server-side", "-f", "-", input=DNS_SERVICE).stdout
    applied = get_json(server, "service/ssa-dns", "--show-managed-fields")
    assert [(p["name"], p["port"], p["protocol"]) for p in applied["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    ports = managers(applied)[("kubectl", "Apply", "")]["fieldsV1"]["f:spec"]["f:ports"]
    assert set(ports) == {'k:{"port":53,"protocol":"UDP"}', 'k:{"port":53,"protocol":"TCP"}'}


def test_server_side_apply_raw_conflict_status_and_dry_run(server):
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}}
    path = "/api/v1/namespaces/default/configmaps/cm"
    status, body = server.request("PATCH", path + "?fieldManager=a&dryRun=All", config,
                                  "application/apply-patch+yaml")
    assert status == 201 and body["data"] == {"k": "v"}
    assert server.request("GET", path)[0] == 404
    assert server.request("PATCH", path + "?fieldManager=a", config, "application/apply-patch+yaml")[0] == 201
    status, body = server.request("PATCH", path + "?fieldManager=b", {**config, "data": {"k": "w"}},
                                  "application/apply-patch+yaml")
    assert status == 409 and body["reason"] == "Conflict"
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "a": .data.k'
    assert body["details"]["causes"] == [{"type": "FieldManagerConflict", "message": 'conflict with "a"',
                                          "field": ".data.k"}]
    status, body = server.request("PATCH", path, config, "application/apply-patch+yaml")
    assert status == 400 and "fieldManager" in body["message"]


def test_kubectl_explain_documents_our_kinds(server):
    spec = server.kubectl("explain", "replicaset.spec").stdout
    assert "KIND:       ReplicaSet" in spec and "FIELD: spec <ReplicaSetSpec>" in spec
    for field in ("minReadySeconds\t<integer>", "replicas\t<integer>", "selector\t<LabelSelector> -required-",
                  "template\t<PodTemplateSpec>"):
        assert field in spec
    surge = server.kubectl("explain", "deployment.spec.strategy.rollingUpdate.maxSurge").stdout
    assert "FIELD: maxSurge <IntOrString>" in surge
    containers = server.kubectl("explain", "pods.spec.containers").stdout
    assert "FIELD: containers <[]Container>" in containers and "env\t<[]EnvVar>" in containers
    ports = server.kubectl("explain", "service.spec.ports").stdout
    assert "targetPort\t<IntOrString>" in ports and "port\t<integer> -required-" in ports
    assert "DESCRIPTION:" in server.kubectl("explain", "configmap").stdout
    missing = server.kubectl("explain", "deployment.spec.nope", check=False)
    assert missing.returncode != 0 and 'field "nope" does not exist' in missing.stderr
    # Strict field validation still runs on the server (kubectl apply sends fieldValidation=Strict).
    bad = server.kubectl("apply", "-f", "-", check=False, input=DEPLOYMENT_V1.replace("replicas", "replicaz")
                         .replace("spec:\n  selector", "spec:\n  bogus: 1\n  selector", 1))
    assert bad.returncode != 0 and 'unknown field "spec.bogus"' in bad.stderr
