"""`shipmate token create|list|delete`: bootstrap tokens agents join with (as `kubeadm token`).

A token is a Secret kube-system/bootstrap-token-<id> (shipmate/bootstrap_token.py); the server authenticates
`Authorization: Bearer <id>.<secret>` against it until it expires, as system:bootstrap:<id> in group
system:bootstrappers, which may create a kubelet client CSR that the server auto-approves and signs.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import yaml

from shipmate import bootstrap_token, pki
from shipmate.durations import parse_go_duration
from shipmate.timeutil import rfc3339
from shipmate.kubeclient import (SECRETS, AlreadyExists, ApiError, KubeClient, KubeConfig, NotFound, Resource,
                                 load_kubeconfig)

DEFAULT_KUBECONFIG = "/etc/shipmate/admin.kubeconfig"
DEFAULT_TTL = "24h0m0s"
ENDPOINTS = Resource("v1", "endpoints")
_TABLE_MIN_WIDTH, _TABLE_PADDING = 10, 3  # kubeadm's tabwriter.NewWriter(out, 10, 4, 3, ' ', 0)


class TokenError(Exception):
    """A failure worth one line on stderr and exit status 1."""


def short_human_duration(delta: datetime.timedelta) -> str:
    """k8s.io/apimachinery's duration.ShortHumanDuration (kubeadm's TTL column)."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"


def tabulate(rows: list[list[str]]) -> str:
    """Go's tabwriter as kubeadm configures it: every column but the last padded to its widest cell + 3
    (at least 10 wide)."""
    widths = [max(_TABLE_MIN_WIDTH, max(len(row[i]) for row in rows) + _TABLE_PADDING)
              for i in range(len(rows[0]) - 1)]
    return "".join("".join(cell.ljust(width) for cell, width in zip(row, widths)) + row[-1] + "\n" for row in rows)


def list_rows(secrets: list[dict], now: datetime.datetime) -> tuple[list[list[str]], list[str]]:
    """The `token list` table (header first) and a complaint per Secret that is not a usable token."""
    rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
    problems = []
    for secret in secrets:
        name = secret.get("metadata", {}).get("name", "")
        stored = bootstrap_token.stored_token(secret)
        if not stored.id:
            problems.append(f"bootstrap token has no token-id data: {name}")
        elif name != bootstrap_token.SECRET_PREFIX + stored.id:
            problems.append(f"bootstrap token name is not of the form '{bootstrap_token.SECRET_PREFIX}(token-id)': "
                            f"{name}")
        elif not stored.secret:
            problems.append(f"bootstrap token has no token-secret data: {name}")
        else:
            expires = stored.expires
            rows.append([f"{stored.id}.{stored.secret}",
                         short_human_duration(expires - now) if expires else "<forever>",
                         rfc3339(expires) if expires else "<never>",
                         ",".join(stored.usages) or "<none>", stored.description or "<none>",
                         ",".join(stored.extra_groups) or "<none>"])
    return rows, problems


def token_id_of(text: str) -> str:
    """`token delete` takes a token id or a whole token."""
    if bootstrap_token.TOKEN_ID_RE.fullmatch(text):
        return text
    token = bootstrap_token.parse(text)
    if token is None:
        raise TokenError(f'given token "{text}" didn\'t match pattern "{bootstrap_token.TOKEN_ID_RE.pattern}" or '
                         f'"{bootstrap_token.TOKEN_RE.pattern}"')
    return token.id


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def endpoint_urls(endpoints: dict) -> list[str]:
    """https://<address>:<port> of every API server the `kubernetes` Endpoints lists."""
    urls = []
    for subset in endpoints.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or [] if p.get("name") in ("https", None)]
        for address in subset.get("addresses") or []:
            urls += [f"https://{_url_host(address.get('ip', ''))}:{port}" for port in ports if port]
    return urls


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def join_servers(client: KubeClient, config: KubeConfig) -> list[str]:
    """Where other machines reach the API: the kubeconfig's server, unless it is a loopback address (the
    admin kubeconfig on a server host); then every server the `kubernetes` Service's Endpoints lists."""
    if not is_loopback_url(config.server):
        return [config.server]
    try:
        urls = endpoint_urls(await client.get(ENDPOINTS, "kubernetes", "default"))
    except NotFound:
        urls = []
    return urls or [config.server]


def cluster_ca(config: KubeConfig) -> bytes:
    if config.certificate_authority_data:
        return config.certificate_authority_data
    if config.certificate_authority:
        with open(config.certificate_authority, "rb") as handle:
            return handle.read()
    raise TokenError("the kubeconfig has no certificate-authority: cannot compute --ca-cert-hash")


@dataclass(frozen=True)
class CreateRequest:
    token: bootstrap_token.Token
    ttl_seconds: float
    description: str
    extra_groups: tuple[str, ...]
    print_join_command: bool


