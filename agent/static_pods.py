"""Static pods: pod manifests in a directory (`--pod-manifest-path`) become pods run without the API
server, as kubelet's file source makes them.

Pure part: manifest text → the static pod (name `<name>-<node>`, namespace `default` when unset,
UID = md5 over the manifest + `host:<node>` + `file:<path>` as kubelet computes it, annotations
`kubernetes.io/config.hash` / `config.source=file` / `config.seen`, the NoExecute toleration,
`spec.nodeName`, phase Pending) and the diff of two directory scans. Effectful part: a poller that
reads the directory every 5 s in a thread and reports ADDED / DELETED per pod UID. An edited file
has a new UID: its old pod is DELETED and the new one ADDED, as in kubelet.
"""
from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import yaml

from shipmate.images import default_pull_policy
from agent.labels import CONFIG_SEEN, CONFIG_SOURCE

log = logging.getLogger(__name__)

Obj = dict[str, Any]
POLL_INTERVAL = 5.0

CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
FILE_SOURCE = "file"


class ManifestError(ValueError):
    """A manifest that is not a single valid pod."""


def parse_manifest(text: str, path: str) -> Obj:
    """One pod per file, YAML or JSON (JSON is YAML), as kubelet's file source reads them."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not YAML or JSON: {error}") from None
    if len(documents) != 1:
        raise ManifestError(f"{path}: expected exactly one pod, found {len(documents)} documents")
    pod = documents[0]
    if not isinstance(pod, dict):
        raise ManifestError(f"{path}: a pod manifest must be an object")
    if pod.get("kind") != "Pod" or pod.get("apiVersion") != "v1":
        raise ManifestError(f"{path}: kind must be Pod and apiVersion v1, got "
                            f"{pod.get('apiVersion')!r}/{pod.get('kind')!r}")
    meta, spec = pod.get("metadata"), pod.get("spec")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ManifestError(f"{path}: metadata.name: Required value")
    if not isinstance(spec, dict) or not isinstance(spec.get("containers"), list) or not spec["containers"]:
        raise ManifestError(f"{path}: spec.containers: Required value")
    for key in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(key) or []):
            if not isinstance(container, dict) or not container.get("name") or not container.get("image"):
                raise ManifestError(f"{path}: spec.{key}[{index}]: name and image are required")
    return pod


def static_pod_uid(manifest: Obj, node_name: str, path: str) -> str:
    """kubelet hashes the decoded pod, then `host:<node>` and `file:<path>` (md5, hex)."""
    hasher = hashlib.md5()
    hasher.update(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
    hasher.update(f"host:{node_name}".encode())
    hasher.update(f"file:{path}".encode())
    return hasher.hexdigest()


def _apply_defaults(spec: Obj) -> None:
    """The API defaults the agent relies on (the API server applies them to API pods)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            container.setdefault("imagePullPolicy", default_pull_policy(container["image"]))
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})


def static_pod(manifest: Obj, node_name: str, path: str, seen: datetime) -> Obj:
    pod = copy.deepcopy(manifest)
    meta, spec = pod["metadata"], pod["spec"]
    uid = meta.get("uid") or static_pod_uid(manifest, node_name, path)
    meta.update(uid=uid, name=f"{meta['name']}-{node_name}", namespace=meta.get("namespace") or "default")
    annotations = meta["annotations"] = dict(meta.get("annotations") or {})
    annotations.update({CONFIG_HASH: uid, CONFIG_SOURCE: FILE_SOURCE,
                        CONFIG_SEEN: seen.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")})
    spec["nodeName"] = node_name
    _apply_defaults(spec)
    tolerations = spec.setdefault("tolerations", [])
    if not any(t.get("operator") == "Exists" and not t.get("key") and t.get("effect") == "NoExecute"
               for t in tolerations):
        tolerations.append({"operator": "Exists", "effect": "NoExecute"})
    pod["status"] = {"phase": "Pending"}
    return pod


def is_static(pod: Obj) -> bool:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(CONFIG_SOURCE) == FILE_SOURCE


def is_mirror(pod: Obj) -> bool:
    return CONFIG_MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


def full_name(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


@dataclass(frozen=True)
class Change:
    kind: str          # ADDED or DELETED
    pod: Obj


def diff_pods(old: dict[str, Obj], new: dict[str, Obj]) -> list[Change]:
    """Two scans (UID → pod) → changes; deletions first, so a replaced pod stops before its successor."""
    return ([Change("DELETED", old[uid]) for uid in old if uid not in new]
            + [Change("ADDED", new[uid]) for uid in new if uid not in old])


def manifest_files(directory: str) -> list[str]:
    """Regular files in the directory, skipping hidden ones (editor swap files) as kubelet does."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    return [os.path.join(directory, n) for n in names
            if not n.startswith(".") and os.path.isfile(os.path.join(directory, n))]


@dataclass
class StaticPodSource:
    directory: str
    node_name: str
    on_change: Callable[[Change], None]
    interval: float = POLL_INTERVAL
    pods: dict[str, Obj] = field(default_factory=dict)          # UID → pod
    _by_path: dict[str, Obj] = field(default_factory=dict)      # last good pod of each file
    _errors: dict[str, str] = field(default_factory=dict)       # path → last error logged
    synced: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the source must survive anything; next scan retries
                log.exception("static pod scan failed dir=%s", self.directory)
            await asyncio.sleep(self.interval)

    async def scan(self) -> list[Change]:
        texts = await asyncio.to_thread(_read_all, manifest_files(self.directory))
        now = datetime.now(timezone.utc)
        by_path: dict[str, Obj] = {}
        for path, text in texts.items():
            try:
                manifest = parse_manifest(text, path)
            except ManifestError as error:
                # A half-written or broken file keeps its last good pod running: nothing is lost.
                if self._errors.get(path) != str(error):
                    log.error("static pod manifest rejected path=%s error=%s", path, error)
                    self._errors[path] = str(error)
                if path in self._by_path:
                    by_path[path] = self._by_path[path]
                continue
            self._errors.pop(path, None)
            uid = manifest.get("metadata", {}).get("uid") or static_pod_uid(manifest, self.node_name, path)
            previous = self.pods.get(uid)
            by_path[path] = previous if previous is not None else static_pod(manifest, self.node_name, path, now)
        fresh: dict[str, Obj] = {}
        owners: dict[str, str] = {}
        # A pod already running keeps its name against a newcomer that claims it too.
        for path, pod in sorted(by_path.items(), key=lambda item: item[1]["metadata"]["uid"] not in self.pods):
            name = full_name(pod)
            if name in owners:
                log.error("static pod manifest ignored: duplicate pod name path=%s pod=%s first=%s", path, name,
                          owners[name])
                continue
            owners[name] = path
            fresh[pod["metadata"]["uid"]] = pod
        changes = diff_pods(self.pods, fresh)
        self.pods, self._by_path = fresh, by_path
        for change in changes:
            log.info("static pod %s pod=%s uid=%s", change.kind.lower(), full_name(change.pod),
                     change.pod["metadata"]["uid"])
            self.on_change(change)
        self.synced.set()
        return changes


def _read_all(paths: list[str]) -> dict[str, str]:
    texts = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                texts[path] = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            log.warning("static pod manifest unreadable path=%s error=%s", path, error)
    return texts
