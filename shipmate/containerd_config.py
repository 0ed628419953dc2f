"""containerd's configuration for shipmate: config.toml (CRI) and one hosts.toml per registry.

`render()` is pure: a registries.yaml document (k3s's shape) in, file texts out. `main()` reads
/etc/shipmate/registries.yaml, renders, and writes the files atomically, only those that changed.

registries.yaml (every key optional):

    mirrors:
      docker.io:
        endpoint: ["http://127.0.0.1:5000"]
    configs:
      registry.example.com:5000:
        tls: {insecure_skip_verify: false, ca_file: ..., cert_file: ..., key_file: ...}
        auth: {username: ..., password: ..., auth: ..., identitytoken: ...}

A mirror named "*" applies to every registry (containerd's `_default` host directory).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

LOCAL_REGISTRY = "127.0.0.1:5000"
SANDBOX_IMAGE = f"{LOCAL_REGISTRY}/shipmate/pause:1.0"
CERTS_DIR = "/etc/containerd/certs.d"
CNI_BIN_DIR = "/opt/cni/bin"
CNI_CONF_DIR = "/etc/cni/net.d"
DEFAULT_SERVERS = {"docker.io": "https://registry-1.docker.io"}
WILDCARD = "*"
WILDCARD_DIR = "_default"
HOSTS_HEADER = "# Written by `shipmate containerd-config`; edit /etc/shipmate/registries.yaml instead.\n"

_MIRROR_KEYS = {"endpoint"}
_CONFIG_KEYS = {"tls", "auth"}
_TLS_KEYS = {"insecure_skip_verify", "ca_file", "cert_file", "key_file"}
_AUTH_KEYS = {"username", "password", "auth", "identitytoken"}


class RegistriesError(ValueError):
    """registries.yaml has an unknown key or a value of the wrong shape."""


@dataclasses.dataclass(frozen=True)
class TLSConfig:
    insecure_skip_verify: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    username: str = ""
    password: str = ""
    auth: str = ""
    identitytoken: str = ""


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
    tls: TLSConfig | None = None
    auth: AuthConfig | None = None


@dataclasses.dataclass(frozen=True)
class Registries:
    mirrors: dict[str, tuple[str, ...]]
    configs: dict[str, RegistryConfig]


@dataclasses.dataclass(frozen=True)
class RenderedConfig:
    config_toml: str
    hosts: dict[str, str]          # host directory name under certs.d → hosts.toml text


# ---------------------------------------------------------------- parsing registries.yaml

def _mapping(value: object, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RegistriesError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise RegistriesError(f"{where}: key {key!r} must be a string")
    return value


def _check_keys(value: dict, allowed: set[str], where: str) -> None:
    for key in value:
        if key not in allowed:
            raise RegistriesError(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _string(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RegistriesError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _registry_host(name: str, where: str) -> str:
    if name == WILDCARD:
        return name
    if not name or "/" in name or "://" in name or name.strip() != name:
        raise RegistriesError(f"{where}: {name!r} is not a registry host[:port]")
    return name


def _endpoint(url: object, where: str) -> str:
    text = _string(url, where)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistriesError(f"{where}: {text!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise RegistriesError(f"{where}: {text!r} must not have a query or fragment")
    return text.rstrip("/")


def parse_registries(document: object) -> Registries:
    """Validate a loaded registries.yaml document into typed form."""
    top = _mapping(document, "registries.yaml")
    _check_keys(top, {"mirrors", "configs"}, "registries.yaml")
    mirrors: dict[str, tuple[str, ...]] = {}
    for name, mirror in _mapping(top.get("mirrors"), "mirrors").items():
        where = f"mirrors.{name}"
        _registry_host(name, where)
        mirror = _mapping(mirror, where)
        if "rewrite" in mirror:
            raise RegistriesError(f"{where}.rewrite: not supported (containerd 1.6 hosts.toml has no rewrites)")
        _check_keys(mirror, _MIRROR_KEYS, where)
        endpoints = mirror.get("endpoint") or []
        if isinstance(endpoints, str) or not isinstance(endpoints, list):
            raise RegistriesError(f"{where}.endpoint: expected a list of URLs")
        mirrors[name] = tuple(_endpoint(url, f"{where}.endpoint[{i}]") for i, url in enumerate(endpoints))
    configs: dict[str, RegistryConfig] = {}
    for name, config in _mapping(top.get("configs"), "configs").items():
        where = f"configs.{name}"
        _registry_host(name, where)
        config = _mapping(config, where)
        _check_keys(config, _CONFIG_KEYS, where)
        tls = auth = None
        if config.get("tls") is not None:
            raw = _mapping(config["tls"], f"{where}.tls")
            _check_keys(raw, _TLS_KEYS, f"{where}.tls")
            skip = raw.get("insecure_skip_verify", False)
            if not isinstance(skip, bool):
                raise RegistriesError(f"{where}.tls.insecure_skip_verify: expected true or false")
            tls = TLSConfig(skip, *(_string(raw.get(k), f"{where}.tls.{k}") for k in ("ca_file", "cert_file", "key_file")))
            if bool(tls.cert_file) != bool(tls.key_file):
                raise RegistriesError(f"{where}.tls: cert_file and key_file must be given together")
        if config.get("auth") is not None:
            raw = _mapping(config["auth"], f"{where}.auth")
            _check_keys(raw, _AUTH_KEYS, f"{where}.auth")
            auth = AuthConfig(*(_string(raw.get(k), f"{where}.auth.{k}") for k in ("username", "password", "auth", "identitytoken")))
        configs[name] = RegistryConfig(tls, auth)
    return Registries(mirrors, configs)


# ---------------------------------------------------------------- rendering TOML

def _toml_string(value: str) -> str:
    # A JSON string (without \u escapes for non-ASCII) is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=False)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot render {value!r} as TOML")


def _table(header: str, values: dict[str, object]) -> str:
    lines = [f"[{header}]"] if header else []
    lines += [f"  {key} = {_toml_value(value)}" if header else f"{key} = {_toml_value(value)}"
              for key, value in values.items()]
    return "\n".join(lines)


def _tls_settings(tls: TLSConfig | None) -> dict[str, object]:
    if tls is None:
        return {}
    settings: dict[str, object] = {}
    if tls.insecure_skip_verify:
        settings["skip_verify"] = True
    if tls.ca_file:
        settings["ca"] = tls.ca_file
    if tls.cert_file:
        settings["client"] = [[tls.cert_file, tls.key_file]]
    return settings


def _host_key(url: str) -> str:
    return urlsplit(url).netloc


def _host_entry(endpoint: str, configs: dict[str, RegistryConfig]) -> tuple[str, dict[str, object]]:
    """A mirror endpoint as a hosts.toml [host."URL"] table; a path other than /v2 is kept verbatim."""
    parts = urlsplit(endpoint)
    settings: dict[str, object] = {"capabilities": ["pull", "resolve"]}
    url = endpoint
    if parts.path not in ("", "/v2"):
        url = endpoint + "/v2"
    if parts.path not in ("",):
        settings["override_path"] = True
    config = configs.get(_host_key(endpoint))
    settings.update(_tls_settings(config.tls if config else None))
    return url, settings


def _server_url(registry: str) -> str:
    if registry in DEFAULT_SERVERS:
        return DEFAULT_SERVERS[registry]
    if registry == LOCAL_REGISTRY:
        return f"http://{registry}"
    return f"https://{registry}"


def render_hosts_toml(registry: str, endpoints: tuple[str, ...], configs: dict[str, RegistryConfig]) -> str:
    sections: list[str] = []
    top: dict[str, object] = {}
    if registry != WILDCARD:
        top["server"] = _server_url(registry)
        config = configs.get(registry)
        top.update(_tls_settings(config.tls if config else None))
    if top:
        sections.append(_table("", top))
    for endpoint in endpoints:
        url, settings = _host_entry(endpoint, configs)
        sections.append(_table(f"host.{_toml_string(url)}", settings))
    return HOSTS_HEADER + "\n\n".join(sections) + "\n"


def systemd_cgroup_default() -> bool:
    """runc's systemd cgroup driver only when systemd manages this host."""
    return os.path.isdir("/run/systemd/system")


