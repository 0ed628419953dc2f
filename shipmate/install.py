"""`shipmate install server|agent`: systemd units, their env files (the agent's carries its join
flags: `--server`, `--token`, `--ca-cert-hash`/`--ca-file`) and containerd's config; then
`systemctl daemon-reload && systemctl enable --now` where systemd is PID 1.

Rendering is pure (`server_args`, `agent_args`, `server_files`, `agent_files`): the multi-node test
harness (tests/e2e/multinode) and the Vagrantfile run the daemons with exactly these arguments and
this containerd config, so what the harness tests is what a VM installs. `--root DIR` writes into a
directory tree instead of `/` (tests, nspawn images) and never calls systemctl.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shipmate import bootstrap_token
from shipmate import containerd_config as containerd_conf
from shipmate import crictl_config
from shipmate.kubeclient import parse_servers

# The repository's systemd/ (shipmate/systemd links to it), or the copy a wheel installed there.
SYSTEMD_SOURCE_DIR = Path(__file__).resolve().parent / "systemd"
UNIT_DIR = "/etc/systemd/system"
ETC_DIR = "/etc/shipmate"
DEFAULT_SHIPMATE_BIN = "/opt/shipmate/venv/bin/shipmate"
SERVER_UNIT = "shipmate-server.service"
AGENT_UNIT = "shipmate-agent.service"
LOCAL_REGISTRY = containerd_conf.LOCAL_REGISTRY
ENV_HEADER = "# Written by `shipmate install`; flags of the daemon, split on whitespace.\n"


class InstallError(Exception):
    """Bad options or a step that failed; the message says which."""


@dataclass(frozen=True)
class ServerOptions:
    bind_address: str = "0.0.0.0"
    port: int = 6443
    data_dir: str = "/var/lib/shipmate/server"
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    admin_kubeconfig: str = f"{ETC_DIR}/admin.kubeconfig"
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentPaths:
    """Where one node's agent and containerd keep things (the harness gives each node its own)."""
    etc_dir: str = ETC_DIR
    root_dir: str = "/var/lib/shipmate/agent"
    ipam_dir: str = "/var/lib/shipmate/ipam"
    cni_socket: str = "/run/shipmate/cni.sock"
    cni_bin_dir: str = containerd_conf.CNI_BIN_DIR
    cni_conf_dir: str = containerd_conf.CNI_CONF_DIR
    containerd_socket: str = "/run/containerd/containerd.sock"
    containerd_config: str = "/etc/containerd/config.toml"
    certs_dir: str = containerd_conf.CERTS_DIR

    @property
    def registries(self) -> str:
        return f"{self.etc_dir}/registries.yaml"


@dataclass(frozen=True)
class AgentOptions:
    server: str                    # URL[,URL...]: the agent fails over between them
    token: str = ""                # bootstrap token of the first start's join
    ca_cert_hash: str = ""         # sha256:<hex> pinning the CA fetched from /cacerts
    ca_file: str = ""              # or the cluster CA certificate, a file on the node
    node_name: str = ""
    node_ip: str = ""
    cluster_cidr: str = "10.244.0.0/16"
    registry_mirror: str = ""      # http(s) URL serving the images of 127.0.0.1:5000 to this node
    paths: AgentPaths = field(default_factory=AgentPaths)
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileSpec:
    path: str          # absolute path on the installed system
    text: str
    mode: int = 0o644


# ---------------------------------------------------------------- pure rendering

def server_args(options: ServerOptions) -> list[str]:
    return ["--bind-address", options.bind_address, "--port", str(options.port),
            "--data-dir", options.data_dir, "--cluster-cidr", options.cluster_cidr,
            "--node-cidr-mask-size", str(options.node_cidr_mask_size),
            "--admin-kubeconfig", options.admin_kubeconfig, *options.extra_args]


def agent_args(options: AgentOptions) -> list[str]:
    paths = options.paths
    args = ["--server", options.server]
    if options.token:
        args += ["--token", options.token]
    if options.ca_cert_hash:
        args += ["--ca-cert-hash", options.ca_cert_hash]
    if options.ca_file:
        args += ["--ca-file", options.ca_file]
    args += ["--container-runtime-endpoint", f"unix://{paths.containerd_socket}",
            "--root-dir", paths.root_dir, "--ipam-dir", paths.ipam_dir, "--cni-socket", paths.cni_socket,
            "--cni-bin-dir", paths.cni_bin_dir, "--cni-conf-dir", paths.cni_conf_dir,
            "--cluster-cidr", options.cluster_cidr]
    if options.node_name:
        args += ["--node-name", options.node_name]
    if options.node_ip:
        args += ["--node-ip", options.node_ip]
    return args + list(options.extra_args)


def env_file(variable: str, args: list[str]) -> str:
    """An EnvironmentFile line; systemd splits an unquoted `$VAR` in ExecStart on whitespace, so
    arguments cannot contain whitespace or quotes."""
    for arg in args:
        if not arg or any(c.isspace() or c in "\"'\\$" for c in arg):
            raise InstallError(f"argument {arg!r} cannot be passed through {variable} "
                               "(empty, or has whitespace, quotes, backslash or $)")
    return f'{ENV_HEADER}{variable}="{" ".join(args)}"\n'


