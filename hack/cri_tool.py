#!/usr/bin/env python3
"""Small CRI operations `make up` / `make down` need, over containerd's CRI socket.

    cri_tool.py pull IMAGE...     pull through CRI (the kubelet's path, honouring hosts.toml)
    cri_tool.py remove-pods [--node NAME | --all-nodes]
                                  stop and remove every sandbox our agent created for that node
                                  (label shipmate.io/node-name; default node: the agent's default);
                                  exit status 3 when some could not be removed, with the reason
    cri_tool.py remove-images --registry HOST:PORT
                                  remove every image with a reference in that registry (make purge)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from agent.config import node_name_or_default
from agent.labels import NODE_NAME
from cri.client import CRIClient
from cri.errors import CRIError, NotFound

async def pull(client: CRIClient, images: list[str]) -> None:
    for image in images:
        image_ref = await client.pull_image(image)
        if await client.image_status(image) is None:
            raise RuntimeError(f"{image}: pulled as {image_ref} but ImageStatus does not know it")
        print(f"pulled {image} {image_ref}")


LEFT_BEHIND = 3        # exit status: the sandboxes listed could not be removed
REMOVE_PASSES = 4       # a sandbox that fails is tried again after every other one was removed
PASS_DELAY_SECONDS = 2.0


def hidden_mounts(path: str, mountinfo: str) -> bool:
    """Whether `path` is a mount point hidden under a later mount of one of its parent directories.

    containerd mounts each sandbox's network namespace on /run/netns/cni-<id>. When /run/netns itself
    becomes a mount point while such a sandbox runs (`ip netns add` turns it into a recursive bind
    mount of itself the first time it is used), the sandbox's mount stays underneath: containerd's
    unmount reaches only the copy on top, and removing the file fails with EBUSY for as long as the
    machine runs."""
    real = os.path.realpath(path)
    parent = os.path.dirname(real)
    rows = [line.split() for line in mountinfo.splitlines() if len(line.split()) > 4]
    at_path = [int(row[0]) for row in rows if row[4] == real]
    over_parent = [int(row[0]) for row in rows if row[4] == parent]
    return bool(at_path) and bool(over_parent) and min(at_path) < max(over_parent)


async def network_namespace_path(client: CRIClient, sandbox_id: str) -> str | None:
    try:
        status = await client.pod_sandbox_status(sandbox_id, verbose=True)
    except CRIError:
        return None
    try:
        spec = json.loads(status.info.get("info", "{}")).get("runtimeSpec", {})
    except ValueError:
        return None
    for namespace in spec.get("linux", {}).get("namespaces", []):
        if namespace.get("type") == "network" and namespace.get("path"):
            return namespace["path"]
    return None


async def explain_failure(client: CRIClient, sandbox_id: str, error: str) -> str:
    netns = await network_namespace_path(client, sandbox_id)
    if netns and "busy" in error:
        try:
            with open("/proc/self/mountinfo") as handle:
                mountinfo = handle.read()
        except OSError:
            mountinfo = ""
        if hidden_mounts(netns, mountinfo):
            return (f"{error}: its network namespace {netns} is still mounted underneath a later mount of "
                    f"{os.path.dirname(netns)} (made while the pod ran, e.g. by the first `ip netns add`); "
                    "no unmount can reach it until the machine reboots. make up now mounts that directory "
                    "before containerd starts, so new pods are not affected")
    return error


async def remove_pods(client: CRIClient, node_name: str | None) -> list[str]:
    """Every sandbox of node_name (None: of every node our agents ran) is stopped and removed. One that
    fails is tried again once every other one was removed (a pod may hold another's mount), up to
    REMOVE_PASSES times; returns what could not be removed, with the reason. Sandboxes of other CRI
    users stay."""
    failures: dict[str, tuple[str, str]] = {}
    for attempt in range(REMOVE_PASSES):
        if attempt:
            await asyncio.sleep(PASS_DELAY_SECONDS)
        failures = {}
        for sandbox in await client.list_pod_sandbox():
            owner = sandbox.labels.get(NODE_NAME)
            if owner is None or (node_name is not None and owner != node_name):
                continue
            pod = f"{sandbox.metadata.namespace}/{sandbox.metadata.name}"
            try:
                await client.stop_pod_sandbox(sandbox.id)
                await client.remove_pod_sandbox(sandbox.id)
            except NotFound:
                continue  # removed meanwhile
            except CRIError as error:
                failures[sandbox.id] = (f"{pod} (sandbox {sandbox.id[:13]})", str(error))
                continue
            print(f"removed pod sandbox {sandbox.id[:13]} {pod}")
        if not failures:
            return []
    return [f"{pod}: {await explain_failure(client, sandbox_id, error)}"
            for sandbox_id, (pod, error) in failures.items()]


async def remove_images(client: CRIClient, registry: str) -> list[str]:
    """Removes each image that has a reference in `registry` (every reference of it goes: a
    docker.io name pulled through the mirror is the same image); returns the ones that failed."""
    failed = []
    for image in await client.list_images():
        refs = [*image.repo_tags, *image.repo_digests]
        if not any(ref.startswith(registry + "/") for ref in refs):
            continue
        try:
            await client.remove_image(image.id)
        except NotFound:
            continue
        except CRIError as error:
            failed.append(f"{refs[0]}: {error}")
            continue
        print(f"removed image {refs[0]}")
    return failed


async def run(args: argparse.Namespace) -> int:
    async with CRIClient(args.endpoint, timeout=60.0) as client:
        if args.command == "pull":
            await pull(client, args.images)
            return 0
        if args.command == "remove-images":
            left = await remove_images(client, args.registry)
        else:
            left = await remove_pods(client, None if args.all_nodes else node_name_or_default(args.node))
    for line in left:
        print(f"cri_tool {args.command}: could not remove {line}", file=sys.stderr)
    return LEFT_BEHIND if left else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="unix:///run/containerd/containerd.sock")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pull").add_argument("images", nargs="+")
    remove = commands.add_parser("remove-pods")
    which = remove.add_mutually_exclusive_group()
    which.add_argument("--node", default=None, help="node name (default: the hostname)")
    which.add_argument("--all-nodes", action="store_true", help="the sandboxes of every node our agents ran")
    commands.add_parser("remove-images").add_argument("--registry", required=True)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except (CRIError, RuntimeError) as error:
        print(f"cri_tool {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
