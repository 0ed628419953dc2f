"""Pod spec → CRI PodSandboxConfig, as kubelet builds it; pure."""
from __future__ import annotations

import os
from typing import Any

from cri.gen import api_pb2

from agent import labels
from agent.dns import ResolvConf
from agent.seccomp import DEFAULT_SECCOMP_ROOT, InvalidProfile, seccomp_profile

PROTOCOLS = {"TCP": api_pb2.TCP, "UDP": api_pb2.UDP, "SCTP": api_pb2.SCTP}
MAX_HOSTNAME = 63


def pod_log_directory(pod: dict[str, Any], root: str = "/var/log/pods") -> str:
    meta = pod["metadata"]
    return os.path.join(root, f"{meta['namespace']}_{meta['name']}_{meta['uid']}")


def pod_hostname(pod: dict[str, Any]) -> str:
    """spec.hostname, else the pod name cut to 63 characters without a trailing '-' or '.'."""
    spec = pod.get("spec", {})
    name = spec.get("hostname") or pod["metadata"]["name"]
    return name[:MAX_HOSTNAME].rstrip("-.")


def pod_host_and_domain(pod: dict[str, Any], cluster_domain: str) -> tuple[str, str]:
    """GeneratePodHostNameAndDomain: (hostname, `<subdomain>.<namespace>.svc.<cluster domain>` or "")."""
    subdomain = pod.get("spec", {}).get("subdomain") or ""
    domain = f"{subdomain}.{pod['metadata']['namespace']}.svc.{cluster_domain}" if subdomain else ""
    return pod_hostname(pod), domain


def managed_hosts_file(pod: dict[str, Any], pod_ips: list[str], cluster_domain: str, node_hosts: str) -> str:
    """kubelet's /etc/hosts for a container: its own for a pod network (the pod's names on each pod
    IP), the node's file for hostNetwork; hostAliases appended."""
    spec = pod.get("spec", {})
    if spec.get("hostNetwork"):
        text = "# Kubernetes-managed hosts file (host network).\n" + node_hosts
    else:
        hostname, domain = pod_host_and_domain(pod, cluster_domain)
        names = f"{hostname}.{domain}\t{hostname}" if domain else hostname
        text = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
        text += "".join(f"{ip}\t{names}\n" for ip in pod_ips)
    aliases = spec.get("hostAliases") or []
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        text += "".join(f"{a.get('ip', '')}\t{chr(9).join(a.get('hostnames') or [])}\n" for a in aliases)
    return text


def pod_labels(pod: dict[str, Any], node_name: str) -> dict[str, str]:
    meta = pod["metadata"]
    result = dict(meta.get("labels") or {})
    result.update({labels.POD_NAME: meta["name"], labels.POD_NAMESPACE: meta["namespace"],
                   labels.POD_UID: meta["uid"], labels.NODE_NAME: node_name})
    return result


def namespace_options(pod: dict[str, Any]) -> api_pb2.NamespaceOption:
    spec = pod.get("spec", {})
    pid = api_pb2.CONTAINER
    if spec.get("hostPID"):
        pid = api_pb2.NODE
    elif spec.get("shareProcessNamespace"):
        pid = api_pb2.POD
    return api_pb2.NamespaceOption(
        network=api_pb2.NODE if spec.get("hostNetwork") else api_pb2.POD,
        pid=pid,
        ipc=api_pb2.NODE if spec.get("hostIPC") else api_pb2.POD)


def port_mappings(pod: dict[str, Any]) -> list[api_pb2.PortMapping]:
    mappings = []
    spec = pod.get("spec", {})
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for port in container.get("ports") or []:
            mappings.append(api_pb2.PortMapping(
                protocol=PROTOCOLS.get(port.get("protocol") or "TCP", api_pb2.TCP),
                container_port=int(port["containerPort"]),
                host_port=int(port.get("hostPort") or 0),
                host_ip=port.get("hostIP") or ""))
    return mappings


def sandbox_config(pod: dict[str, Any], *, attempt: int, node_name: str, dns: ResolvConf,
                   log_root: str = "/var/log/pods", seen: str = "",
                   seccomp_root: str = DEFAULT_SECCOMP_ROOT) -> api_pb2.PodSandboxConfig:
    meta, spec = pod["metadata"], pod.get("spec", {})
    annotations = dict(meta.get("annotations") or {})
    annotations.setdefault(labels.CONFIG_SOURCE, "api")
    if seen:
        annotations.setdefault(labels.CONFIG_SEEN, seen)   # a static pod keeps the time its file was seen
    security = spec.get("securityContext") or {}
    sandbox_security = api_pb2.LinuxSandboxSecurityContext(namespace_options=namespace_options(pod))
    if security.get("runAsUser") is not None:
        sandbox_security.run_as_user.value = int(security["runAsUser"])
    if security.get("runAsGroup") is not None:
        sandbox_security.run_as_group.value = int(security["runAsGroup"])
    if security.get("fsGroup") is not None:
        sandbox_security.supplemental_groups.append(int(security["fsGroup"]))
    sandbox_security.supplemental_groups.extend(int(g) for g in security.get("supplementalGroups") or [])
    try:
        sandbox_security.seccomp.CopyFrom(seccomp_profile(security.get("seccompProfile"), seccomp_root))
    except InvalidProfile:
        # Its containers are refused (CreateContainerConfigError); the pause container gets the
        # runtime's default filter rather than none.
        sandbox_security.seccomp.profile_type = api_pb2.SecurityProfile.RuntimeDefault
    sandbox_security.privileged = any((c.get("securityContext") or {}).get("privileged")
                                      for c in (spec.get("initContainers") or []) + (spec.get("containers") or []))
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=meta["name"], uid=meta["uid"],
                                            namespace=meta["namespace"], attempt=attempt),
        hostname="" if spec.get("hostNetwork") else pod_hostname(pod),
        log_directory=pod_log_directory(pod, log_root),
        dns_config=api_pb2.DNSConfig(servers=dns.servers, searches=dns.searches, options=dns.options),
        port_mappings=port_mappings(pod),
        labels=pod_labels(pod, node_name),
        annotations=annotations,
        linux=api_pb2.LinuxPodSandboxConfig(
            security_context=sandbox_security,
            sysctls={s["name"]: str(s.get("value", "")) for s in security.get("sysctls") or []}),
    )
