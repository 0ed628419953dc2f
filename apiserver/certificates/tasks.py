"""The certificates control loops as root tasks of the server (leader only, like every controller)."""
from __future__ import annotations

import asyncio

from apiserver.api import API
from apiserver.controllers.csr_approver import CSRApprover
from apiserver.certificates.policy import DEFAULT_SIGNING_SECONDS
from apiserver.controllers.csr_signer import CSRSigner
from apiserver.controllers.token_cleaner import run_token_cleaner
from apiserver.informer import SharedInformers


def csr_tasks(api: API, informers: SharedInformers,
              signing_seconds: int = DEFAULT_SIGNING_SECONDS) -> list[asyncio.Task]:
    """The approver and the signer on the shared CSR informer (which the caller runs once every control loop
    registered), and the bootstrap token cleaner."""
    controllers = [CSRApprover(api, informers), CSRSigner(api, informers, signing_seconds)]
    return [*(asyncio.create_task(c.run(), name=c.name) for c in controllers),
            asyncio.create_task(run_token_cleaner(api), name="tokencleaner")]
