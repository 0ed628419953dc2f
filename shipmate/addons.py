"""Cluster addons, as kubeadm's `init phase addon coredns` installs them: the cluster DNS runs as the
Deployment kube-system/coredns (pods `k8s-app=kube-dns`, image shipmate/cluster-dns: shipmate's own DNS
server, `agent.cluster_dns.pod`) behind the Service kube-system/kube-dns at the kubelets' clusterDNS
address, with its ServiceAccount and the ClusterRole system:coredns to list and watch what it serves.

`cluster_dns_objects` is pure; `apply` creates or replaces them (idempotent: run it on every start).

    shipmate addons apply [--kubeconfig PATH] [--cluster-dns 10.96.0.10] [--cluster-domain cluster.local]
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from typing import Any

from shipmate.containerd_config import LOCAL_REGISTRY
from shipmate.kubeclient import KubeClient, NotFound, Resource, load_kubeconfig

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACE = "kube-system"
DEFAULT_KUBECONFIG = "/etc/shipmate/admin.kubeconfig"
DEFAULT_CLUSTER_DNS = "10.96.0.10"       # kubeadm: the 10th address of the default service CIDR 10.96.0.0/12
# From the local registry by its own name, as the pause image (shipmate.containerd_config.SANDBOX_IMAGE): it
# resolves whatever the user's registries.yaml says of docker.io, other nodes reach it through their mirror of
# it, and `make purge` removes it with the registry's other images.
DEFAULT_IMAGE = f"{LOCAL_REGISTRY}/shipmate/cluster-dns:1.0"
FIELD_MANAGER = "shipmate-addons"     # the user agent (upstream's default field manager for these writes)
LABELS = {"k8s-app": "kube-dns"}

# Where each kind is served.
RESOURCES = {
    "ServiceAccount": Resource("v1", "serviceaccounts"),
    "ClusterRole": Resource("rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False),
    "ClusterRoleBinding": Resource("rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False),
    "Service": Resource("v1", "services"),
    "Deployment": Resource("apps/v1", "deployments"),
}


def cluster_dns_objects(cluster_ip: str = DEFAULT_CLUSTER_DNS, domain: str = "cluster.local",
                        image: str = DEFAULT_IMAGE, replicas: int = 2) -> list[Obj]:
    """kubeadm's CoreDNS addon objects (same names, labels, ports, probes, security context), running our
    server. No Corefile ConfigMap: the server's behaviour is fixed (zone from the API, the rest forwarded
    to the node's resolvers) and its flags are in the Deployment."""
    ipaddress.IPv4Address(cluster_ip)
    service_account = {"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "coredns", "namespace": NAMESPACE}}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                       "verbs": ["list", "watch"]},
                      {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                       "verbs": ["list", "watch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "system:coredns"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
               "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": NAMESPACE}]}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "kube-dns", "namespace": NAMESPACE,
                            "labels": {**LABELS, "kubernetes.io/cluster-service": "true",
                                       "kubernetes.io/name": "CoreDNS"},
                            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
               "spec": {"clusterIP": cluster_ip, "selector": dict(LABELS),
                        "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                                  {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                                  {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}}
    container = {
        "name": "coredns", "image": image,
        # One tag, rebuilt by hack/build_images.py when the server's code changes: a new pod gets the new image.
        "imagePullPolicy": "Always",
        "args": ["--domain", domain],
        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
        "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                  {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                  {"containerPort": 9153, "name": "metrics", "protocol": "TCP"},
                  {"containerPort": 8080, "name": "liveness-probe", "protocol": "TCP"},
                  {"containerPort": 8181, "name": "readiness-probe", "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/health", "port": "liveness-probe", "scheme": "HTTP"},
                          "initialDelaySeconds": 60, "timeoutSeconds": 5, "successThreshold": 1,
                          "failureThreshold": 5},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "readiness-probe", "scheme": "HTTP"},
                           "periodSeconds": 2},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": dict(LABELS)},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100, "podAffinityTerm": {
                            "labelSelector": {"matchExpressions": [
                                {"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
                            "topologyKey": "kubernetes.io/hostname"}}]}},
                    "containers": [container],
                    # The server forwards other names to the node's resolvers, so it must not use itself.
                    "dnsPolicy": "Default",
                },
            },
        },
    }
    return [service_account, role, binding, service, deployment]


async def apply(client: KubeClient, objects: list[Obj]) -> None:
    """kubeadm's CreateOrUpdate, in order: create each missing object, or replace the one there (its resourceVersion
    kept, so a concurrent writer gets a conflict rather than a lost update). Not server-side apply: a
    Service with one port on UDP and TCP (53) is a list map keyed by port *and* protocol, which our apply
    does not model yet (it keys Service ports by port alone)."""
    for obj in objects:
        meta = obj["metadata"]
        resource = RESOURCES[obj["kind"]]
        try:
            live = await client.get(resource, meta["name"], meta.get("namespace"))
        except NotFound:
            # (a Service's create answers 422 "already allocated", not AlreadyExists, when it exists: read first)
            await client.create(resource, obj, meta.get("namespace"))
            outcome = "created"
        else:
            await client.update(resource, replacement(obj, live), meta.get("namespace"))
            outcome = "updated"
        log.info("addon object %s kind=%s name=%s%s", outcome, obj["kind"],
                 f"{meta['namespace']}/" if meta.get("namespace") else "", meta["name"])


def replacement(desired: Obj, live: Obj) -> Obj:
    """`desired` as a replacement of `live`: its resourceVersion, and the labels and annotations others added
    kept (ours win where both set one)."""
    result = {**desired, "metadata": dict(desired["metadata"])}
    live_meta, meta = live.get("metadata") or {}, result["metadata"]
    meta["resourceVersion"] = live_meta.get("resourceVersion")
    for key in ("labels", "annotations"):
        merged = {**(live_meta.get(key) or {}), **(meta.get(key) or {})}
        if merged:
            meta[key] = merged
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shipmate addons", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["apply", "print"])
    parser.add_argument("--kubeconfig", default=DEFAULT_KUBECONFIG)
    parser.add_argument("--cluster-dns", default=DEFAULT_CLUSTER_DNS,
                        help="the kube-dns Service's cluster IP (the agents' --cluster-dns)")
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        objects = cluster_dns_objects(args.cluster_dns, args.cluster_domain, args.image, args.replicas)
    except ValueError:
        parser.error(f"--cluster-dns {args.cluster_dns!r} is not an IPv4 address")
    if args.action == "print":
        import json
        for obj in objects:
            print(json.dumps(obj))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    async def run() -> None:
        async with KubeClient(load_kubeconfig(args.kubeconfig), user_agent=FIELD_MANAGER) as client:
            await apply(client, objects)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
