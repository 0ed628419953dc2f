"""ControllerRevisions of DaemonSets and StatefulSets (pure functions, after upstream's controller/history and
the two controllers' snapshot code): the stored data is a strategic merge patch that puts the owner's pod
template back (`{"spec":{"template":{…,"$patch":"replace"}}}`, what `kubectl rollout undo` patches the
owner with), names are `<owner>-<hash>`, numbers only ever grow, and old revisions no live pod uses go
beyond `revisionHistoryLimit`."""
from __future__ import annotations

import copy
import json
from typing import Any, Iterable

from apiserver.controllers.deployment_rules import _SAFE_ALPHABET, pod_template_hash
from apiserver.controllers.ownership import owner_reference

Obj = dict[str, Any]

HASH_LABEL = "controller.kubernetes.io/hash"           # history.ControllerRevisionHashLabel (on revisions)
REVISION_HASH_LABEL = "controller-revision-hash"         # apps.ControllerRevisionHashLabelKey (on pods)
MAX_PREFIX = 223


def fnv32(data: bytes) -> int:
    """hash/fnv New32 (FNV-1: multiply, then xor)."""
    value = 0x811C9DC5
    for byte in data:
        value = ((value * 0x01000193) & 0xFFFFFFFF) ^ byte
    return value


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: every character mapped into an alphabet without vowels or look-alikes."""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def encode(data: Any) -> bytes:
    """The JSON bytes of revision data as Go's encoding/json writes a map: sorted keys, no spaces."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def template_patch(owner: Obj) -> Obj:
    """getPatch: the owner's pod template as a patch replacing spec.template."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_template(revision: Obj) -> Obj:
    """The pod template a revision restores."""
    template = copy.deepcopy((((revision.get("data") or {}).get("spec") or {}).get("template")) or {})
    template.pop("$patch", None)
    return template


def matches(owner: Obj, revision: Obj) -> bool:
    """Whether a revision restores exactly the owner's current template (Match / EqualRevision)."""
    return revision_template(revision) == ((owner.get("spec") or {}).get("template") or {})


def apply_revision(owner: Obj, revision: Obj) -> Obj:
    """ApplyRevision: the owner with the revision's template."""
    restored = copy.deepcopy(owner)
    restored.setdefault("spec", {})["template"] = revision_template(revision)
    return restored


def revision_name(prefix: str, hash_value: str) -> str:
    return f"{prefix[:MAX_PREFIX]}-{hash_value}"


def hash_revision_data(data: Obj, collision_count: int | None) -> str:
    """history.HashControllerRevision: FNV-1 32 of the data bytes (+ the collision count in decimal)."""
    raw = encode(data)
    if collision_count is not None:
        raw += str(int(collision_count)).encode()
    return safe_encode(str(fnv32(raw)))


def statefulset_revision(statefulset: Obj, number: int, collision_count: int | None) -> Obj:
    """newRevision: labels of the template + the hash label, the set's annotations (so `change-cause`
    shows in `kubectl rollout history`), a controller reference to the set."""
    meta = statefulset["metadata"]
    data = template_patch(statefulset)
    hash_value = hash_revision_data(data, collision_count)
    labels = dict((((statefulset.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[HASH_LABEL] = hash_value
    revision_meta: Obj = {"name": revision_name(meta["name"], hash_value), "namespace": meta["namespace"],
                          "labels": labels, "ownerReferences": [owner_reference(statefulset)]}
    if meta.get("annotations"):
        revision_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": revision_meta, "data": data,
            "revision": number}


def daemonset_hash(daemonset: Obj) -> str:
    """The DaemonSet's revision hash: controller.ComputeHash of its template and collision count (the same
    hash a Deployment gives a template)."""
    spec, status = daemonset.get("spec") or {}, daemonset.get("status") or {}
    return pod_template_hash(spec.get("template") or {}, status.get("collisionCount"))


def daemonset_revision(daemonset: Obj, number: int) -> Obj:
    """dsc.snapshot: `<ds>-<hash>`, labels of the template + `controller-revision-hash`, the DaemonSet's
    annotations."""
    meta = daemonset["metadata"]
    hash_value = daemonset_hash(daemonset)
    labels = dict((((daemonset.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[REVISION_HASH_LABEL] = hash_value
    revision_meta: Obj = {"name": f"{meta['name']}-{hash_value}", "namespace": meta["namespace"], "labels": labels,
                          "ownerReferences": [owner_reference(daemonset)]}
    if meta.get("annotations"):
        revision_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": revision_meta,
            "data": template_patch(daemonset), "revision": number}


def by_revision(revisions: Iterable[Obj]) -> list[Obj]:
    """SortControllerRevisions: by number, then creation time, then name."""
    return sorted(revisions, key=lambda r: (int(r.get("revision") or 0), r["metadata"].get("creationTimestamp") or "",
                                            r["metadata"]["name"]))


def next_revision(revisions: Iterable[Obj]) -> int:
    return max((int(r.get("revision") or 0) for r in revisions), default=0) + 1


def revisions_to_delete(revisions: list[Obj], live: set[str], limit: int, key=lambda r: r["metadata"]["name"]) \
        -> list[Obj]:
    """History beyond the limit, oldest first, never one whose `key` a live pod (or the current/update
    revision) still names."""
    history = [r for r in by_revision(revisions) if key(r) not in live]
    excess = len(history) - max(limit, 0)
    return history[:excess] if excess > 0 else []
