"""The Pod Security Standards as upstream's k8s.io/pod-security-admission/policy checks them (Kubernetes 1.35).

Pure: `evaluate(level_version, pod_metadata, pod_spec)` returns the violations, each with upstream's
forbidden reason ("privileged", "host namespaces", ...) and detail, in upstream's order: baseline checks
sorted by check ID, then restricted checks sorted by ID. At `restricted`, some restricted checks override
the baseline check they tighten (restrictedVolumes → hostPathVolumes, capabilities_restricted →
capabilities_baseline, seccompProfile_restricted → seccompProfile_baseline, procMount_restricted →
procMount). A check has versions: a namespace pinned to `v1.N` gets each check as it was in 1.N;
versions newer than the newest check revision (and `latest`) get the newest.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator

Obj = dict[str, Any]

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)


@dataclass(frozen=True)
class Version:
    minor: int | None = None  # None: "latest"

    @property
    def latest(self) -> bool:
        return self.minor is None

    def __str__(self) -> str:
        return "latest" if self.minor is None else f"v1.{self.minor}"


LATEST = Version()


@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: Version = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


@dataclass(frozen=True)
class Violation:
    reason: str  # upstream's ForbiddenReason, e.g. "hostPath volumes"
    detail: str = ""  # upstream's ForbiddenDetail, e.g. 'volume "v"'


CheckFn = Callable[[Obj, Obj], "Violation | None"]


@dataclass(frozen=True)
class CheckVersion:
    minimum_minor: int
    check: CheckFn
    overrides: tuple[str, ...] = ()  # baseline check IDs this restricted revision replaces


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    versions: tuple[CheckVersion, ...]  # increasing minimum_minor

    def at(self, minor: int) -> CheckVersion | None:
        chosen = None
        for version in self.versions:
            if version.minimum_minor <= minor:
                chosen = version
        return chosen


# helpers ---------------------------------------------------------------------------------------
def _join_quote(items: list[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _go_quote(text: str) -> str:
    """Go's %q for the strings pod fields hold."""
    return json.dumps(text, ensure_ascii=False)


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, containers, then ephemeral containers, as upstream's visitContainers."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _list(spec.get(key)):
            if isinstance(container, dict):
                yield container


def _name(container: Obj) -> str:
    return str(container.get("name") or "")


def _security_context(obj: Obj) -> Obj | None:
    value = obj.get("securityContext")
    return value if isinstance(value, dict) else None


def _containers_phrase(names: list[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_join_quote(names)}"


def _windows(spec: Obj) -> bool:
    return _dict(spec.get("os")).get("name") == "windows"


def _user_namespaced(spec: Obj) -> bool:
    return spec.get("hostUsers") is False


# baseline checks -------------------------------------------------------------------------------
_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
_APPARMOR_TYPES = ("RuntimeDefault", "Localhost")


def _allowed_apparmor_annotation(value: str) -> bool:
    return value in ("", "runtime/default") or value.startswith("localhost/")


def app_armor_profile(meta: Obj, spec: Obj) -> Violation | None:
    setters: list[str] = []
    bad_types: set[str] = set()
    pod_profile = _dict(spec.get("securityContext")).get("appArmorProfile")
    if pod_profile is not None and _dict(pod_profile).get("type") not in _APPARMOR_TYPES:
        setters.append("pod")
        bad_types.add(str(_dict(pod_profile).get("type") or ""))
    bad_containers = []
    for container in _containers(spec):
        context = _security_context(container) or {}
        if context.get("appArmorProfile") is not None:
            profile_type = _dict(context["appArmorProfile"]).get("type")
            if profile_type not in _APPARMOR_TYPES:
                bad_containers.append(_name(container))
                bad_types.add(str(profile_type or ""))
    if bad_containers:
        setters.append(_containers_phrase(bad_containers))
    annotations = sorted(f"{key}={_go_quote(str(value))}" for key, value in _dict(meta.get("annotations")).items()
                         if key.startswith(_APPARMOR_ANNOTATION_PREFIX)
                         and not _allowed_apparmor_annotation(str(value)))
    bad_values = sorted(bad_types) + annotations
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return Violation(_plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_values)),
                     f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(bad_values)}")


_BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def capabilities_baseline(meta: Obj, spec: Obj) -> Violation | None:
    bad_containers, capabilities = [], set()
    for container in _containers(spec):
        context = _security_context(container)
        if context is None or not isinstance(context.get("capabilities"), dict):
            continue
        added = [str(c) for c in _list(context["capabilities"].get("add")) if c not in _BASELINE_CAPABILITIES]
        if added:
            bad_containers.append(_name(container))
            capabilities.update(added)
    if not bad_containers:
        return None
    return Violation("non-default capabilities", f"{_containers_phrase(bad_containers)} must not include "
                     f"{_join_quote(sorted(capabilities))} in securityContext.capabilities.add")


def host_namespaces(meta: Obj, spec: Obj) -> Violation | None:
    used = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field) is True]
    return Violation("host namespaces", ", ".join(used)) if used else None


def host_path_volumes(meta: Obj, spec: Obj) -> Violation | None:
    names = [str(_dict(v).get("name") or "") for v in _list(spec.get("volumes")) if _dict(v).get("hostPath") is not None]
    if not names:
        return None
    return Violation("hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}")


def host_ports(meta: Obj, spec: Obj) -> Violation | None:
    bad_containers, ports = [], set()
    for container in _containers(spec):
        used = [str(_dict(p).get("hostPort")) for p in _list(container.get("ports")) if _dict(p).get("hostPort")]
        if used:
            bad_containers.append(_name(container))
            ports.update(used)
    if not bad_containers:
        return None
    return Violation("hostPort", f"{_containers_phrase(bad_containers)} {_plural('uses', 'use', len(bad_containers))} "
                     f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}")


def _handler_hosts(handler: Any) -> list[str]:
    handler = _dict(handler)
    return [str(_dict(handler.get(kind)).get("host")) for kind in ("httpGet", "tcpSocket")
            if _dict(handler.get(kind)).get("host")]


def host_probes_and_host_lifecycle(meta: Obj, spec: Obj) -> Violation | None:
    bad_containers, hosts = set(), set()
    for container in _containers(spec):
        lifecycle = _dict(container.get("lifecycle"))
        handlers = [container.get("livenessProbe"), container.get("readinessProbe"), container.get("startupProbe"),
                    lifecycle.get("postStart"), lifecycle.get("preStop")]
        for handler in handlers:
            found = _handler_hosts(handler)
            if found:
                bad_containers.add(_name(container))
                hosts.update(found)
    if not bad_containers:
        return None
    names = sorted(bad_containers)
    return Violation("probe or lifecycle host",
                     f"{_containers_phrase(names)} {_plural('uses', 'use', len(names))} "
                     f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
                     f"{_join_quote(sorted(hosts))}")


def privileged(meta: Obj, spec: Obj) -> Violation | None:
    names = [_name(c) for c in _containers(spec) if (_security_context(c) or {}).get("privileged") is True]
    if not names:
        return None
    return Violation("privileged", f"{_containers_phrase(names)} must not set securityContext.privileged=true")


def proc_mount(meta: Obj, spec: Obj) -> Violation | None:
    bad_containers, types = [], set()
    for container in _containers(spec):
        value = (_security_context(container) or {}).get("procMount")
        if value is not None and value != "Default":
            bad_containers.append(_name(container))
            types.add(str(value))
    if not bad_containers:
        return None
    return Violation("procMount", f"{_containers_phrase(bad_containers)} must not set securityContext.procMount to "
                     f"{_join_quote(sorted(types))}")


def proc_mount_relaxed(meta: Obj, spec: Obj) -> Violation | None:
    """1.35: a pod in a user namespace (hostUsers: false) may unmask /proc at baseline."""
    return None if _user_namespaced(spec) else proc_mount(meta, spec)


