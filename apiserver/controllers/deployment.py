"""The Deployment controller: one ReplicaSet per pod template (`<deployment>-<pod-template-hash>`),
RollingUpdate and Recreate rollouts, revisions, proportional scaling, pause, history cleanup and the
Progressing/Available conditions (upstream's pkg/controller/deployment)."""
from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from dataclasses import dataclass, field

from apiserver import errors
from apiserver.api import API
from apiserver.controllers import deployment_rules as rules
from apiserver.controllers.adoption import apply_claim
from apiserver.controllers.ownership import claim, controller_ref, labels_of, owner_reference
from apiserver.controllers.writes import modify, namespace_terminating
from apiserver.controllers.replicaset import label_selector_matcher
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.kinds.base import Obj
from apiserver.kinds.workloads import REVISION_ANNOTATION
from apiserver.registry import DeleteOptions, utc_now

log = logging.getLogger(__name__)

COMPONENT = "deployment-controller"


class CollisionError(Exception):
    """The new ReplicaSet's name is taken by a different template: collisionCount was raised, retry."""


@dataclass
class SyncState:
    """The deployment as this pass will write it back (status and revision annotation), and its sets."""
    deployment: Obj
    new_rs: Obj | None = None
    old_rss: list[Obj] = field(default_factory=list)
    now: datetime.datetime = field(default_factory=utc_now)

    @property
    def all_rss(self) -> list[Obj]:
        return self.old_rss + ([self.new_rs] if self.new_rs else [])

    def replace(self, updated: Obj) -> None:
        name = updated["metadata"]["name"]
        if self.new_rs is not None and self.new_rs["metadata"]["name"] == name:
            self.new_rs = updated
        self.old_rss = [updated if rs["metadata"]["name"] == name else rs for rs in self.old_rss]


