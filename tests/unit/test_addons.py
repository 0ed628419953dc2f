"""The DNS addon's objects (kubeadm's CoreDNS addon, running shipmate's server) and their create-or-replace."""
from __future__ import annotations

from typing import Any

import pytest

from shipmate import addons
from shipmate.kubeclient import NotFound, Resource

Obj = dict[str, Any]


def by_kind(objects: list[Obj]) -> dict[str, Obj]:
    return {obj["kind"]: obj for obj in objects}


def test_objects_are_kubeadms_coredns_addon() -> None:
    objects = by_kind(addons.cluster_dns_objects("10.96.0.10", "cluster.local"))
    service, deployment = objects["Service"], objects["Deployment"]
    assert (service["metadata"]["namespace"], service["metadata"]["name"]) == ("kube-system", "kube-dns")
    assert service["spec"]["clusterIP"] == "10.96.0.10"
    assert service["spec"]["selector"] == {"k8s-app": "kube-dns"}
    assert [(p["name"], p["port"], p["protocol"]) for p in service["spec"]["ports"]] == \
        [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    assert service["metadata"]["labels"]["k8s-app"] == "kube-dns"   # charts select the Service and pods by it
    assert (deployment["metadata"]["namespace"], deployment["metadata"]["name"]) == ("kube-system", "coredns")
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"] == {"k8s-app": "kube-dns"}
    spec = template["spec"]
    assert spec["serviceAccountName"] == "coredns" and spec["priorityClassName"] == "system-cluster-critical"
    assert spec["dnsPolicy"] == "Default"   # forwards to the node's resolvers, never to itself
    (container,) = spec["containers"]
    assert container["image"] == "127.0.0.1:5000/shipmate/cluster-dns:1.0" and container["args"] == ["--domain", "cluster.local"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "readiness-probe", "scheme": "HTTP"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["readiness-probe"] == 8181
    assert container["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}


def test_service_account_may_list_and_watch_what_it_serves() -> None:
    objects = by_kind(addons.cluster_dns_objects())
    assert objects["ServiceAccount"]["metadata"] == {"name": "coredns", "namespace": "kube-system"}
    granted = {(group, resource): set(rule["verbs"]) for rule in objects["ClusterRole"]["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]}
    for needed in (("", "services"), ("discovery.k8s.io", "endpointslices"), ("", "namespaces")):
        assert granted[needed] >= {"list", "watch"}
    # ... and nothing more: the pods' token reads what kubeadm's system:coredns reads, never writes or secrets.
    assert set().union(*granted.values()) == {"list", "watch"}
    assert set(granted) == {("", "endpoints"), ("", "services"), ("", "pods"), ("", "namespaces"),
                            ("discovery.k8s.io", "endpointslices")}
    binding = objects["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == objects["ClusterRole"]["metadata"]["name"] == "system:coredns"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]


def test_cluster_ip_must_be_an_address() -> None:
    with pytest.raises(ValueError):
        addons.cluster_dns_objects("dns.local")


class FakeClient:
    def __init__(self, existing: dict[str, Obj]):
        self.objects = existing
        self.calls: list[tuple[str, str]] = []

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        if f"{resource.plural}/{name}" not in self.objects:
            raise NotFound(404, {"reason": "NotFound"})
        return self.objects[f"{resource.plural}/{name}"]

    async def create(self, resource: Resource, body: Obj, namespace: str | None = None) -> Obj:
        self.calls.append(("create", f"{resource.plural}/{body['metadata']['name']}"))
        self.objects[f"{resource.plural}/{body['metadata']['name']}"] = body
        return body

    async def update(self, resource: Resource, body: Obj, namespace: str | None = None) -> Obj:
        self.calls.append(("update", f"{resource.plural}/{body['metadata']['name']}"))
        self.objects[f"{resource.plural}/{body['metadata']['name']}"] = body
        return body


async def test_apply_creates_what_is_missing_and_replaces_what_is_there() -> None:
    live_service = {"metadata": {"name": "kube-dns", "namespace": "kube-system", "resourceVersion": "41",
                                 "labels": {"team": "platform", "k8s-app": "old"}}}
    client = FakeClient({"services/kube-dns": live_service})
    await addons.apply(client, addons.cluster_dns_objects())  # type: ignore[arg-type]
    assert client.calls == [("create", "serviceaccounts/coredns"), ("create", "clusterroles/system:coredns"),
                            ("create", "clusterrolebindings/system:coredns"), ("update", "services/kube-dns"),
                            ("create", "deployments/coredns")]
    replaced = client.objects["services/kube-dns"]
    assert replaced["metadata"]["resourceVersion"] == "41"      # a concurrent writer gets a conflict
    assert replaced["metadata"]["labels"]["team"] == "platform"    # others' labels stay
    assert replaced["metadata"]["labels"]["k8s-app"] == "kube-dns"  # ours win
    assert replaced["spec"]["clusterIP"] == "10.96.0.10"
