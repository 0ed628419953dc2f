"""Writing a claim: adopted objects get the owner's controller reference, released ones lose it."""
from __future__ import annotations

import logging

from apiserver.controllers.ownership import Claim, Matcher, controller_ref, labels_of, owner_reference
from apiserver.controllers.writes import modify
from apiserver.kinds.base import Obj
from apiserver.registry import Registry

log = logging.getLogger(__name__)


async def apply_claim(registry: Registry, owner: Obj, claim: Claim, matches: Matcher, component: str) -> list[Obj]:
    """Adopts and releases as the claim says (re-checked on the fresh object); returns the adopted objects
    as stored."""
    uid = owner["metadata"]["uid"]
    reference = owner_reference(owner)

    def adopt(obj: Obj) -> Obj:
        if controller_ref(obj) is None and matches(labels_of(obj)) and not obj["metadata"].get("deletionTimestamp"):
            obj["metadata"].setdefault("ownerReferences", []).append(dict(reference))
        return obj

    def release(obj: Obj) -> Obj:
        refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if refs:
            obj["metadata"]["ownerReferences"] = refs
        else:
            obj["metadata"].pop("ownerReferences", None)
        return obj
    adopted = []
    for objects, change, verb in ((claim.adopt, adopt, "adopted"), (claim.release, release, "released")):
        for obj in objects:
            stored = await modify(registry, obj, change)
            if stored is None:
                continue
            if change is adopt:
                adopted.append(stored)
            meta = obj["metadata"]
            log.info("%s %s %s=%s/%s owner=%s", component, verb, registry.info.singular, meta["namespace"],
                     meta["name"], owner["metadata"]["name"])
    return adopted
