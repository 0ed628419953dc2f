"""The service account loops of kube-controller-manager:
- `serviceaccount-controller`: a ServiceAccount `default` in every active namespace (recreated when deleted);
- `root-ca-certificate-publisher-controller`: a ConfigMap `kube-root-ca.crt` (`ca.crt`: the cluster CA bundle)
  in every active namespace, put back when edited or deleted: what the projected token volume's `ca.crt` is;
- `serviceaccount-token-controller`: Secrets of type `kubernetes.io/service-account-token` naming an existing
  account (annotation `kubernetes.io/service-account.name`) get a legacy token (`token`, `ca.crt`,
  `namespace`) and the account's uid annotation. Unlike upstream, a Secret naming a missing account is left
  alone rather than deleted (its token, if any, does not authenticate: the account is checked on each use).
Each is a KeyedController on the shared informers; writes go through the API (admission chain, no user)."""
from __future__ import annotations

import base64
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.auth.service_accounts import SA_NAME_ANNOTATION, SA_UID_ANNOTATION, SECRET_TYPE, legacy_claims
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.informer import RegistryInformer, SharedInformers
from apiserver.kinds.base import Obj

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "default"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
ROOT_CA_DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
                       "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
                       "guaranteed across distributions of Kubernetes clusters.")


def _active(namespace: Obj | None) -> bool:
    return namespace is not None and not namespace["metadata"].get("deletionTimestamp") and \
        (namespace.get("status") or {}).get("phase") != "Terminating"


class _PerNamespace(KeyedController):
    """Keys are namespace names; `watched` is the kind whose objects of one name live in every namespace."""
    watched: tuple[str, str] = ("", "")
    object_name = ""

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.namespaces = informers.informer(api.namespaces, lambda _t, ns, _old: self.enqueue(ns["metadata"]["name"]))
        self.objects = informers.informer(api.registry(*self.watched), self._object_changed)

    def _object_changed(self, _type: str, obj: Obj, _old: Obj | None) -> None:
        if obj["metadata"]["name"] == self.object_name:
            self.enqueue(obj["metadata"].get("namespace", ""))

    def informers(self) -> list[RegistryInformer]:
        return [self.namespaces, self.objects]

    def all_keys(self) -> set[str]:
        return {ns["metadata"]["name"] for ns in self.namespaces.cache.values()}

    def _namespace(self, name: str) -> Obj | None:
        return self.namespaces.cache.get(f"/{name}")

    def _object(self, namespace: str) -> Obj | None:
        return self.objects.cache.get(f"{namespace}/{self.object_name}")

    async def _create(self, namespace: str, body: Obj) -> None:
        try:
            await self.api.create(self.api.registry(*self.watched), namespace, body)
            log.info("%s created %s namespace=%s", self.name, self.object_name, namespace)
        except errors.APIError as error:
            if error.reason == "AlreadyExists" or (error.code == 403 and not _active(self._namespace(namespace))):
                return
            if error.code == 404 and self._namespace(namespace) is None:
                return
            raise


class ServiceAccountsController(_PerNamespace):
    name = "serviceaccount-controller"
    watched = ("", "serviceaccounts")
    object_name = DEFAULT_ACCOUNT

    async def sync_key(self, namespace: str) -> None:
        if not _active(self._namespace(namespace)) or self._object(namespace) is not None:
            return
        await self._create(namespace, {"apiVersion": "v1", "kind": "ServiceAccount",
                                       "metadata": {"name": DEFAULT_ACCOUNT}})


