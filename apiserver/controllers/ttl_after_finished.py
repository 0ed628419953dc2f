"""The TTL-after-finished controller (upstream's pkg/controller/ttlafterfinished): a finished Job with
`spec.ttlSecondsAfterFinished` is deleted (in the foreground, so its pods go first) that many seconds after its
Complete/Failed condition was set."""
from __future__ import annotations

import asyncio
import datetime
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.controllers.job_rules import find_condition
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions, utc_now
from shipmate.timeutil import parse_rfc3339

log = logging.getLogger(__name__)


def finish_time(job: Obj) -> datetime.datetime | None:
    """When the Job finished: its Complete or Failed condition's transition time (None while running)."""
    for kind in ("Complete", "Failed"):
        condition = find_condition(job, kind)
        if condition is not None and condition.get("status") == "True":
            return parse_rfc3339(condition.get("lastTransitionTime"))
    return None


def seconds_until_expiry(job: Obj, now: datetime.datetime) -> float | None:
    """None when the Job has no TTL, is not finished or is being deleted; else the seconds left (<= 0: due)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    finished = finish_time(job)
    if ttl is None or finished is None or job["metadata"].get("deletionTimestamp"):
        return None
    return (finished + datetime.timedelta(seconds=ttl) - now).total_seconds()


class TTLAfterFinishedController(KeyedController):
    name = "ttl-after-finished-controller"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.registry = api.registry("batch", "jobs")
        self.jobs = informers.informer(self.registry, self._on_job)

    def informers(self) -> list[RegistryInformer]:
        return [self.jobs]

    def all_keys(self) -> set[str]:
        return {key for key, job in list(self.jobs.cache.items()) if seconds_until_expiry(job, utc_now()) is not None}

    def _on_job(self, event_type: str, job: Obj, _old: Obj | None) -> None:
        if event_type != "DELETED" and seconds_until_expiry(job, utc_now()) is not None:
            self.enqueue(object_key(job))

    async def sync_key(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        try:
            job = await self.registry.get(namespace, name)  # a fresh read: the TTL may have been changed
        except errors.APIError as exc:
            if exc.code == 404:
                return
            raise
        left = seconds_until_expiry(job, utc_now())
        if left is None:
            return
        if left > 0:
            asyncio.get_running_loop().call_later(left + 0.05, self.enqueue, key)
            return
        log.info("deleting finished job past its TTL job=%s", key)
        try:
            await self.api.delete(self.registry, namespace, name,
                                  DeleteOptions(precondition_uid=job["metadata"]["uid"],
                                                propagation_policy="Foreground"))
        except errors.APIError as exc:
            if exc.code not in (404, 409):
                raise
