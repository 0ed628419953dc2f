"""The StatefulSet controller: pods with stable names and identities, their PersistentVolumeClaims,
ControllerRevisions of the template (current and update revision), ordered or parallel pod management,
RollingUpdate (partition, maxUnavailable) and OnDelete, status. Decisions are in statefulset_rules.py."""
from __future__ import annotations

import asyncio
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.controllers import statefulset_rules as rules
from apiserver.controllers.adoption import apply_claim
from apiserver.controllers.expectations import Expectations
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.controllers.owned_pods import delete_owned_pod, owner_to_sync, owners_woken
from apiserver.controllers.ownership import claim, controller_ref
from apiserver.controllers.replicaset import label_selector_matcher
from apiserver.controllers.revision_rules import revisions_to_delete, statefulset_revision
from apiserver.controllers.revisions import RevisionHistory
from apiserver.controllers.writes import modify, namespace_terminating
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.kinds.base import Obj
from apiserver.registry import utc_now
from shipmate.timeutil import parse_rfc3339

log = logging.getLogger(__name__)

COMPONENT = "statefulset-controller"


class StaleClaim(Exception):
    """A claim of the pod to create still belongs to an earlier pod of that name: wait for its deletion."""


class StatefulSetController(KeyedController):
    name = COMPONENT

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.registry = api.registry("apps", "statefulsets")
        self.claims_registry = api.registry("", "persistentvolumeclaims")
        self.sets = informers.informer(self.registry, self._on_set)
        self.pods = informers.informer(api.pods, self._on_pod)
        self.claims = informers.informer(self.claims_registry, self._on_claim)
        self.history = RevisionHistory(api, informers, "StatefulSet", self.enqueue)
        self.expectations = Expectations()

    def informers(self) -> list[RegistryInformer]:
        return [self.sets, self.pods, self.claims, self.history.informer]

    def all_keys(self) -> set[str]:
        return set(self.sets.cache)

    # event handlers ------------------------------------------------------------------------------
    def _on_set(self, _event_type: str, statefulset: Obj, _old: Obj | None) -> None:
        self.enqueue(object_key(statefulset))

    def _on_claim(self, event_type: str, claim_obj: Obj, _old: Obj | None) -> None:
        """A deleted claim may unblock a pod waiting for its stale claim to go."""
        if event_type == "DELETED":
            namespace = claim_obj["metadata"].get("namespace", "")
            for key, statefulset in list(self.sets.cache.items()):
                if statefulset["metadata"].get("namespace") == namespace:
                    self.enqueue(key)

    def _on_pod(self, event_type: str, pod: Obj, _old: Obj | None) -> None:
        for key in owners_woken(event_type, pod, "StatefulSet", self.sets.cache, self.expectations,
                                label_selector_matcher):
            self.enqueue(key)

    # sync ----------------------------------------------------------------------------------------
    async def sync_key(self, key: str) -> None:
        found = await owner_to_sync(self.registry, key, self.expectations, label_selector_matcher)
        if found is None:
            return
        statefulset, matches = found
        try:
            await self._sync(key, statefulset, matches)
        except StaleClaim as exc:
            log.info("statefulset waits for a stale claim to be deleted key=%s claim=%s", key, exc)
        except errors.APIError as exc:
            if namespace_terminating(exc):
                return
            raise

    def _owned(self, statefulset: Obj) -> list[Obj]:
        uid, namespace = statefulset["metadata"]["uid"], statefulset["metadata"]["namespace"]
        return [p for p in self.pods.cache.values() if p["metadata"].get("namespace") == namespace
                and (ref := controller_ref(p)) is not None and ref.get("uid") == uid and rules.is_member(statefulset, p)]

    async def _sync(self, key: str, statefulset: Obj, matches) -> None:
        namespace = statefulset["metadata"]["namespace"]
        members = [p for p in self.pods.cache.values()
                   if p["metadata"].get("namespace") == namespace and rules.is_member(statefulset, p)]
        await apply_claim(self.api.pods, statefulset, claim(statefulset, matches, members, lambda pod: True), matches,
                          COMPONENT)
        update, _, revisions, collisions = await self.history.construct(
            statefulset, matches, lambda owner, number, count: statefulset_revision(owner, number, count))
        current_name = (statefulset.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == current_name), update)
        now = utc_now()
        if not statefulset["metadata"].get("deletionTimestamp") and self.expectations.satisfied(key):
            plan = rules.plan_pass(statefulset, self._owned(statefulset), current, update, now)
            if plan.waiting:
                log.debug("statefulset waits key=%s why=%s", key, plan.waiting)
            for action in plan.actions:
                await self._act(key, statefulset, action)
        owned = self._owned(statefulset)
        live = rules.live_revisions(owned, current["metadata"]["name"], update["metadata"]["name"])
        limit = (statefulset.get("spec") or {}).get("revisionHistoryLimit")
        await self.history.delete(revisions_to_delete(revisions, live, 10 if limit is None else int(limit)))
        status = rules.statefulset_status(statefulset, owned, current["metadata"]["name"], update["metadata"]["name"],
                                          collisions, now)
        if (statefulset.get("status") or {}) != status:
            await modify(self.registry, statefulset, lambda stored: {**stored, "status": status}, subresource="status")
        self._requeue_for_min_ready(key, statefulset, owned, now)

    def _requeue_for_min_ready(self, key: str, statefulset: Obj, pods: list[Obj], now) -> None:
        min_ready = (statefulset.get("spec") or {}).get("minReadySeconds") or 0
        if not min_ready:
            return
        waits = []
        for pod in pods:
            if rules.running_and_ready(pod) and not rules.running_and_available(pod, min_ready, now):
                since = next((parse_rfc3339(c.get("lastTransitionTime")) for c in (pod.get("status") or {})
                              .get("conditions") or [] if c.get("type") == "Ready"), None)
                if since is not None:
                    waits.append(max((since - now).total_seconds() + min_ready, 0))
        if waits:
            asyncio.get_running_loop().call_later(min(waits) + 0.05, self.enqueue, key)

    # actions ---------------------------------------------------------------------------------------
    async def _act(self, key: str, statefulset: Obj, action: rules.Action) -> None:
        pod = action.pod
        if action.verb == "create":
            await self._create_pod(key, statefulset, action)
        elif action.verb in ("delete", "recreate-failed"):
            await self._delete_pod(key, statefulset, pod)
        elif action.verb == "identity":
            wanted = rules.identity_labels(pod)

            def relabel(stored: Obj) -> Obj:
                stored["metadata"].setdefault("labels", {}).update(wanted)
                return stored
            await modify(self.api.pods, pod, relabel)
            await self._record(statefulset, "update", pod, None)
        elif action.verb == "claims":
            await self._ensure_claims(statefulset, action.statefulset, pod, missing_only=False)

    async def _ensure_claims(self, statefulset: Obj, revision_set: Obj, pod: Obj, missing_only: bool) -> None:
        """createPersistentVolumeClaims (missing ones, with a Claim event) and the owner references the
        retention policy wants on each."""
        namespace = statefulset["metadata"]["namespace"]
        ordinal = rules.ordinal_of(pod)
        for wanted in rules.claims_for(revision_set, ordinal).values():
            name = wanted["metadata"]["name"]
            stored = self.claims.cache.get(f"{namespace}/{name}")
            if stored is None:
                try:
                    stored = await self.claims_registry.get(namespace, name)
                except errors.APIError as exc:
                    if exc.code != 404:
                        raise
            if stored is None:
                try:
                    stored = await self.api.create(self.claims_registry, namespace, wanted)
                except errors.APIError as exc:
                    if exc.reason != "AlreadyExists":
                        await self._record_claim(statefulset, pod, name, exc.message)
                        raise
                    stored = await self.claims_registry.get(namespace, name)
                else:
                    await self._record_claim(statefulset, pod, name, None)
            elif stored["metadata"].get("deletionTimestamp"):
                raise RuntimeError(f"pvc {name} is being deleted")
            if missing_only or not pod["metadata"].get("uid"):
                continue
            refs = rules.claim_owner_refs(statefulset, pod, stored)
            if refs is not None:
                def set_refs(current: Obj, refs=refs) -> Obj:
                    if refs:
                        current["metadata"]["ownerReferences"] = refs
                    else:
                        current["metadata"].pop("ownerReferences", None)
                    return current
                await modify(self.claims_registry, stored, set_refs)

    async def _create_pod(self, key: str, statefulset: Obj, action: rules.Action) -> None:
        """CreateStatefulPod: claims first (waiting while one still belongs to an earlier pod), then the pod,
        then the claims' owner references."""
        pod = action.pod
        namespace = statefulset["metadata"]["namespace"]
        if rules.retention(statefulset)[1] == "Delete":
            for wanted in rules.claims_for(action.statefulset, rules.ordinal_of(pod)).values():
                stored = self.claims.cache.get(f"{namespace}/{wanted['metadata']['name']}")
                if stored is not None and rules.stale_claim(stored, pod["metadata"]["name"], ""):
                    raise StaleClaim(wanted["metadata"]["name"])
        try:
            await self._ensure_claims(statefulset, action.statefulset, pod, missing_only=True)
            created = await self.api.create(self.api.pods, namespace, pod)
        except errors.APIError as exc:
            if exc.reason == "AlreadyExists":
                return  # our cache is behind: the pod is there
            if not namespace_terminating(exc):
                await self._record(statefulset, "create", pod, exc.message)
            raise
        if object_key(created) not in self.pods.cache:
            self.expectations.expect_create(key, created["metadata"]["name"])
        await self._ensure_claims(statefulset, action.statefulset, created, missing_only=False)
        await self._record(statefulset, "create", created, None)

    async def _delete_pod(self, key: str, statefulset: Obj, pod: Obj) -> None:
        try:
            deleted = await delete_owned_pod(self.api, self.pods.cache, self.expectations, key, pod)
        except errors.APIError as exc:
            await self._record(statefulset, "delete", pod, exc.message)
            raise
        if deleted:
            await self._record(statefulset, "delete", pod, None)

    async def _record(self, statefulset: Obj, verb: str, pod: Obj, error: str | None) -> None:
        """recordPodEvent: `create Pod web-0 in StatefulSet web successful` / `... failed error: …`."""
        pod_name, set_name = pod["metadata"]["name"], statefulset["metadata"]["name"]
        if error is None:
            await self.api.record_event(statefulset, "Normal", f"Successful{verb.title()}",
                                        f"{verb} Pod {pod_name} in StatefulSet {set_name} successful", COMPONENT)
        else:
            await self.api.record_event(statefulset, "Warning", f"Failed{verb.title()}",
                                        f"{verb} Pod {pod_name} in StatefulSet {set_name} failed error: {error}",
                                        COMPONENT)

    async def _record_claim(self, statefulset: Obj, pod: Obj, claim_name: str, error: str | None) -> None:
        pod_name, set_name = pod["metadata"]["name"], statefulset["metadata"]["name"]
        if error is None:
            await self.api.record_event(statefulset, "Normal", "SuccessfulCreate",
                                        f"create Claim {claim_name} Pod {pod_name} in StatefulSet {set_name} success",
                                        COMPONENT)
        else:
            await self.api.record_event(statefulset, "Warning", "FailedCreate",
                                        f"create Claim {claim_name} for Pod {pod_name} in StatefulSet {set_name} "
                                        f"failed error: {error}", COMPONENT)