class DeploymentController(KeyedController):
    name = COMPONENT

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.deployments_registry = api.registry("apps", "deployments")
        self.replica_sets_registry = api.registry("apps", "replicasets")
        self.deployments = informers.informer(self.deployments_registry, self._on_deployment)
        self.replica_sets = informers.informer(self.replica_sets_registry, self._on_replica_set)
        self.pods = informers.informer(api.pods, self._on_pod)

    def informers(self) -> list[RegistryInformer]:
        return [self.deployments, self.replica_sets, self.pods]

    def all_keys(self) -> set[str]:
        return set(self.deployments.cache)

    # event handlers ------------------------------------------------------------------------------
    def _on_deployment(self, _event_type: str, deployment: Obj, _old: Obj | None) -> None:
        self.enqueue(object_key(deployment))

    def _enqueue_for_replica_set(self, replica_set: Obj) -> None:
        namespace = replica_set["metadata"].get("namespace", "")
        ref = controller_ref(replica_set)
        if ref is not None:
            if ref.get("kind") == "Deployment":
                self.enqueue(f"{namespace}/{ref.get('name')}")
            return
        labels = labels_of(replica_set)
        for key, deployment in list(self.deployments.cache.items()):
            matches = label_selector_matcher(deployment) if deployment["metadata"].get("namespace") == namespace \
                else None
            if matches is not None and matches(labels):
                self.enqueue(key)

    def _on_replica_set(self, _event_type: str, replica_set: Obj, _old: Obj | None) -> None:
        self._enqueue_for_replica_set(replica_set)

    def _on_pod(self, event_type: str, pod: Obj, _old: Obj | None) -> None:
        """Recreate waits until the old pods are gone: their deletion wakes the deployment."""
        if event_type != "DELETED":
            return
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        replica_set = self.replica_sets.cache.get(f"{pod['metadata'].get('namespace', '')}/{ref.get('name')}")
        if replica_set is not None:
            self._enqueue_for_replica_set(replica_set)

    # sync ----------------------------------------------------------------------------------------
    async def sync_key(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        try:
            deployment = await self.deployments_registry.get(namespace, name)
        except errors.APIError as exc:
            if exc.code == 404:
                return
            raise
        matches = label_selector_matcher(deployment)
        if matches is None:
            log.warning("deployment has an empty or invalid selector deployment=%s", key)
            return
        listed = [rs for rs in self.replica_sets.cache.values() if rs["metadata"].get("namespace") == namespace]
        claimed = claim(deployment, matches, listed, lambda rs: True)
        adopted = await apply_claim(self.replica_sets_registry, deployment, claimed, matches, COMPONENT)
        adopted_names = {rs["metadata"]["name"] for rs in adopted}
        owned = [rs for rs in claimed.owned if rs["metadata"]["name"] not in adopted_names] + adopted
        state = SyncState(copy.deepcopy(deployment))
        try:
            recheck = await self._reconcile(state, owned)
        except CollisionError:
            await self._write(deployment, state.deployment)
            raise
        except errors.APIError as exc:
            if namespace_terminating(exc):
                return  # the namespace controller is deleting everything here
            raise
        await self._write(deployment, state.deployment)
        if recheck is not None:
            asyncio.get_running_loop().call_later(recheck, self.enqueue, key)

    async def _reconcile(self, state: SyncState, owned: list[Obj]) -> float | None:
        deployment = state.deployment
        if deployment["metadata"].get("deletionTimestamp"):
            await self._split(state, owned, create=False)
            deployment["status"] = rules.calculate_status(deployment, state.all_rss, state.new_rs, state.now)
            return None
        status = deployment.setdefault("status", {})
        rules.paused_condition(deployment, status, state.now)
        if deployment["spec"].get("paused"):
            await self._scale_sync(state, owned, cleanup=True)
            return None
        await self._split(state, owned, create=False)
        if rules.is_scaling_event(deployment, rules.active(state.all_rss)):
            await self._scale_sync(state, owned, cleanup=False)
            return None
        if rules.is_rolling(deployment):
            await self._rolling(state, owned)
        else:
            await self._recreate(state, owned)
        result = rules.rollout_status(deployment, state.all_rss, state.new_rs, state.now)
        deployment["status"] = result.status
        return result.recheck_in

    # ReplicaSets and revisions -----------------------------------------------------------------
    async def _split(self, state: SyncState, owned: list[Obj], create: bool) -> None:
        """getAllReplicaSetsAndSyncRevision: the new set (template equal to the deployment's, created when
        asked), the old ones, and the revision bookkeeping on both."""
        deployment = state.deployment
        template = deployment["spec"].get("template")
        existing = next((rs for rs in sorted(owned, key=lambda r: r["metadata"].get("creationTimestamp") or "")
                         if rules.templates_equal(rs["spec"].get("template"), template)), None)
        state.old_rss = [rs for rs in owned if existing is None or rs["metadata"]["uid"] != existing["metadata"]["uid"]]
        new_revision = rules.max_revision(state.old_rss) + 1
        if existing is not None:
            state.new_rs = await self._refresh_new_rs(deployment, existing, new_revision)
            self._set_revision(deployment, state.new_rs["metadata"].get("annotations", {}).get(REVISION_ANNOTATION))
            if rules.has_progress_deadline(deployment) and rules.condition(deployment["status"], "Progressing") is None:
                rules.set_condition(deployment["status"], "Progressing", "True", "FoundNewReplicaSet",
                                    f'Found new replica set "{state.new_rs["metadata"]["name"]}"', state.now)
            return
        state.new_rs = None
        if create:
            state.new_rs = await self._create_new_rs(state, new_revision)

    async def _refresh_new_rs(self, deployment: Obj, replica_set: Obj, new_revision: int) -> Obj:
        annotations = replica_set["metadata"].get("annotations") or {}
        wanted = rules.new_rs_annotations(deployment, annotations, new_revision, exists=True)
        min_ready = deployment["spec"].get("minReadySeconds", 0)
        if wanted == annotations and replica_set["spec"].get("minReadySeconds", 0) == min_ready:
            return replica_set

        def refresh(current: Obj) -> Obj:
            current["metadata"]["annotations"] = rules.new_rs_annotations(
                deployment, current["metadata"].get("annotations") or {}, new_revision, exists=True)
            if min_ready:
                current["spec"]["minReadySeconds"] = min_ready
            else:
                current["spec"].pop("minReadySeconds", None)
            return current
        return await modify(self.replica_sets_registry, replica_set, refresh) or replica_set

    @staticmethod
    def _set_revision(deployment: Obj, revision: str | None) -> None:
        if revision:
            deployment["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = revision

    async def _create_new_rs(self, state: SyncState, new_revision: int) -> Obj:
        deployment = state.deployment
        meta = deployment["metadata"]
        status = deployment["status"]
        hash_value = rules.pod_template_hash(deployment["spec"].get("template") or {}, status.get("collisionCount"))
        template = rules.new_rs_template(deployment, hash_value)
        replica_set: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{hash_value}", "namespace": meta["namespace"],
                         "labels": dict(template["metadata"]["labels"]),
                         "annotations": rules.new_rs_annotations(deployment, {}, new_revision, exists=False),
                         "ownerReferences": [owner_reference(deployment)]},
            "spec": {"replicas": 0, "selector": rules.new_rs_selector(deployment, hash_value), "template": template}}
        if deployment["spec"].get("minReadySeconds"):
            replica_set["spec"]["minReadySeconds"] = deployment["spec"]["minReadySeconds"]
        replica_set["spec"]["replicas"] = rules.new_rs_replicas(deployment, state.old_rss + [replica_set],
                                                                replica_set)
        created_now = True
        try:
            created = await self.api.create(self.replica_sets_registry, meta["namespace"], replica_set)
        except errors.APIError as exc:
            if exc.reason != "AlreadyExists":
                raise
            created = await self.replica_sets_registry.get(meta["namespace"], replica_set["metadata"]["name"])
            ref = controller_ref(created)
            if ref is None or ref.get("uid") != meta["uid"] or \
                    not rules.templates_equal(created["spec"].get("template"), deployment["spec"].get("template")):
                status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                log.info("replica set name collision deployment=%s/%s collisionCount=%d", meta["namespace"],
                         meta["name"], status["collisionCount"])
                raise CollisionError(replica_set["metadata"]["name"]) from None
            created_now = False
        if created_now:
            size = created["spec"].get("replicas", 0)
            if size > 0:
                await self.api.record_event(deployment, "Normal", "ScalingReplicaSet",
                                            f"Scaled up replica set {created['metadata']['name']} from 0 to {size}",
                                            COMPONENT)
            if rules.has_progress_deadline(deployment):
                rules.set_condition(status, "Progressing", "True", "NewReplicaSetCreated",
                                    f'Created new replica set "{created["metadata"]["name"]}"', state.now)
        self._set_revision(deployment, str(new_revision))
        return created

    async def _scale(self, state: SyncState, replica_set: Obj, size: int, with_annotations: bool) -> bool:
        """Sets a set's size (and its desired/max-replicas annotations); True when the size changed."""
        deployment = state.deployment
        old_size = rules.replicas_of(replica_set)
        annotations = replica_set["metadata"].get("annotations") or {}
        wanted = rules.replicas_annotations(deployment)
        annotations_stale = any(annotations.get(k) != v for k, v in wanted.items())
        if old_size == size and not (with_annotations and annotations_stale):
            return False

        def resize(current: Obj) -> Obj:
            current["spec"]["replicas"] = size
            current["metadata"].setdefault("annotations", {}).update(wanted)
            return current
        meta = replica_set["metadata"]
        updated = await modify(self.replica_sets_registry, replica_set, resize)
        if updated is None:
            return False
        state.replace(updated)
        if old_size != size:
            direction = "up" if size > old_size else "down"
            await self.api.record_event(deployment, "Normal", "ScalingReplicaSet",
                                        f"Scaled {direction} replica set {meta['name']} from {old_size} to {size}",
                                        COMPONENT)
        return old_size != size

    # strategies --------------------------------------------------------------------------------
    async def _scale_sync(self, state: SyncState, owned: list[Obj], cleanup: bool) -> None:
        """sync(): scaling (paused or a replicas change) without moving the rollout forward."""
        await self._split(state, owned, create=False)
        deployment = state.deployment
        sizes = rules.proportional_sizes(deployment, state.new_rs, state.old_rss)
        for replica_set in list(state.all_rss):
            name = replica_set["metadata"]["name"]
            if name in sizes:
                await self._scale(state, replica_set, sizes[name], with_annotations=True)
        if cleanup:
            await self._cleanup(state)
        deployment["status"] = rules.calculate_status(deployment, state.all_rss, state.new_rs, state.now)

    async def _rolling(self, state: SyncState, owned: list[Obj]) -> None:
        await self._split(state, owned, create=True)
        deployment = state.deployment
        new_rs = state.new_rs
        desired = rules.replicas_of(deployment)
        if rules.replicas_of(new_rs) != desired:
            target = desired if rules.replicas_of(new_rs) > desired \
                else rules.new_rs_replicas(deployment, state.all_rss, new_rs)
            if await self._scale(state, new_rs, target, with_annotations=False):
                return
        plan = rules.old_scale_down(deployment, state.all_rss, rules.active(state.old_rss), state.new_rs)
        if plan:
            for replica_set in list(state.old_rss):
                name = replica_set["metadata"]["name"]
                if name in plan:
                    await self._scale(state, replica_set, plan[name], with_annotations=False)
            return
        if rules.is_complete(deployment, deployment.get("status") or {}):
            await self._cleanup(state)

    async def _recreate(self, state: SyncState, owned: list[Obj]) -> None:
        deployment = state.deployment
        scaled_down = False
        for replica_set in rules.active(state.old_rss):
            scaled_down |= await self._scale(state, replica_set, 0, with_annotations=False)
        if scaled_down or self._old_pods_running(state):
            return
        if state.new_rs is None:
            await self._split(state, owned, create=True)
        await self._scale(state, state.new_rs, rules.replicas_of(deployment), with_annotations=False)
        if rules.is_complete(deployment, deployment.get("status") or {}):
            await self._cleanup(state)

    def _old_pods_running(self, state: SyncState) -> bool:
        if any(int((rs.get("status") or {}).get("replicas") or 0) > 0 for rs in state.old_rss):
            return True
        old_uids = {rs["metadata"]["uid"] for rs in state.old_rss}
        namespace = state.deployment["metadata"]["namespace"]
        return any((ref := controller_ref(pod)) is not None and ref.get("uid") in old_uids
                   and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                   for pod in self.pods.cache.values() if pod["metadata"].get("namespace") == namespace)

    async def _cleanup(self, state: SyncState) -> None:
        for replica_set in rules.replica_sets_to_clean(state.deployment, state.old_rss):
            meta = replica_set["metadata"]
            try:
                await self.api.delete(self.replica_sets_registry, meta["namespace"], meta["name"],
                                      DeleteOptions(precondition_uid=meta["uid"]))
                log.info("old replica set deleted deployment=%s replicaset=%s/%s",
                         state.deployment["metadata"]["name"], meta["namespace"], meta["name"])
            except errors.APIError as exc:
                if exc.code not in (404, 409):
                    raise

    # writing back ------------------------------------------------------------------------------
    async def _write(self, read: Obj, desired: Obj) -> None:
        """One /status write carrying the status and the revision annotation, when either changed."""
        revision = (desired["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
        if (read.get("status") or {}) == (desired.get("status") or {}) and \
                (read["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) == revision:
            return

        def write(current: Obj) -> Obj:
            current["status"] = desired.get("status") or {}
            if revision:
                current["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = revision
            return current
        await modify(self.deployments_registry, read, write, subresource="status")