def parse_env_args(text: str, variable: str) -> list[str]:
    """The arguments an env file written by `env_file` passes (the harness runs the daemons with them)."""
    for line in text.splitlines():
        if line.startswith(f"{variable}="):
            # The value (quotes removed), split on whitespace as systemd splits an unquoted $VAR.
            return " ".join(shlex.split(line.split("=", 1)[1])).split()
    raise InstallError(f"{variable} not set in the env file")


def unit_text(unit: str, shipmate_bin: str = DEFAULT_SHIPMATE_BIN) -> str:
    text = (SYSTEMD_SOURCE_DIR / unit).read_text()
    if not shipmate_bin.startswith("/"):
        raise InstallError(f"--shipmate-bin {shipmate_bin!r} must be an absolute path")
    return text.replace(DEFAULT_SHIPMATE_BIN, shipmate_bin)


def registries_document(registry_mirror: str) -> dict:
    """Pulls of the local registry's images go to the mirror first (a node that cannot reach
    127.0.0.1:5000 of the machine holding the images)."""
    return {"mirrors": {LOCAL_REGISTRY: {"endpoint": [registry_mirror]}}} if registry_mirror else {}


def server_files(options: ServerOptions, shipmate_bin: str = DEFAULT_SHIPMATE_BIN) -> list[FileSpec]:
    return [FileSpec(f"{UNIT_DIR}/{SERVER_UNIT}", unit_text(SERVER_UNIT, shipmate_bin)),
            FileSpec(f"{ETC_DIR}/server.env", env_file("SHIPMATE_SERVER_ARGS", server_args(options)))]


def containerd_files(options: AgentOptions, systemd_cgroup: bool) -> list[FileSpec]:
    paths = options.paths
    rendered = containerd_conf.render(registries_document(options.registry_mirror), systemd_cgroup,
                                        paths.certs_dir, paths.cni_bin_dir, paths.cni_conf_dir)
    files = [FileSpec(paths.containerd_config, rendered.config_toml)]
    files += [FileSpec(f"{paths.certs_dir}/{host}/hosts.toml", text) for host, text in sorted(rendered.hosts.items())]
    return files


def agent_files(options: AgentOptions, systemd_cgroup: bool,
                shipmate_bin: str = DEFAULT_SHIPMATE_BIN) -> list[FileSpec]:
    return [FileSpec(f"{UNIT_DIR}/{AGENT_UNIT}", unit_text(AGENT_UNIT, shipmate_bin)),
            *agent_config_files(options, systemd_cgroup)]


def check_agent_options(options: AgentOptions) -> None:
    try:
        servers = parse_servers(options.server)
    except ValueError as error:
        raise InstallError(f"--server: {error}") from None
    if any(not server.startswith("https://") for server in servers):
        raise InstallError(f"--server {options.server!r}: the API server is HTTPS only (https://HOST:6443)")
    if options.token and bootstrap_token.parse(options.token) is None:
        raise InstallError("--token must be a bootstrap token <6 [a-z0-9]>.<16 [a-z0-9]> (`shipmate token create`)")
    if options.token and not (options.ca_cert_hash or options.ca_file):
        raise InstallError("--token needs --ca-cert-hash sha256:... or --ca-file to trust the cluster CA "
                           "(`shipmate token create --print-join-command` prints both)")


def agent_config_files(options: AgentOptions, systemd_cgroup: bool) -> list[FileSpec]:
    """Everything but the unit: env file (0600: it may hold the join token), registries.yaml,
    containerd config (the multi-node harness writes these per simulated node). The agent writes its
    own kubeconfig (`<root-dir>/kubelet.kubeconfig`) when it joins."""
    check_agent_options(options)
    paths = options.paths
    files = [FileSpec(f"{paths.etc_dir}/agent.env", env_file("SHIPMATE_AGENT_ARGS", agent_args(options)), 0o600)]
    if options.registry_mirror:
        import yaml
        files.append(FileSpec(paths.registries, yaml.safe_dump(registries_document(options.registry_mirror))))
    return files + containerd_files(options, systemd_cgroup)


# ---------------------------------------------------------------- applying

def under_root(root: str, path: str) -> Path:
    return Path(root) / path.lstrip("/")


def write_files(files: list[FileSpec], root: str = "/") -> list[str]:
    """Writes each file atomically under `root`; returns the (system) paths that changed."""
    return [spec.path for spec in files
            if containerd_conf.write_if_changed(under_root(root, spec.path), spec.text, spec.mode)]


def systemd_is_init(root: str = "/") -> bool:
    return root == "/" and os.path.isdir("/run/systemd/system")


def _systemctl(*args: str) -> None:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise InstallError(f"systemctl {' '.join(args)} failed: {result.stderr.strip()}")


