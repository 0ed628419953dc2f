"""The NodeRestriction plugin in the chain: what a node creates, how it changes its own Node (the rules
are in auth/node_restriction.py, which also checks what the URL names right after authorization), and the
service account tokens it asks for (bound to a pod of its own, with that pod's uid: upstream's
admitServiceAccount)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from apiserver import errors
from apiserver.admission.chain import CREATE, UPDATE, Attributes, Step
from apiserver.auth import node_restriction
from apiserver.auth.user import SYSTEM_NODES
from apiserver.kinds.base import Obj

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI


class NodeRestriction:
    name = "NodeRestriction"

    def __init__(self, api: "AdmissionAPI"):
        self.api = api

    async def start(self, attributes: Attributes) -> Step | None:
        user = attributes.user
        if user is None or SYSTEM_NODES not in user.groups:
            return None
        if attributes.operation == CREATE and attributes.is_("", "serviceaccounts", "token"):
            return _NodeTokenRequest(self.api, attributes, user.node_name)
        if attributes.operation == CREATE and not attributes.subresource:
            return _NodeCreate(self.api, attributes)
        if attributes.operation == UPDATE and attributes.is_("", "nodes", attributes.subresource):
            check = node_restriction.node_update_admission(attributes.name)
            return _NodeUpdate(check) if check is not None else None
        if attributes.operation == UPDATE and attributes.is_("", "persistentvolumes", attributes.subresource):
            return _NodeUpdate(_volume_status_check(user.node_name or "", attributes))
        return None


def _volume_status_check(node_name: str, attributes: Attributes) -> Callable[[Obj, Obj], None]:
    """A node writes the status of its own local-path volumes only (auth/node_restriction.py)."""
    def check(new: Obj, old: Obj) -> None:
        problem = "only the status subresource" if attributes.subresource != "status" else \
            node_restriction.volume_status_problem(node_name, new, old)
        if problem:
            raise errors.forbidden_error("", "persistentvolumes", attributes.name, problem)
    return check


class _NodeCreate(Step):
    def __init__(self, api: "AdmissionAPI", attributes: Attributes):
        self.api, self.attributes = api, attributes

    async def admit(self, obj: Obj, old: Obj | None) -> Obj:
        await node_restriction.admit_create(self.api, self.attributes.registry, self.attributes.namespace, obj)
        return obj


class _NodeUpdate(Step):
    def __init__(self, check: Callable[[Obj, Obj], None]):
        self.check = check

    async def admit(self, obj: Obj, old: Obj | None) -> Obj:
        if old is not None:
            self.check(obj, old)
        return obj


class _NodeTokenRequest(Step):
    """A node's TokenRequest must be bound to a pod (with its uid) scheduled on that node."""

    def __init__(self, api: "AdmissionAPI", attributes: Attributes, node_name: str | None):
        self.api, self.attributes, self.node_name = api, attributes, node_name

    def _forbidden(self, why: str) -> errors.APIError:
        return errors.forbidden_error("", "serviceaccounts", self.attributes.name, why)

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        if self.node_name is None:
            raise self._forbidden(f'could not determine node from user "{self.attributes.user.name}"')
        ref = ((obj or {}).get("spec") or {}).get("boundObjectRef") or {}
        if ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
            raise self._forbidden("node requested token not bound to a pod")
        if not ref.get("uid"):
            raise self._forbidden("node requested token with a pod binding without a uid")
        pod = await self.api.pods.get(self.attributes.namespace, ref["name"])  # 404 as upstream
        if ref["uid"] != pod["metadata"].get("uid"):
            raise self._forbidden(f"the UID in the bound object reference ({ref['uid']}) does not match the UID in "
                                  "record. The object might have been deleted and then recreated")
        if (pod.get("spec") or {}).get("nodeName") != self.node_name:
            raise self._forbidden("node requested token bound to a pod scheduled on a different node")