def _selinux_options(allowed_types: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Violation | None:
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(options: Obj) -> bool:
            ok = True
            if str(options.get("type") or "") not in allowed_types:
                ok = False
                bad_types.add(str(options.get("type") or ""))
            for key in ("user", "role"):
                if options.get(key):
                    ok, flags[key] = False, True
            return ok

        setters = []
        pod_options = _dict(spec.get("securityContext")).get("seLinuxOptions")
        if isinstance(pod_options, dict) and not valid(pod_options):
            setters.append("pod")
        bad_containers = [_name(c) for c in _containers(spec)
                          if isinstance((_security_context(c) or {}).get("seLinuxOptions"), dict)
                          and not valid(_security_context(c)["seLinuxOptions"])]
        if bad_containers:
            setters.append(_containers_phrase(bad_containers))
        if not setters:
            return None
        data = []
        if bad_types:
            data.append(f"{_plural('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
        data += [f"{key} may not be set" for key in ("user", "role") if flags[key]]
        return Violation("seLinuxOptions", f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
                         f"{'; '.join(data)}")
    return check


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
_SECCOMP_TYPES = ("RuntimeDefault", "Localhost")


def seccomp_profile_baseline_annotations(meta: Obj, spec: Obj) -> Violation | None:
    """Policy versions before 1.19: the alpha annotations."""
    annotations = _dict(meta.get("annotations"))

    def allowed(value: str) -> bool:
        return value in ("runtime/default", "docker/default") or value.startswith("localhost/")
    keys = [_SECCOMP_POD_ANNOTATION] + [_SECCOMP_CONTAINER_ANNOTATION_PREFIX + _name(c) for c in _containers(spec)]
    forbidden = sorted({f"{key}={_go_quote(str(annotations[key]))}" for key in keys
                        if key in annotations and not allowed(str(annotations[key]))})
    if not forbidden:
        return None
    return Violation("seccompProfile", f"forbidden {_plural('annotation', 'annotations', len(forbidden))} "
                     f"{', '.join(forbidden)}")


def _seccomp(require: bool) -> CheckFn:
    """seccompProfile_baseline (require=False: set values must be RuntimeDefault/Localhost) and
    seccompProfile_restricted (require=True: every container must end up with one, from itself or the pod)."""
    def check(meta: Obj, spec: Obj) -> Violation | None:
        setters, bad_values = [], set()
        pod_set = False
        pod_profile = _dict(spec.get("securityContext")).get("seccompProfile")
        if isinstance(pod_profile, dict):
            if pod_profile.get("type") not in _SECCOMP_TYPES:
                setters.append("pod")
                bad_values.add(str(pod_profile.get("type") or ""))
            else:
                pod_set = True
        explicit, implicit = [], []
        for container in _containers(spec):
            profile = (_security_context(container) or {}).get("seccompProfile")
            if isinstance(profile, dict):
                if profile.get("type") not in _SECCOMP_TYPES:
                    explicit.append(_name(container))
                    bad_values.add(str(profile.get("type") or ""))
            elif not pod_set:
                implicit.append(_name(container))
        if explicit:
            setters.append(_containers_phrase(explicit))
        if setters:
            return Violation("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type "
                             f"to {_join_quote(sorted(bad_values))}")
        if require and implicit:
            return Violation("seccompProfile", f"pod or {_containers_phrase(implicit)} must set "
                             'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')
        return None
    return check


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Violation | None:
        names = [str(_dict(s).get("name") or "") for s in _list(_dict(spec.get("securityContext")).get("sysctls"))
                 if _dict(s).get("name") not in allowed]
        return Violation("forbidden sysctls", ", ".join(names)) if names else None
    return check


def windows_host_process(meta: Obj, spec: Obj) -> Violation | None:
    def host_process(context: Any) -> bool:
        return _dict(_dict(context).get("windowsOptions")).get("hostProcess") is True
    setters = ["pod"] if host_process(spec.get("securityContext")) else []
    names = [_name(c) for c in _containers(spec) if host_process(c.get("securityContext"))]
    if names:
        setters.append(_containers_phrase(names))
    if not setters:
        return None
    return Violation("hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")


# restricted checks -----------------------------------------------------------------------------
def _unless_windows(check: CheckFn) -> CheckFn:
    """1.25+: Linux-only controls do not apply to pods with spec.os.name windows."""
    def checked(meta: Obj, spec: Obj) -> Violation | None:
        return None if _windows(spec) else check(meta, spec)
    return checked


def _unless_user_namespaced(check: CheckFn) -> CheckFn:
    """1.35+: root inside a user namespace (hostUsers: false) is not root on the node."""
    def checked(meta: Obj, spec: Obj) -> Violation | None:
        return None if _user_namespaced(spec) else check(meta, spec)
    return checked


def allow_privilege_escalation(meta: Obj, spec: Obj) -> Violation | None:
    names = [_name(c) for c in _containers(spec) if (_security_context(c) or {}).get("allowPrivilegeEscalation") is not False]
    if not names:
        return None
    return Violation("allowPrivilegeEscalation != false",
                     f"{_containers_phrase(names)} must set securityContext.allowPrivilegeEscalation=false")


def capabilities_restricted(meta: Obj, spec: Obj) -> Violation | None:
    missing_drop_all, adding, forbidden = [], [], set()
    for container in _containers(spec):
        context = _security_context(container)
        capabilities = context.get("capabilities") if context is not None else None
        if not isinstance(capabilities, dict):
            missing_drop_all.append(_name(container))
            continue
        if "ALL" not in _list(capabilities.get("drop")):
            missing_drop_all.append(_name(container))
        added = [str(c) for c in _list(capabilities.get("add")) if c != "NET_BIND_SERVICE"]
        if added:
            adding.append(_name(container))
            forbidden.update(added)
    details = []
    if missing_drop_all:
        details.append(f'{_containers_phrase(missing_drop_all)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_containers_phrase(adding)} must not include {_join_quote(sorted(forbidden))} in "
                       "securityContext.capabilities.add")
    return Violation("unrestricted capabilities", "; ".join(details)) if details else None


_RESTRICTED_VOLUME_SOURCES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                                        "persistentVolumeClaim", "projected", "secret"})
# The inline sources upstream names, in its order; anything else is "unknown".
_NAMED_VOLUME_SOURCES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
                         "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
                         "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO",
                         "storageos")


