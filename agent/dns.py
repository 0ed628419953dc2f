"""Pod DNS configuration (dnsPolicy + spec.dnsConfig) from the host's resolv.conf; pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_SEARCHES = 32


@dataclass
class ResolvConf:
    servers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse_resolv_conf(text: str) -> ResolvConf:
    conf = ResolvConf()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        key, values = words[0], words[1:]
        if key == "nameserver" and values:
            conf.servers.append(values[0])
        elif key in ("search", "domain"):
            conf.searches = list(values)   # the last search/domain line wins, as in libc
        elif key == "options":
            conf.options.extend(values)
    return conf


def pod_dns(pod: dict[str, Any], host: ResolvConf,
            cluster_dns: list[str] | None = None, cluster_domain: str = "cluster.local") -> ResolvConf:
    """kubelet's rules: ClusterFirst uses the cluster DNS when one is configured and falls back to
    the host's resolv.conf otherwise (as does hostNetwork without ClusterFirstWithHostNet); None
    uses only spec.dnsConfig, which is merged on top in every case."""
    spec = pod.get("spec", {})
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    if policy == "ClusterFirst" and host_network:
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster_dns:
        policy = "Default"

    if policy == "None":
        result = ResolvConf()
    elif policy == "Default":
        result = ResolvConf(list(host.servers), list(host.searches), list(host.options))
    else:
        namespace = pod.get("metadata", {}).get("namespace", "default")
        result = ResolvConf(list(cluster_dns or []),
                            [f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
                            + host.searches, ["ndots:5"])

    extra = spec.get("dnsConfig") or {}
    result.servers = _unique(result.servers + list(extra.get("nameservers") or []))
    result.searches = _unique(result.searches + list(extra.get("searches") or []))[:MAX_SEARCHES]
    result.options = _merge_options(result.options, extra.get("options") or [])
    return result


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _merge_options(base: list[str], overrides: list[dict[str, Any]]) -> list[str]:
    merged: dict[str, str | None] = {}
    for option in base:
        name, _, value = option.partition(":")
        merged[name] = value or None
    for option in overrides:
        merged[option["name"]] = option.get("value")
    return [name if value is None else f"{name}:{value}" for name, value in merged.items()]
