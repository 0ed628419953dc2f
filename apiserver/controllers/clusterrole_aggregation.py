"""ClusterRole aggregation controller: a ClusterRole with an aggregationRule gets the rules of the ClusterRoles
its selectors match, rewritten whenever any ClusterRole changes (labels, rules, creation, deletion).

It writes as the server itself, unchecked; what keeps it from being an escalation path is that only a writer
with `escalate` on clusterroles or `*` on everything can give a ClusterRole an aggregationRule (or change a
role that has one): auth/escalation.py, on every write path."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

from apiserver.auth.bootstrap_policy import aggregate
from apiserver.informer import SharedInformers
from apiserver.kinds.base import Obj
from apiserver.kinds.rbac import GROUP

log = logging.getLogger(__name__)


async def run_aggregation(api: Any, changed: asyncio.Event) -> None:
    backoff = 0.5
    while True:
        await changed.wait()
        changed.clear()
        try:
            await aggregate(api)  # a pass that writes changes ClusterRoles again; the next pass writes nothing
            backoff = 0.5
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop survives and retries
            log.warning("clusterrole aggregation failed error=%r backoff=%.1fs", exc, backoff)
            changed.set()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


def aggregation_controller(api: Any, informers: SharedInformers) -> Coroutine[Any, Any, None]:
    """The aggregation loop, woken by the shared ClusterRole informer (which the caller runs)."""
    changed = asyncio.Event()

    def on_change(event_type: str, obj: Obj, _old: Obj | None) -> None:
        changed.set()
    informers.informer(api.registry(GROUP, "clusterroles"), on_change)
    return run_aggregation(api, changed)
