"""The kubelet CSR auto-approver (kube-controller-manager's csrapproving controller, plus kubelet serving
certificates: see policy.py for why and under which rule).

A pending kubernetes.io/kube-apiserver-client-kubelet request that passes the kubelet client rules is
approved when its requester may create certificatesigningrequests/selfnodeclient (a node renewing its own
certificate) or .../nodeclient (a new node), asked of the server's authorizer as upstream asks a
SubjectAccessReview (the default RBAC policy grants them to system:nodes and system:bootstrappers, as
kubeadm's bindings). A kubernetes.io/kubelet-serving request is approved when the node it names made it and
its SANs are that Node's addresses. Anything else is left for an administrator (`kubectl certificate
approve|deny`)."""
from __future__ import annotations

import logging

from apiserver.auth.authorizer import Attributes
from apiserver.auth.user import UserInfo
from apiserver.controllers.csr_controller import CSRController
from apiserver import errors
from apiserver.certificates.policy import (SELF_NODE_SERVING_MESSAGE, Recognized, approved_condition,
                                           awaiting_approval, recognize, self_serving_request, serving_names_problem)
from apiserver.certificates.requests import ParsedRequest
from apiserver.kinds.base import Obj
from apiserver.kinds.certificates import CSR_INFO
from apiserver.kinds.csr_rules import parsed_request, spec_of
from shipmate.timeutil import rfc3339

log = logging.getLogger(__name__)


def requester(csr: Obj) -> UserInfo:
    spec = spec_of(csr)
    extra = spec.get("extra") if isinstance(spec.get("extra"), dict) else {}
    return UserInfo(spec.get("username") or "", tuple(spec.get("groups") or ()), spec.get("uid") or "",
                    {key: tuple(values) for key, values in extra.items()})


class CSRApprover(CSRController):
    name = "csrapproving"

    async def handle(self, csr: Obj) -> None:
        if not awaiting_approval(csr):
            return
        name = csr["metadata"]["name"]
        try:
            request = parsed_request(csr)
        except ValueError as exc:  # validation keeps these out; an old stored object may still have one
            log.warning("csr request does not parse csr=%s error=%s", name, exc)
            return
        if self_serving_request(csr, request):
            await self._handle_serving(csr, request)
            return
        candidates = recognize(csr, request)
        for candidate in candidates:
            if await self._authorized(csr, candidate):
                await self._approve(csr, candidate.message)
                log.info("approved csr=%s requester=%s subject=%s permission=%s", name, spec_of(csr).get("username"),
                         request.common_name, candidate.subresource)
                return
        if candidates:  # upstream's IgnorableError: looked at again on the next resync
            log.debug("csr recognized but the requester may not have it approved csr=%s requester=%s tried=%s", name,
                      spec_of(csr).get("username"), ",".join(c.subresource for c in candidates))

    async def _approve(self, csr: Obj, message: str) -> None:
        conditions = csr.setdefault("status", {}).setdefault("conditions", [])
        conditions.append(approved_condition(message, rfc3339(self.api.clock())))
        await self.api.update(self.registry, "", csr["metadata"]["name"], csr, "approval")

    async def _handle_serving(self, csr: Obj, request: ParsedRequest) -> None:
        node_name = request.common_name.removeprefix("system:node:")
        try:
            node = await self.api.registry("", "nodes").get("", node_name)
        except errors.APIError as exc:
            if exc.code != 404:
                raise
            node = None
        problem = serving_names_problem(request, node)
        if problem:  # left pending for an administrator; looked at again on the next resync
            log.info("kubelet serving csr not auto-approved csr=%s node=%s reason=%s", csr["metadata"]["name"],
                     node_name, problem)
            return
        await self._approve(csr, SELF_NODE_SERVING_MESSAGE)
        log.info("approved kubelet serving csr=%s node=%s dns=%s ips=%s", csr["metadata"]["name"], node_name,
                 ",".join(request.dns_names), ",".join(request.ip_addresses))

    async def _authorized(self, csr: Obj, candidate: Recognized) -> bool:
        """Upstream's SubjectAccessReview for the requester, asked of the server's authorizer."""
        authorizer = getattr(self.api, "authorizer", None)
        if authorizer is None:  # a server without authorization (unit tests): nobody gets auto-approved
            return False
        verdict = await authorizer.authorize(Attributes(
            user=requester(csr), verb="create", api_group=CSR_INFO.group, api_version="*",
            resource=CSR_INFO.plural, subresource=candidate.subresource))
        return verdict.allowed
