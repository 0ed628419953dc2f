"""ControllerRevisions of one owner kind (DaemonSet or StatefulSet), as upstream's controller/history: the
owner claims revisions matching its selector (adopting orphans, releasing strays), the one restoring its
current template is reused (renumbered above the others on a rollback) or created — `<owner>-<hash>`, a
name taken by other data raises the collision count and hashes again — and old ones are deleted."""
from __future__ import annotations

import logging
from typing import Callable

from apiserver import errors
from apiserver.api import API
from apiserver.controllers import revision_rules
from apiserver.controllers.adoption import apply_claim
from apiserver.controllers.ownership import Matcher, claim, controller_ref
from apiserver.controllers.writes import modify
from apiserver.informer import SharedInformers
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions

log = logging.getLogger(__name__)

MAX_COLLISIONS = 100
# make(owner, revision number, collision count) -> the revision to create
MakeRevision = Callable[[Obj, int, int], Obj]


class RevisionHistory:
    def __init__(self, api: API, informers: SharedInformers, owner_kind: str, on_owner: Callable[[str], None]):
        self.api = api
        self.owner_kind = owner_kind
        self.registry = api.registry("apps", "controllerrevisions")
        self._on_owner = on_owner
        self.informer = informers.informer(self.registry, self._on_revision)
        self.component = f"{owner_kind.lower()}-controller"

    def _on_revision(self, _event_type: str, revision: Obj, _old: Obj | None) -> None:
        ref = controller_ref(revision)
        if ref is not None and ref.get("kind") == self.owner_kind:
            self._on_owner(f"{revision['metadata'].get('namespace', '')}/{ref.get('name')}")

    async def owned(self, owner: Obj, matches: Matcher) -> list[Obj]:
        """The owner's revisions after adopting matching orphans and releasing non-matching ones."""
        namespace = owner["metadata"]["namespace"]
        listed = [r for r in self.informer.cache.values() if r["metadata"].get("namespace") == namespace]
        claimed = claim(owner, matches, listed, lambda revision: True)
        adopted = await apply_claim(self.registry, owner, claimed, matches, self.component)
        adopted_names = {r["metadata"]["name"] for r in adopted}
        return [r for r in claimed.owned if r["metadata"]["name"] not in adopted_names] + adopted

    async def construct(self, owner: Obj, matches: Matcher, make: MakeRevision) \
            -> tuple[Obj, list[Obj], list[Obj], int]:
        """(revision of the current template, the other revisions, all of them by number, collision count)."""
        revisions = await self.owned(owner, matches)
        current = [r for r in revisions if revision_rules.matches(owner, r)]
        old = [r for r in revisions if not revision_rules.matches(owner, r)]
        number = revision_rules.next_revision(old)
        collisions = int((owner.get("status") or {}).get("collisionCount") or 0)
        if not current:
            revision, collisions = await self._create(owner, make, number, collisions)
        else:
            ordered = revision_rules.by_revision(current)
            revision = ordered[-1]
            await self.delete(ordered[:-1])  # dedupCurHistories: one revision per template
            if int(revision.get("revision") or 0) < number:
                def renumber(stored: Obj) -> Obj:
                    stored["revision"] = number
                    return stored
                revision = await modify(self.registry, revision, renumber) or revision
        everything = revision_rules.by_revision(old + [revision])
        return revision, old, everything, collisions

    async def _create(self, owner: Obj, make: MakeRevision, number: int, collisions: int) -> tuple[Obj, int]:
        namespace = owner["metadata"]["namespace"]
        for _ in range(MAX_COLLISIONS):
            wanted = make(owner, number, collisions)
            try:
                return await self.api.create(self.registry, namespace, wanted), collisions
            except errors.APIError as exc:
                if exc.reason != "AlreadyExists":
                    raise
            existing = await self.registry.get(namespace, wanted["metadata"]["name"])
            ref = controller_ref(existing)
            if ref is not None and ref.get("uid") == owner["metadata"]["uid"] and \
                    revision_rules.matches(owner, existing):
                return existing, collisions
            collisions += 1
            log.info("controller revision name collision owner=%s/%s name=%s collisionCount=%d", namespace,
                     owner["metadata"]["name"], wanted["metadata"]["name"], collisions)
        raise RuntimeError(f"no free ControllerRevision name for {namespace}/{owner['metadata']['name']}")

    async def delete(self, revisions: list[Obj]) -> None:
        for revision in revisions:
            meta = revision["metadata"]
            try:
                await self.api.delete(self.registry, meta["namespace"], meta["name"],
                                      DeleteOptions(precondition_uid=meta.get("uid")))
            except errors.APIError as exc:
                if exc.code not in (404, 409):
                    raise

