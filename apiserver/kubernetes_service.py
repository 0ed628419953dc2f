"""The `kubernetes` Service in `default`: the first ClusterIP, port 443 → the server's port, with its
Endpoints and EndpointSlice at the advertised address. Created at start and kept so (upstream's
master endpoint reconciler), so a deleted or edited one comes back."""
from __future__ import annotations

import asyncio
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions, Registry

log = logging.getLogger(__name__)

NAME = "kubernetes"
NAMESPACE = "default"
RECONCILE_INTERVAL = 10.0
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def desired_service(cluster_ip: str, port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}}


def desired_endpoints(address: str, port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": address}],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}


def desired_endpoint_slice(address: str, port: int) -> Obj:
    family = "IPv6" if ":" in address else "IPv4"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SERVICE_NAME_LABEL: NAME}},
            "addressType": family,
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


def _differs(current: Obj, desired: Obj) -> bool:
    """Whether a managed field differs: desired's top-level fields, spec keys and labels."""
    for key, value in desired.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key == "spec":
            if any(current.get("spec", {}).get(k) != v for k, v in value.items()):
                return True
        elif current.get(key) != value:
            return True
    labels = current["metadata"].get("labels") or {}
    return any(labels.get(k) != v for k, v in desired["metadata"].get("labels", {}).items())


def _merged(current: Obj, desired: Obj) -> Obj:
    merged = {**current, **{k: v for k, v in desired.items() if k not in ("metadata", "spec")}}
    if "spec" in desired:
        merged["spec"] = {**current.get("spec", {}), **desired["spec"]}
    merged["metadata"] = {**current["metadata"],
                          "labels": {**(current["metadata"].get("labels") or {}), **desired["metadata"]["labels"]}}
    return merged


async def _ensure(api: API, registry: Registry, desired: Obj) -> None:
    try:
        current = await registry.get(NAMESPACE, NAME)
    except errors.APIError as exc:
        if exc.code != 404:
            raise
        await api.create(registry, NAMESPACE, desired)
        log.info("created resource=%s name=%s/%s", registry.info.plural, NAMESPACE, NAME)
        return
    if _differs(current, desired):
        await api.update(registry, NAMESPACE, NAME, _merged(current, desired))
        log.info("repaired resource=%s name=%s/%s", registry.info.plural, NAMESPACE, NAME)


async def reconcile(api: API, address: str, port: int) -> None:
    cluster_ip = api.service_allocator.ips.first_ip
    try:
        await _ensure(api, api.services, desired_service(cluster_ip, port))
    except errors.APIError as exc:
        if exc.code != 422:
            raise
        # Its ClusterIP changed with the range (or was taken): recreate it, as upstream does.
        log.warning("recreating the kubernetes service error=%s", exc)
        await api.delete(api.services, NAMESPACE, NAME, DeleteOptions())
        await _ensure(api, api.services, desired_service(cluster_ip, port))
    await _ensure(api, api.endpoints, desired_endpoints(address, port))
    await _ensure(api, api.endpoint_slices, desired_endpoint_slice(address, port))


async def run(api: API, address: str, port: int) -> None:
    """Reconcile every RECONCILE_INTERVAL seconds; failures are logged and retried."""
    while True:
        try:
            await reconcile(api, address, port)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - retried on the next pass
            log.exception("kubernetes service reconcile failed")
        await asyncio.sleep(RECONCILE_INTERVAL)