def activate(unit: str, changed: list[str]) -> None:
    """daemon-reload, restart containerd when its config changed, enable the unit and start it
    (restart it when its unit or env file changed). The agent's start is not waited
    for: it is READY only once the server has registered its Node, which may be much later."""
    _systemctl("daemon-reload")
    if any(path.startswith("/etc/containerd/") for path in changed):
        _systemctl("enable", "containerd.service")
        _systemctl("restart", "containerd.service")
    _systemctl("enable", unit)
    verb = "restart" if any(path.endswith((unit, ".env")) for path in changed) else "start"
    _systemctl(*(["--no-block"] if unit == AGENT_UNIT else []), verb, unit)


def default_shipmate_bin() -> str:
    beside = Path(sys.executable).parent / "shipmate"
    return str(beside) if beside.exists() else (shutil.which("shipmate") or DEFAULT_SHIPMATE_BIN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shipmate install",
                                     description="install shipmate's systemd units and config, and start them")
    sub = parser.add_subparsers(dest="role", required=True)
    for role in ("server", "agent"):
        p = sub.add_parser(role)
        p.add_argument("--root", default="/", help="install into this directory tree (no systemctl)")
        p.add_argument("--no-start", action="store_true", help="write the files only")
        p.add_argument("--shipmate-bin", default=None, help="the shipmate executable the unit runs")
        p.add_argument("--cluster-cidr", default="10.244.0.0/16")
        p.add_argument("--extra-args", default="", help="more daemon flags, space separated")
    server = sub.choices["server"]
    server.add_argument("--bind-address", default="0.0.0.0")
    server.add_argument("--port", type=int, default=6443)
    server.add_argument("--data-dir", default="/var/lib/shipmate/server")
    server.add_argument("--node-cidr-mask-size", type=int, default=24)
    agent = sub.choices["agent"]
    agent.add_argument("--server", required=True,
                       help="API server URL, e.g. https://192.168.56.10:6443 (several comma-separated: failover)")
    agent.add_argument("--token", default="", help="bootstrap token to join with (`shipmate token create`)")
    agent.add_argument("--ca-cert-hash", default="", help="sha256:<hex> of the cluster CA's public key")
    agent.add_argument("--ca-file", default="", help="the cluster CA certificate (PEM) on this node")
    agent.add_argument("--node-name", default="")
    agent.add_argument("--node-ip", default="")
    agent.add_argument("--registry-mirror", default="", help=f"URL serving {LOCAL_REGISTRY}'s images to this node")
    # runc's systemd driver wants "slice:prefix:name" cgroup paths, which needs a `.slice` cgroup
    # parent from the agent; the agent sets none yet, so cgroupfs is the working default.
    agent.add_argument("--systemd-cgroup", choices=("auto", "true", "false"), default="false",
                       help="runc's systemd cgroup driver (auto: when systemd is PID 1)")
    args = parser.parse_args(argv)

    shipmate_bin = args.shipmate_bin or default_shipmate_bin()
    extra = tuple(args.extra_args.split())
    try:
        if args.role == "server":
            options = ServerOptions(bind_address=args.bind_address, port=args.port, data_dir=args.data_dir,
                                    cluster_cidr=args.cluster_cidr, node_cidr_mask_size=args.node_cidr_mask_size,
                                    extra_args=extra)
            files, unit = server_files(options, shipmate_bin), SERVER_UNIT
        else:
            systemd_cgroup = (systemd_is_init(args.root) if args.systemd_cgroup == "auto"
                              else args.systemd_cgroup == "true")
            options = AgentOptions(server=args.server, token=args.token, ca_cert_hash=args.ca_cert_hash,
                                   ca_file=args.ca_file, node_name=args.node_name,
                                   node_ip=args.node_ip, cluster_cidr=args.cluster_cidr,
                                   registry_mirror=args.registry_mirror, extra_args=extra)
            files, unit = agent_files(options, systemd_cgroup, shipmate_bin), AGENT_UNIT
        changed = write_files(files, args.root)
        for path in changed:
            print(f"wrote {under_root(args.root, path)}")
        if args.role == "agent":
            crictl = under_root(args.root, crictl_config.CRICTL_CONFIG)
            outcome = crictl_config.write_crictl_config(crictl, f"unix://{options.paths.containerd_socket}")
            if outcome == "written":
                print(f"wrote {crictl}")
            elif outcome == "kept":
                print(f"kept {crictl}: not written by shipmate")
        if args.no_start:
            return 0
        if not systemd_is_init(args.root):
            where = "--root was given" if args.root != "/" else "systemd is not PID 1 on this machine"
            print(f"shipmate install: {where}: files written, {unit} not started. Start it with "
                  f"`systemctl daemon-reload && systemctl enable --now {unit}` on a systemd host.", file=sys.stderr)
            return 0
        activate(unit, changed)
        print(f"{unit} enabled and started" if unit == SERVER_UNIT else
              f"{unit} enabled and starting; it is active once its Node is registered "
              f"(journalctl -u {unit} -f)")
    except InstallError as error:
        print(f"shipmate install: {error}", file=sys.stderr)
        return 1
    return 0