def restricted_volumes(meta: Obj, spec: Obj) -> Violation | None:
    bad_volumes, bad_types = [], set()
    for volume in _list(spec.get("volumes")):
        volume = _dict(volume)
        if any(volume.get(source) is not None for source in _RESTRICTED_VOLUME_SOURCES):
            continue
        bad_volumes.append(str(volume.get("name") or ""))
        bad_types.add(next((source for source in _NAMED_VOLUME_SOURCES if volume.get(source) is not None), "unknown"))
    if not bad_volumes:
        return None
    return Violation("restricted volume types",
                     f"{_plural('volume', 'volumes', len(bad_volumes))} {_join_quote(bad_volumes)} "
                     f"{_plural('uses', 'use', len(bad_volumes))} "
                     f"{_plural('restricted volume type', 'restricted volume types', len(bad_types))} "
                     f"{_join_quote(sorted(bad_types))}")


def run_as_non_root(meta: Obj, spec: Obj) -> Violation | None:
    setters = []
    pod_non_root = False
    pod_value = _dict(spec.get("securityContext")).get("runAsNonRoot")
    if pod_value is not None:
        if pod_value is False:
            setters.append("pod")
        else:
            pod_non_root = True
    explicit, implicit = [], []
    for container in _containers(spec):
        value = (_security_context(container) or {}).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(_name(container))
        elif not pod_non_root:
            implicit.append(_name(container))
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return Violation("runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return Violation("runAsNonRoot != true",
                         f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true")
    return None


def _is_root(value: Any) -> bool:
    return value == 0 and value is not False


def run_as_user(meta: Obj, spec: Obj) -> Violation | None:
    setters = ["pod"] if _is_root(_dict(spec.get("securityContext")).get("runAsUser")) else []
    names = [_name(c) for c in _containers(spec) if _is_root((_security_context(c) or {}).get("runAsUser"))]
    if names:
        setters.append(_containers_phrase(names))
    if not setters:
        return None
    return Violation("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


# the registry ----------------------------------------------------------------------------------
_SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                          "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"})
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                                 "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
_SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31 = _SELINUX_TYPES_1_0 | {"container_engine_t"}

