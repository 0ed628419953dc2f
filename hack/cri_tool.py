#!/usr/bin/env python3
"""Small CRI operations `make up` / `make down` need, over containerd's CRI socket.

    cri_tool.py pull IMAGE...     pull through CRI (the kubelet's path, honouring hosts.toml)
    cri_tool.py remove-pods [--node NAME]
                                  stop and remove every sandbox our agent created for that node
                                  (label shipmate.io/node-name; default node: the agent's default)
"""
from __future__ import annotations

import argparse
import asyncio
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


async def remove_pods(client: CRIClient, node_name: str) -> None:
    """Every sandbox is tried even when one fails; the failures are raised together at the end.
    Sandboxes of other nodes sharing this containerd (simulated nodes) and of other CRI users stay."""
    failures = []
    for sandbox in await client.list_pod_sandbox():
        if sandbox.labels.get(NODE_NAME) != node_name:
            continue
        pod = f"{sandbox.metadata.namespace}/{sandbox.metadata.name}"
        try:
            await client.stop_pod_sandbox(sandbox.id)
            await client.remove_pod_sandbox(sandbox.id)
        except NotFound:
            continue  # removed meanwhile
        except CRIError as error:
            failures.append(f"{pod} (sandbox {sandbox.id[:13]}): {error}")
            continue
        print(f"removed pod sandbox {sandbox.id[:13]} {pod}")
    if failures:
        raise RuntimeError("could not remove " + "; ".join(failures))


async def run(args: argparse.Namespace) -> None:
    async with CRIClient(args.endpoint, timeout=60.0) as client:
        if args.command == "pull":
            await pull(client, args.images)
        else:
            await remove_pods(client, node_name_or_default(args.node))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="unix:///run/containerd/containerd.sock")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pull").add_argument("images", nargs="+")
    commands.add_parser("remove-pods").add_argument("--node", default=None,
                                                    help="node name (default: the hostname)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run(args))
    except (CRIError, RuntimeError) as error:
        print(f"cri_tool {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