def render_config_toml(registries: Registries, systemd_cgroup: bool, certs_dir: str = CERTS_DIR,
                       cni_bin_dir: str = CNI_BIN_DIR, cni_conf_dir: str = CNI_CONF_DIR) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    sections = [
        "# Written by `shipmate containerd-config`; changes here are overwritten by `make up`.\n"
        + _table("", {"version": 2}),
        _table(cri, {"sandbox_image": SANDBOX_IMAGE, "restrict_oom_score_adj": True}),
        _table(f"{cri}.cni", {"bin_dir": cni_bin_dir, "conf_dir": cni_conf_dir}),
        _table(f"{cri}.containerd", {"default_runtime_name": "runc"}),
        _table(f"{cri}.containerd.runtimes.runc", {"runtime_type": "io.containerd.runc.v2"}),
        _table(f"{cri}.containerd.runtimes.runc.options", {"SystemdCgroup": systemd_cgroup}),
        _table(f"{cri}.registry", {"config_path": certs_dir}),
    ]
    # containerd 1.6 reads credentials from the CRI registry configs even with config_path set;
    # hosts.toml has no place for them.
    for host, config in sorted(registries.configs.items()):
        if config.auth is None or host == WILDCARD:
            continue
        auth = {key: value for key, value in dataclasses.asdict(config.auth).items() if value}
        sections.append(_table(f"{cri}.registry.configs.{_toml_string(host)}.auth", auth))
    return "\n\n".join(sections) + "\n"


