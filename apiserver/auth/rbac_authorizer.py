"""The RBAC authorizer: requests are answered from an in-memory index (auth/rbac.py's RBACIndex) that
informers keep current from watches over the four RBAC kinds: authorization sits on every request's hot
path and never reads storage. It also guards writes of those kinds against escalation (auth/escalation.py).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from apiserver.auth.authorizer import Attributes, Decision, Verdict
from apiserver.auth.escalation import EscalationGuard
from apiserver.auth.rbac import PolicyRule, RBACIndex, authorize_from
from apiserver.auth.user import UserInfo
from apiserver.informer import RegistryInformer
from apiserver.kinds.rbac import CLUSTER_ROLE_BINDING_INFO, CLUSTER_ROLE_INFO, ROLE_BINDING_INFO, ROLE_INFO
from shipmate.supervisor import stop_tasks

log = logging.getLogger(__name__)

SYNC_TIMEOUT = 10.0

_KINDS = ((ROLE_INFO, "Role"), (CLUSTER_ROLE_INFO, "ClusterRole"), (ROLE_BINDING_INFO, "RoleBinding"),
          (CLUSTER_ROLE_BINDING_INFO, "ClusterRoleBinding"))


class RBACAuthorizer:
    """Authorizer protocol over an RBACIndex fed by one informer per RBAC kind (started on first use)."""

    def __init__(self, api: Any):
        self.api = api
        self.index = RBACIndex()
        self._informers = [RegistryInformer(api.registry(info.group, info.plural),
                                            lambda event, obj, _old, kind=kind: self.index.apply(kind, event, obj))
                           for info, kind in _KINDS]
        self._tasks: list[asyncio.Task] = []
        guard = EscalationGuard(self.index)
        for info, _ in _KINDS:
            api.registry(info.group, info.plural).strategy.guard = guard  # writes of RBAC objects: no escalation

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(i.run(), name=f"rbac-informer-{i.registry.info.plural}")
                           for i in self._informers]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []

    @property
    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self._informers)

    async def wait_synced(self, timeout: float = SYNC_TIMEOUT) -> bool:
        self.start()
        if self.synced:
            return True
        try:
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self._informers)), timeout)
        except asyncio.TimeoutError:
            log.warning("rbac cache not synced after %.0fs", timeout)
            return False
        return True

    async def authorize(self, attributes: Attributes) -> Verdict:
        if not self.synced and not await self.wait_synced():
            return Verdict(Decision.NO_OPINION, "RBAC: the authorization cache is not synced yet")
        return authorize_from(self.index, attributes)

    async def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[PolicyRule], list[str]]:
        """Every rule granted to the user in the namespace (cluster-wide ones included) and the errors met
        resolving role references (SelfSubjectRulesReview's evaluationError)."""
        if not self.synced and not await self.wait_synced():
            return [], ["the authorization cache is not synced yet"]
        rules: list[PolicyRule] = []
        errors: list[str] = []
        for source in self.index.sources(user, namespace):
            rules.extend(source.rules)
            if source.error:
                errors.append(source.error)
        return rules, errors
