"""`serviceaccounts/<name>/token` (TokenRequest): a bound, expiring, audience-scoped token for a
ServiceAccount, as upstream's TokenREST.

The account must exist; a `boundObjectRef` (Pod, Secret or Node, core/v1) must name an existing object of
the account's namespace (a pod must run as that account), with the given uid when one is given (409
otherwise); a pod-bound token also names the pod's node (name and uid). Audiences default to the API's;
`expirationSeconds` defaults to 3600 (600 … 2^32, kinds/serviceaccounts.py). Nothing is stored: the answer
is the TokenRequest with `status.token` and `status.expirationTimestamp`, 201.
"""
from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING

from apiserver import errors
from apiserver.auth.service_accounts import TokenIssuer, bound_claims
from apiserver.kinds.base import Obj
from shipmate.timeutil import rfc3339

if TYPE_CHECKING:
    from apiserver.registry import Registry

log = logging.getLogger(__name__)


async def _get(registry: "Registry", namespace: str, name: str) -> Obj:
    return await registry.get(namespace, name)  # 404 (upstream's) when missing


async def issue(registries: dict[tuple[str, str], "Registry"], issuer: TokenIssuer | None, now: datetime.datetime,
                namespace: str, name: str, request: Obj) -> Obj:
    """The answered TokenRequest for a validated, defaulted `request` (kinds.serviceaccounts.token_request)."""
    if issuer is None:
        raise errors.APIError(503, "ServiceUnavailable", "this server issues no service account tokens")
    account = await _get(registries[("", "serviceaccounts")], namespace, name)
    spec = request["spec"]
    pod = secret = node = None
    ref = spec.get("boundObjectRef")
    if ref:
        kind, ref_name = ref["kind"], ref["name"]
        if kind == "Pod":
            pod = await _get(registries[("", "pods")], namespace, ref_name)
            if ((pod.get("spec") or {}).get("serviceAccountName") or "default") != name:
                raise errors.bad_request(f'cannot bind token for serviceaccount "{name}" to pod running with '
                                         "different serviceaccount name.")
            bound = pod
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name:
                try:
                    node = await registries[("", "nodes")].get("", node_name)
                except errors.APIError as error:  # the token is still issued, naming the node without a uid
                    log.info("node of the bound pod not found pod=%s/%s node=%s error=%s", namespace, ref_name,
                             node_name, error)
                    node = {"metadata": {"name": node_name}}
        elif kind == "Secret":
            secret = bound = await _get(registries[("", "secrets")], namespace, ref_name)
        else:
            node = bound = await registries[("", "nodes")].get("", ref_name)
        uid = bound["metadata"].get("uid", "")
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.APIError(
                409, "Conflict", f'Operation cannot be fulfilled on {kind} "{ref_name}": the UID in the bound object '
                f"reference ({ref['uid']}) does not match the UID in record. The object might have been deleted "
                "and then recreated", {"name": ref_name, "kind": kind})
        ref["uid"] = uid
    audiences = spec.get("audiences") or list(issuer.audiences)
    spec["audiences"] = audiences
    claims = bound_claims(now, issuer.issuer, audiences, spec["expirationSeconds"], account, pod, secret, node)
    token = issuer.sign(claims)
    meta = request["metadata"]
    meta["creationTimestamp"] = rfc3339(now)
    request["status"] = {"token": token, "expirationTimestamp": rfc3339(
        now + datetime.timedelta(seconds=spec["expirationSeconds"]))}
    log.info("issued service account token account=%s/%s bound=%s audiences=%s expires_in=%ds", namespace, name,
             f"{ref['kind']}/{ref['name']}" if ref else "-", ",".join(audiences), spec["expirationSeconds"])
    return request
