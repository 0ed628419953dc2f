"""Priority admission (upstream's plugin of that name): a created pod gets `spec.priority` and
`spec.preemptionPolicy` from its `priorityClassName` (or from the class marked `globalDefault`, else 0), and
refuses values of its own that differ; at most one PriorityClass is marked `globalDefault`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apiserver import errors
from apiserver.admission.chain import CREATE, UPDATE, Attributes, Step
from apiserver.informer import StorageCache
from apiserver.kinds.base import Obj
from apiserver.kinds.priorityclasses import PRIORITY_CLASS_INFO, global_default_conflict
from apiserver.registry import Registry

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI

PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"


class Priority:
    name = "Priority"

    def __init__(self, api: "AdmissionAPI"):
        self.api = api
        self._classes: StorageCache | None = None

    @property
    def registry(self) -> Registry:
        return self.api.registry(PRIORITY_CLASS_INFO.group, PRIORITY_CLASS_INFO.plural)

    @property
    def classes(self) -> StorageCache:
        if self._classes is None:
            self._classes = StorageCache(self.registry)
        return self._classes

    async def start(self, attributes: Attributes) -> Step | None:
        if attributes.subresource:
            return None
        if attributes.operation == CREATE and attributes.is_("", "pods"):
            return _PodPriority(self, attributes)
        if attributes.operation in (CREATE, UPDATE) and \
                attributes.is_(PRIORITY_CLASS_INFO.group, PRIORITY_CLASS_INFO.plural):
            return _OneGlobalDefault(self)
        return None

    async def priority_class(self, name: str) -> Obj | None:
        """From the watched cache, then storage (a class created a moment ago through another server)."""
        found = await self.classes.get("", name)
        if found is not None:
            return found
        try:
            return await self.registry.get("", name)
        except errors.APIError:
            return None

    async def global_default(self) -> Obj | None:
        defaults = [c for c in await self.classes.items("") if c.get("globalDefault")]
        # Upstream takes the lowest value when several are marked (possible after a race between writers).
        return min(defaults, key=lambda c: int(c.get("value") or 0), default=None)


class _PodPriority(Step):
    def __init__(self, plugin: Priority, attributes: Attributes):
        self.plugin, self.attributes = plugin, attributes

    def _forbidden(self, obj: Obj, why: str) -> errors.APIError:
        return errors.forbidden_error("", "pods", str((obj.get("metadata") or {}).get("name") or ""), why)

    async def admit(self, obj: Obj, old: Obj | None) -> Obj:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return obj
        class_name = spec.get("priorityClassName") or ""
        if class_name:
            found = await self.plugin.priority_class(class_name)
            if found is None:
                raise self._forbidden(obj, f"no PriorityClass with name {class_name} was found")
            priority, policy = int(found.get("value") or 0), found.get("preemptionPolicy") or PREEMPT_LOWER_PRIORITY
        else:
            default = await self.plugin.global_default()
            priority = int(default.get("value") or 0) if default else 0
            policy = (default or {}).get("preemptionPolicy") or PREEMPT_LOWER_PRIORITY
            if default:
                spec["priorityClassName"] = default["metadata"]["name"]
        given: Any = spec.get("priority")
        if given is not None and given != priority:
            raise self._forbidden(obj, f"the integer value of priority ({given}) must not be provided in pod spec; "
                                       f"priority admission controller computed {priority} from the given "
                                       "PriorityClass name")
        given_policy = spec.get("preemptionPolicy")
        if given_policy is not None and given_policy != policy:
            raise self._forbidden(obj, f"the string value of PreemptionPolicy ({given_policy}) must not be provided "
                                       f"in pod spec; priority admission controller computed {policy} from the "
                                       "given PriorityClass name")
        spec["priority"], spec["preemptionPolicy"] = priority, policy
        return obj


class _OneGlobalDefault(Step):
    def __init__(self, plugin: Priority):
        self.plugin = plugin

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        if obj is None or not obj.get("globalDefault"):
            return
        others, _ = await self.plugin.registry.list()
        holder = global_default_conflict(obj, others, old is None)
        if holder:
            raise errors.forbidden_error(PRIORITY_CLASS_INFO.group, PRIORITY_CLASS_INFO.plural,
                                         str(obj["metadata"].get("name") or ""),
                                         f"PriorityClass {holder} is already marked as default. Only one default "
                                         "can exist")