class RootCACertPublisher(_PerNamespace):
    name = "root-ca-certificate-publisher-controller"
    watched = ("", "configmaps")
    object_name = ROOT_CA_CONFIG_MAP

    def bundle(self) -> str | None:
        pki = getattr(self.api, "pki", None)
        return pki.ca_cert_pem.decode() if pki is not None else None

    async def sync_key(self, namespace: str) -> None:
        bundle = self.bundle()
        if bundle is None or not _active(self._namespace(namespace)):
            return
        current = self._object(namespace)
        if current is None:
            await self._create(namespace, {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": ROOT_CA_CONFIG_MAP,
                                                        "annotations": {DESCRIPTION_ANNOTATION: ROOT_CA_DESCRIPTION}},
                                           "data": {ROOT_CA_KEY: bundle}})
            return
        annotations = current["metadata"].get("annotations") or {}
        if current.get("data") == {ROOT_CA_KEY: bundle} and not current.get("binaryData") \
                and DESCRIPTION_ANNOTATION in annotations:
            return
        body = {**current, "data": {ROOT_CA_KEY: bundle},
                "metadata": {**current["metadata"], "annotations": {DESCRIPTION_ANNOTATION: ROOT_CA_DESCRIPTION,
                                                                    **annotations}}}
        body.pop("binaryData", None)
        try:
            await self.api.update(self.api.registry(*self.watched), namespace, ROOT_CA_CONFIG_MAP, body)
            log.info("%s repaired %s namespace=%s", self.name, ROOT_CA_CONFIG_MAP, namespace)
        except errors.APIError as error:
            if error.code not in (404, 409):
                raise
            self.enqueue(namespace)


class ServiceAccountTokensController(KeyedController):
    name = "serviceaccount-token-controller"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.secrets = informers.informer(api.registry("", "secrets"), self._secret_changed)
        self.accounts = informers.informer(api.registry("", "serviceaccounts"), self._account_changed)

    def _secret_changed(self, _type: str, secret: Obj, _old: Obj | None) -> None:
        if secret.get("type") == SECRET_TYPE:
            self.enqueue(f"{secret['metadata'].get('namespace', '')}/{secret['metadata']['name']}")

    def _account_changed(self, _type: str, account: Obj, _old: Obj | None) -> None:
        namespace, name = account["metadata"].get("namespace", ""), account["metadata"]["name"]
        for key, secret in self.secrets.cache.items():
            if secret.get("type") == SECRET_TYPE and key.startswith(f"{namespace}/") and \
                    (secret["metadata"].get("annotations") or {}).get(SA_NAME_ANNOTATION) == name:
                self.enqueue(key)

    def informers(self) -> list[RegistryInformer]:
        return [self.secrets, self.accounts]

    def all_keys(self) -> set[str]:
        return {key for key, secret in self.secrets.cache.items() if secret.get("type") == SECRET_TYPE}

    async def sync_key(self, key: str) -> None:
        secret = self.secrets.cache.get(key)
        issuer, pki = self.api.token_issuer, getattr(self.api, "pki", None)
        if secret is None or secret["metadata"].get("deletionTimestamp") or issuer is None:
            return
        namespace, name = key.split("/", 1)
        annotations = secret["metadata"].get("annotations") or {}
        account = self.accounts.cache.get(f"{namespace}/{annotations.get(SA_NAME_ANNOTATION, '')}")
        if account is None:
            return
        uid = account["metadata"].get("uid", "")
        data = secret.get("data") or {}
        if data.get("token") and annotations.get(SA_UID_ANNOTATION) == uid:
            return
        token = issuer.sign(legacy_claims(account, secret))
        filled = {**data, "token": base64.b64encode(token.encode()).decode(),
                  "namespace": base64.b64encode(namespace.encode()).decode()}
        if pki is not None:
            filled["ca.crt"] = base64.b64encode(pki.ca_cert_pem).decode()
        body = {**secret, "data": filled,
                "metadata": {**secret["metadata"], "annotations": {**annotations, SA_UID_ANNOTATION: uid}}}
        try:
            await self.api.update(self.api.registry("", "secrets"), namespace, name, body)
            log.info("%s filled the token of secret=%s account=%s", self.name, key, account["metadata"]["name"])
        except errors.APIError as error:
            if error.code not in (404, 409):
                raise
            self.enqueue(key)
