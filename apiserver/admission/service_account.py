"""ServiceAccount admission (upstream's plugin of that name), on pod creates:
- a mirror pod (annotation `kubernetes.io/config.mirror`) is not changed, and may not name a service
  account, reference Secrets or project a service account token;
- `spec.serviceAccountName` defaults to `default`; the account must exist (a missing one: 403 `pods "p" is
  forbidden: error looking up service account a/x: serviceaccount "x" not found`; `default`, which the
  serviceaccount controller creates in every namespace, is looked for ten times over ~1.5 s first);
- unless the pod's, else the account's, `automountServiceAccountToken` is false, every container and init
  container without a mount at /var/run/secrets/kubernetes.io/serviceaccount gets one (readOnly) of a
  projected volume `kube-api-access-<5 random>` (defaultMode 420): a service account token (path `token`,
  expirationSeconds 3607), `ca.crt` of the ConfigMap `kube-root-ca.crt`, and `namespace` from the downward
  API; a volume already named `kube-api-access-*` is reused;
- a pod without imagePullSecrets gets the account's.
The account is read from a watched cache (informer.StorageCache), else from storage, as upstream's lister
then live lookup.
"""
from __future__ import annotations

import asyncio
import copy
import random
from typing import TYPE_CHECKING, Any, Callable

from apiserver import errors
from apiserver.admission.chain import CREATE, Attributes, Step
from apiserver.auth.node_graph import pod_references
from apiserver.auth.service_accounts import PROJECTED_EXPIRATION_SECONDS
from apiserver.informer import StorageCache
from apiserver.registry import generated_name

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI

Obj = dict[str, Any]
DEFAULT_SERVICE_ACCOUNT = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
PROJECTED_DEFAULT_MODE = 0o644  # 420
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
DEFAULT_LOOKUP_ATTEMPTS = 10


def token_volume_source() -> Obj:
    """Upstream's TokenVolumeSource."""
    return {"defaultMode": PROJECTED_DEFAULT_MODE, "sources": [
        {"serviceAccountToken": {"expirationSeconds": PROJECTED_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}


def should_automount(account: Obj, spec: Obj) -> bool:
    """The pod's preference, else the account's, else true."""
    if isinstance(spec.get("automountServiceAccountToken"), bool):
        return spec["automountServiceAccountToken"]
    if isinstance(account.get("automountServiceAccountToken"), bool):
        return account["automountServiceAccountToken"]
    return True


def mount_token(spec: Obj, name_volume: Callable[[str], str] = generated_name) -> None:
    """Adds the token volume and its mounts (upstream's mountServiceAccountToken), in place."""
    volumes = spec.get("volumes") if isinstance(spec.get("volumes"), list) else []
    existing = next((v.get("name") for v in volumes if isinstance(v, dict)
                     and str(v.get("name", "")).startswith(VOLUME_PREFIX)), None)
    volume_name = existing or name_volume(VOLUME_PREFIX)
    needed = False
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            mounts = container.get("volumeMounts") if isinstance(container.get("volumeMounts"), list) else []
            if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            container["volumeMounts"] = [*mounts, {"name": volume_name, "readOnly": True, "mountPath": MOUNT_PATH}]
            needed = True
    if existing is None and needed:
        spec["volumes"] = [*volumes, {"name": volume_name, "projected": token_volume_source()}]


def _references_secrets(pod: Obj) -> bool:
    return any(kind == "secrets" for kind, _ in pod_references(pod))


def mirror_pod_problem(pod: Obj) -> str | None:
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    if spec.get("serviceAccountName"):
        return "a mirror pod may not reference service accounts"
    if _references_secrets(pod):
        return "a mirror pod may not reference secrets"
    for volume in spec.get("volumes") or []:
        for source in ((volume or {}).get("projected") or {}).get("sources") or [] if isinstance(volume, dict) else []:
            if isinstance(source, dict) and source.get("serviceAccountToken") is not None:
                return "a mirror pod may not use ServiceAccountToken volume projections"
    return None


class ServiceAccountAdmission:
    name = "ServiceAccount"

    def __init__(self, api: "AdmissionAPI", enabled: bool = True):
        self.api = api
        self.enabled = enabled
        self.cache: StorageCache | None = None
        self.retry_interval: Callable[[], float] = lambda: 0.1 + random.random() * 0.1

    async def start(self, attributes: Attributes) -> Step | None:
        if not self.enabled or attributes.operation != CREATE or not attributes.is_("", "pods"):
            return None
        return _PodCreate(self, attributes)

    async def account(self, namespace: str, name: str) -> Obj:
        """The ServiceAccount, or the 404 APIError (`serviceaccount "x" not found`, upstream's wording)."""
        if self.cache is None:
            self.cache = StorageCache(self.api.registry("", "serviceaccounts"))
        cached = await self.cache.get(namespace, name)
        if cached is not None:
            return cached
        attempts = DEFAULT_LOOKUP_ATTEMPTS if name == DEFAULT_SERVICE_ACCOUNT else 1
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.retry_interval())
            try:
                return await self.api.registry("", "serviceaccounts").get(namespace, name)
            except errors.APIError as error:
                if error.code != 404:
                    raise
        raise errors.APIError(404, "NotFound", f'serviceaccount "{name}" not found')


class _PodCreate(Step):
    def __init__(self, plugin: ServiceAccountAdmission, attributes: Attributes):
        self.plugin, self.attributes = plugin, attributes

    def _forbidden(self, why: str) -> errors.APIError:
        return errors.forbidden_error("", "pods", self.attributes.name, why)

    async def admit(self, obj: Obj, old: Obj | None) -> Obj:
        if not isinstance(obj, dict) or not isinstance(obj.get("spec"), dict):
            return obj
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
            return obj
        obj = copy.deepcopy(obj)
        spec = obj["spec"]
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = DEFAULT_SERVICE_ACCOUNT
        account = await self._account(spec["serviceAccountName"])
        if should_automount(account, spec):
            mount_token(spec)
        if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in account["imagePullSecrets"]
                                        if isinstance(s, dict)]
        return obj

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        if not isinstance(obj, dict):
            return
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
            problem = mirror_pod_problem(obj)
            if problem:
                raise self._forbidden(problem)
            return
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        await self._account(spec.get("serviceAccountName") or DEFAULT_SERVICE_ACCOUNT)

    async def _account(self, name: str) -> Obj:
        namespace = self.attributes.namespace
        try:
            return await self.plugin.account(namespace, name)
        except errors.APIError as error:
            raise self._forbidden(f"error looking up service account {namespace}/{name}: {error.message}") from None