def parse_create(args: argparse.Namespace) -> CreateRequest:
    if args.token:
        token = bootstrap_token.parse(args.token)
        if token is None:
            raise TokenError(f'the token "{args.token}" was not of the form "{bootstrap_token.TOKEN_RE.pattern}"')
    else:
        token = bootstrap_token.generate()
    try:
        ttl = parse_go_duration(args.ttl)
    except ValueError as exc:
        raise TokenError(f"--ttl: {exc}") from None
    if ttl < 0:
        raise TokenError(f"--ttl must not be negative, got {args.ttl!r}")
    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip()) if args.groups else ()
    for group in groups:
        problem = bootstrap_token.group_problem(group)
        if problem:
            raise TokenError(f"--groups: {problem}")
    return CreateRequest(token, ttl, args.description, groups, args.print_join_command)


async def create(client: KubeClient, config: KubeConfig, request: CreateRequest) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    secret = bootstrap_token.secret_for(request.token, request.ttl_seconds, now, request.description,
                                        request.extra_groups)
    try:
        await client.create(SECRETS, secret, bootstrap_token.NAMESPACE)
    except AlreadyExists:
        raise TokenError(f'a bootstrap token with id "{request.token.id}" already exists') from None
    if not request.print_join_command:
        return str(request.token)
    servers = await join_servers(client, config)
    return (f"shipmate agent --server {','.join(servers)} --token {request.token} "
            f"--ca-cert-hash {pki.ca_cert_hash(cluster_ca(config))}")


async def list_tokens(client: KubeClient) -> tuple[str, list[str]]:
    answer = await client.list(SECRETS, bootstrap_token.NAMESPACE,
                               field_selector=f"type={bootstrap_token.SECRET_TYPE}")
    rows, problems = list_rows(answer.get("items") or [], datetime.datetime.now(datetime.timezone.utc))
    return tabulate(rows), problems


async def delete(client: KubeClient, token_ids: list[str]) -> list[str]:
    deleted = []
    for token_id in token_ids:
        try:
            await client.delete(SECRETS, bootstrap_token.SECRET_PREFIX + token_id, bootstrap_token.NAMESPACE)
        except NotFound:
            raise TokenError(f'bootstrap token "{token_id}" not found') from None
        deleted.append(f'bootstrap token "{token_id}" deleted')
    return deleted


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shipmate token", description="manage bootstrap tokens agents join with")
    parser.add_argument("--kubeconfig", default=DEFAULT_KUBECONFIG, help="admin kubeconfig of the cluster")
    commands = parser.add_subparsers(dest="command", required=True)
    create_cmd = commands.add_parser("create", help="create a token and print it (or the agent's join command)")
    create_cmd.add_argument("token", nargs="?", default="", help="the token to create (default: a random one)")
    create_cmd.add_argument("--ttl", default=DEFAULT_TTL,
                            help="how long the token is valid (Go duration: 30m, 24h, ...); 0 never expires")
    create_cmd.add_argument("--description", default="", help="a human-readable note on the token")
    create_cmd.add_argument("--groups", default="",
                            help="extra groups (comma-separated, each system:bootstrappers:<name>)")
    create_cmd.add_argument("--print-join-command", action="store_true",
                            help="print the whole `shipmate agent` command a new node joins with")
    commands.add_parser("list", help="list the bootstrap tokens")
    delete_cmd = commands.add_parser("delete", help="delete bootstrap tokens")
    delete_cmd.add_argument("tokens", nargs="+", metavar="TOKEN_ID_OR_TOKEN")
    for command in (create_cmd, delete_cmd, commands.choices["list"]):
        command.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="admin kubeconfig of the cluster")
    return parser


async def _run(args: argparse.Namespace) -> int:
    try:
        config = load_kubeconfig(args.kubeconfig)
    except (OSError, ValueError, KeyError, yaml.YAMLError) as exc:
        raise TokenError(f"cannot load kubeconfig {args.kubeconfig}: {exc}") from None
    create_request = parse_create(args) if args.command == "create" else None
    token_ids = [token_id_of(t) for t in args.tokens] if args.command == "delete" else []
    async with KubeClient(config, user_agent="shipmate-token") as client:
        if create_request is not None:
            print(await create(client, config, create_request))
        elif args.command == "list":
            table, problems = await list_tokens(client)
            for problem in problems:
                print(problem, file=sys.stderr)
            sys.stdout.write(table)
        else:
            for line in await delete(client, token_ids):
                print(line)
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ApiError as exc:
        print(f"error: the API server refused: {exc.message or exc}", file=sys.stderr)
    except (aiohttp.ClientError, OSError) as exc:
        print(f"error: cannot reach the API server: {exc}", file=sys.stderr)
    return 1
