"""The CA signer for kubernetes.io/kube-apiserver-client-kubelet, kubernetes.io/kube-apiserver-client and
kubernetes.io/kubelet-serving (kube-controller-manager's csrsigning controller; serving certificates carry the
request's DNS and IP SANs): an approved request gets status.certificate signed by the
cluster CA for --cluster-signing-duration, or spec.expirationSeconds when shorter. A request the signer's
rules refuse gets a Failed condition instead (reason SignerValidationFailure), as upstream."""
from __future__ import annotations

import asyncio
import base64
import logging

from apiserver.api import API
from apiserver.controllers.csr_controller import CSRController
from apiserver.certificates.policy import (awaiting_signature, failed_condition, is_serving, signer_problem,
                                           signing_seconds)
from apiserver.informer import SharedInformers
from apiserver.kinds.base import Obj
from apiserver.kinds.csr_rules import parsed_request, spec_of
from shipmate.timeutil import rfc3339
from shipmate import pki

log = logging.getLogger(__name__)


class CSRSigner(CSRController):
    name = "csrsigning"

    def __init__(self, api: API, informers: SharedInformers, max_seconds: int):
        super().__init__(api, informers)
        self.max_seconds = max_seconds

    async def handle(self, csr: Obj) -> None:
        if not awaiting_signature(csr):
            return
        name = csr["metadata"]["name"]
        try:
            request = parsed_request(csr)
        except ValueError as exc:
            log.warning("csr request does not parse csr=%s error=%s", name, exc)
            return
        ours, problem = signer_problem(csr, request)
        if not ours:
            return  # another signer's request
        status = csr.setdefault("status", {})
        if problem:
            status.setdefault("conditions", []).append(failed_condition(problem, rfc3339(self.api.clock())))
            await self.api.update(self.registry, "", name, csr, "status")
            log.warning("csr failed the signer's rules csr=%s signer=%s problem=%s", name,
                        spec_of(csr).get("signerName"), problem)
            return
        authority = self.api.pki
        if authority is None:
            raise RuntimeError("the server has no cluster CA to sign with")
        seconds = signing_seconds(self.max_seconds, spec_of(csr).get("expirationSeconds"))
        # the DER the checks above read (one parse: apiserver/certificates/requests.py), never spec.request again
        serving = is_serving(csr)
        certificate = await asyncio.to_thread(
            pki.sign_csr_der, authority.ca_cert_pem, authority.ca_key_pem, request.der, seconds, not serving, serving,
            request.dns_names if serving else (), request.ip_addresses if serving else ())
        status["certificate"] = base64.b64encode(certificate).decode()
        await self.api.update(self.registry, "", name, csr, "status")
        log.info("issued certificate csr=%s signer=%s subject=%s seconds=%d", name, spec_of(csr).get("signerName"),
                 request.common_name, seconds)
