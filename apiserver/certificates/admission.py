"""Upstream's CertificateApproval admission: approving or denying a request (the `approval` subresource)
needs verb `approve` on `certificates.k8s.io` resource `signers`, named after the request's signerName or
its `<domain>/*` wildcard. Requests from the server's own loops (no user) are not checked."""
from __future__ import annotations

from typing import TYPE_CHECKING

from apiserver import errors
from apiserver.admission.chain import UPDATE, Step
from apiserver.admission.chain import Attributes as AdmissionAttributes
from apiserver.auth.authorizer import Attributes, Authorizer
from apiserver.auth.context import current_user
from apiserver.auth.user import UserInfo
from apiserver.kinds.certificates import CSR_INFO
from apiserver.kinds.csr_rules import spec_of

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI


async def authorized_for_signer(authorizer: Authorizer, user: UserInfo, verb: str, signer_name: str) -> bool:
    """Upstream's IsAuthorizedForSignerName: the exact signer name, then `<domain>/*`."""
    names = [signer_name]
    if "/" in signer_name:
        names.append(signer_name.split("/", 1)[0] + "/*")
    for name in names:
        verdict = await authorizer.authorize(Attributes(user=user, verb=verb, api_group=CSR_INFO.group,
                                                        resource="signers", name=name))
        if verdict.allowed:
            return True
    return False


async def admit_approval(api: "AdmissionAPI", name: str) -> None:
    """403 unless the requesting user may approve requests of this CSR's signer."""
    user, authorizer = current_user(), getattr(api, "authorizer", None)
    if user is None or authorizer is None:
        return
    csr = await api.registry(CSR_INFO.group, CSR_INFO.plural).get("", name)
    signer_name = str(spec_of(csr).get("signerName") or "")
    if not await authorized_for_signer(authorizer, user, "approve", signer_name):
        raise errors.forbidden_error(CSR_INFO.group, CSR_INFO.plural, name,
                                     f'user not permitted to approve requests with signerName "{signer_name}"')


class CertificateApproval:
    """The plugin: an update of the `approval` subresource by a user."""
    name = "CertificateApproval"

    def __init__(self, api: "AdmissionAPI"):
        self.api = api

    async def start(self, attributes: AdmissionAttributes) -> Step | None:
        if attributes.operation == UPDATE and attributes.is_(CSR_INFO.group, CSR_INFO.plural, "approval"):
            await admit_approval(self.api, attributes.name)
        return None