CHECKS: tuple[Check, ...] = (
    Check("appArmorProfile", BASELINE, (CheckVersion(0, app_armor_profile),)),
    Check("capabilities_baseline", BASELINE, (CheckVersion(0, capabilities_baseline),)),
    Check("hostNamespaces", BASELINE, (CheckVersion(0, host_namespaces),)),
    Check("hostPathVolumes", BASELINE, (CheckVersion(0, host_path_volumes),)),
    Check("hostPorts", BASELINE, (CheckVersion(0, host_ports),)),
    Check("hostProbesAndHostLifecycle", BASELINE, (CheckVersion(34, host_probes_and_host_lifecycle),)),
    Check("privileged", BASELINE, (CheckVersion(0, privileged),)),
    Check("procMount", BASELINE, (CheckVersion(0, proc_mount), CheckVersion(35, proc_mount_relaxed))),
    Check("seLinuxOptions", BASELINE, (CheckVersion(0, _selinux_options(_SELINUX_TYPES_1_0)),
                                       CheckVersion(31, _selinux_options(_SELINUX_TYPES_1_31)))),
    Check("seccompProfile_baseline", BASELINE, (CheckVersion(0, seccomp_profile_baseline_annotations),
                                                CheckVersion(19, _seccomp(require=False)))),
    Check("sysctls", BASELINE, (CheckVersion(0, _sysctls(_SYSCTLS_1_0)), CheckVersion(27, _sysctls(_SYSCTLS_1_27)),
                                CheckVersion(29, _sysctls(_SYSCTLS_1_29)), CheckVersion(32, _sysctls(_SYSCTLS_1_32)))),
    Check("windowsHostProcess", BASELINE, (CheckVersion(0, windows_host_process),)),
    Check("allowPrivilegeEscalation", RESTRICTED, (CheckVersion(8, allow_privilege_escalation),
                                                   CheckVersion(25, _unless_windows(allow_privilege_escalation)))),
    Check("capabilities_restricted", RESTRICTED, (
        CheckVersion(22, capabilities_restricted, ("capabilities_baseline",)),
        CheckVersion(25, _unless_windows(capabilities_restricted), ("capabilities_baseline",)))),
    Check("procMount_restricted", RESTRICTED, (CheckVersion(35, proc_mount, ("procMount",)),)),
    Check("restrictedVolumes", RESTRICTED, (CheckVersion(0, restricted_volumes, ("hostPathVolumes",)),)),
    Check("runAsNonRoot", RESTRICTED, (CheckVersion(0, run_as_non_root),
                                       CheckVersion(35, _unless_user_namespaced(run_as_non_root)))),
    Check("runAsUser", RESTRICTED, (CheckVersion(23, run_as_user),
                                    CheckVersion(35, _unless_user_namespaced(run_as_user)))),
    Check("seccompProfile_restricted", RESTRICTED, (
        CheckVersion(19, _seccomp(require=True), ("seccompProfile_baseline",)),
        CheckVersion(25, _unless_windows(_seccomp(require=True)), ("seccompProfile_baseline",)))),
)

# The newest policy version any check has a revision for: `latest` and newer versions evaluate as this one.
MAX_MINOR = max(version.minimum_minor for check in CHECKS for version in check.versions)


def _ordered(checks: tuple[Check, ...]) -> list[Check]:
    """Baseline checks by ID, then restricted checks by ID (Go's byte order, as upstream sorts them)."""
    return sorted((c for c in checks if c.level == BASELINE), key=lambda c: c.id.encode()) + \
        sorted((c for c in checks if c.level == RESTRICTED), key=lambda c: c.id.encode())


_ORDERED_CHECKS = _ordered(CHECKS)


def checks_for(level_version: LevelVersion) -> list[tuple[str, CheckFn]]:
    """(check ID, check) evaluated for this level and version, in message order."""
    if level_version.level == PRIVILEGED:
        return []
    version = level_version.version
    minor = MAX_MINOR if version.latest or version.minor > MAX_MINOR else version.minor
    active = [(check, chosen) for check in _ORDERED_CHECKS if (chosen := check.at(minor)) is not None]
    if level_version.level == BASELINE:
        return [(check.id, chosen.check) for check, chosen in active if check.level == BASELINE]
    overridden = {override for check, chosen in active if check.level == RESTRICTED for override in chosen.overrides}
    return [(check.id, chosen.check) for check, chosen in active if check.id not in overridden]


def evaluate(level_version: LevelVersion, pod_metadata: Obj | None, pod_spec: Obj | None) -> list[Violation]:
    """Every violation of the pod (metadata + spec of a pod or a pod template) at this level and version."""
    meta, spec = _dict(pod_metadata), _dict(pod_spec)
    return [violation for _, check in checks_for(level_version) if (violation := check(meta, spec)) is not None]


def forbidden_detail(violations: list[Violation]) -> str:
    """'privileged (container "c" must not ...), hostPath volumes (volume "v")', as upstream's ForbiddenDetail."""
    return ", ".join(f"{v.reason} ({v.detail})" if v.detail else v.reason for v in violations)


def forbidden_reason(violations: list[Violation]) -> str:
    """'privileged, hostPath volumes': the reasons alone (the per-pod summary of a namespace check)."""
    return ", ".join(v.reason for v in violations)