def render(document: object, systemd_cgroup: bool = False, certs_dir: str = CERTS_DIR,
           cni_bin_dir: str = CNI_BIN_DIR, cni_conf_dir: str = CNI_CONF_DIR) -> RenderedConfig:
    """registries.yaml document → config.toml text and {host dir: hosts.toml text}."""
    registries = parse_registries(document)
    hosts: dict[str, str] = {}
    targets: dict[str, tuple[str, ...]] = {LOCAL_REGISTRY: (f"http://{LOCAL_REGISTRY}",)}
    for registry in registries.configs:
        if registry != WILDCARD:
            targets.setdefault(registry, ())
    for registry, endpoints in registries.mirrors.items():
        targets[registry] = endpoints
    for registry, endpoints in sorted(targets.items()):
        directory = WILDCARD_DIR if registry == WILDCARD else registry
        hosts[directory] = render_hosts_toml(registry, endpoints, registries.configs)
    return RenderedConfig(render_config_toml(registries, systemd_cgroup, certs_dir, cni_bin_dir, cni_conf_dir), hosts)


# ---------------------------------------------------------------- applying

def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Atomically replace `path` with `text` (write + rename); False when it already held it."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return True


# The public registries whose images manifests name most (pause images included) that a default mirror serves.
DEFAULT_MIRRORED = ("docker.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io")


def load_registries(path: Path, default_mirror: str | None = None) -> object:
    """The registries document of `path`; without that file, docker.io, registry.k8s.io, k8s.gcr.io and gcr.io are
    mirrored to default_mirror (when given): the offline images answer `image: busybox` or
    `registry.k8s.io/pause:3.9`, and containerd falls back to the registry itself for any image the mirror lacks.
    A file the user wrote is used as it is."""
    import yaml
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {"mirrors": {name: {"endpoint": [default_mirror]} for name in DEFAULT_MIRRORED}} \
            if default_mirror else {}
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise RegistriesError(f"{path}: not valid YAML: {error}") from error


def apply(rendered: RenderedConfig, config_path: Path, certs_dir: Path) -> list[Path]:
    """Write the rendered files and remove hosts.toml files we wrote earlier that are no longer
    wanted (a mirror dropped from registries.yaml); returns the paths that changed."""
    changed = []
    for stale in sorted(certs_dir.glob("*/hosts.toml")):
        if stale.parent.name not in rendered.hosts and stale.read_text().startswith(HOSTS_HEADER):
            stale.unlink()
            changed.append(stale)
    if write_if_changed(config_path, rendered.config_toml):
        changed.append(config_path)
    for host, text in sorted(rendered.hosts.items()):
        target = certs_dir / host / "hosts.toml"
        if write_if_changed(target, text):
            changed.append(target)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shipmate containerd-config",
                                     description="write containerd's config.toml and registry hosts.toml files")
    parser.add_argument("--registries", type=Path, default=Path("/etc/shipmate/registries.yaml"))
    parser.add_argument("--out", type=Path, default=Path("/etc/containerd/config.toml"))
    parser.add_argument("--certs-dir", type=Path, default=Path(CERTS_DIR))
    parser.add_argument("--systemd-cgroup", choices=("auto", "true", "false"), default="auto")
    parser.add_argument("--cni-bin-dir", default=CNI_BIN_DIR)
    parser.add_argument("--cni-conf-dir", default=CNI_CONF_DIR)
    parser.add_argument("--default-mirror", default=None, metavar="URL",
                        help="without a registries file, mirror docker.io to URL (make up: the local registry)")
    args = parser.parse_args(argv)
    systemd_cgroup = systemd_cgroup_default() if args.systemd_cgroup == "auto" else args.systemd_cgroup == "true"
    try:
        rendered = render(load_registries(args.registries, args.default_mirror), systemd_cgroup, str(args.certs_dir),
                          args.cni_bin_dir, args.cni_conf_dir)
    except RegistriesError as error:
        print(f"shipmate containerd-config: {args.registries}: {error}", file=sys.stderr)
        return 1
    for path in apply(rendered, args.out, args.certs_dir):
        print(f"wrote {path}")
    return 0
