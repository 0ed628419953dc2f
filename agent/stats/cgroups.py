"""Reading a container's CPU and memory figures from its cgroup, as cAdvisor does for kubelet.

cgroup v2 (the unified hierarchy mounted at /sys/fs/cgroup): CPU time is `cpu.stat usage_usec`, the memory
working set is `memory.current` minus `inactive_file` of `memory.stat`, the CPU limit is `cpu.max`.
cgroup v1 (one hierarchy per controller, /sys/fs/cgroup/<controllers>): CPU time is `cpuacct.usage` (ns), the
working set is `memory.usage_in_bytes` minus `total_inactive_file`, the CPU limit `cpu.cfs_quota_us` /
`cpu.cfs_period_us`. Which cgroup a container is in comes from its init process's /proc/<pid>/cgroup, so the
runtime's cgroup driver and parent do not matter. The parsing is pure; the readers only open files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

CGROUP_ROOT = "/sys/fs/cgroup"


class CgroupError(OSError):
    """A cgroup file is missing or unreadable (the container went away, or another layout)."""


@dataclass(frozen=True)
class CgroupPaths:
    """The directories holding one cgroup's figures (the same directory three times on v2)."""
    unified: bool
    cpu_usage: str       # v2: the cgroup; v1: its cpuacct directory
    memory: str
    cpu_limit: str       # v2: the cgroup; v1: its cpu directory


def is_unified(root: str = CGROUP_ROOT) -> bool:
    """Whether `root` holds the v2 hierarchy itself (not the hybrid layout with v2 at root/unified)."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup → {controllers field: path}; the v2 entry ("0::/path") has the key ""."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            result[parts[1]] = parts[2]
    return result


def cgroup_paths(proc_cgroup: dict[str, str], unified: bool, root: str = CGROUP_ROOT) -> CgroupPaths:
    """Where the figures of the cgroup named by a /proc/<pid>/cgroup live."""
    if unified:
        if "" not in proc_cgroup:
            raise CgroupError("no cgroup v2 entry in /proc/<pid>/cgroup")
        directory = os.path.join(root, proc_cgroup[""].lstrip("/"))
        return CgroupPaths(True, directory, directory, directory)

    def v1(controller: str) -> str:
        for field, path in proc_cgroup.items():
            if controller in field.split(","):
                return os.path.join(root, field, path.lstrip("/"))
        raise CgroupError(f"no cgroup v1 {controller} hierarchy in /proc/<pid>/cgroup")
    return CgroupPaths(False, v1("cpuacct"), v1("memory"), v1("cpu"))


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (cpu.stat, memory.stat) → {key: int}; other lines are skipped."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return result


def working_set(usage: int, memory_stat: dict[str, int], unified: bool) -> int:
    """cAdvisor's working set: usage minus the inactive file cache (never below 0)."""
    inactive = memory_stat.get("inactive_file" if unified else "total_inactive_file", 0)
    return max(0, usage - inactive)


def parse_cpu_max(text: str) -> tuple[int | None, int]:
    """cgroup v2 `cpu.max` ("max 100000" or "50000 100000") → (quota µs or None for no limit, period µs)."""
    parts = text.split()
    if not parts:
        raise ValueError("empty cpu.max")
    period = int(parts[1]) if len(parts) > 1 else 100_000
    return (None if parts[0] == "max" else int(parts[0])), period


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as error:
        raise CgroupError(f"{path}: {error.strerror or error}") from None


@dataclass(frozen=True)
class Usage:
    cpu_ns: int             # cumulative CPU time
    working_set: int        # bytes
    memory_usage: int       # bytes
    rss: int                # bytes (anon)
    page_faults: int = 0
    major_page_faults: int = 0


def read_usage(paths: CgroupPaths) -> Usage:
    """One cgroup's cumulative CPU time and current memory figures."""
    if paths.unified:
        cpu_ns = parse_flat_keyed(_read(os.path.join(paths.cpu_usage, "cpu.stat"))).get("usage_usec", 0) * 1000
        usage = int(_read(os.path.join(paths.memory, "memory.current")).strip() or 0)
        stat = parse_flat_keyed(_read(os.path.join(paths.memory, "memory.stat")))
        rss = stat.get("anon", 0)
        faults, major = stat.get("pgfault", 0), stat.get("pgmajfault", 0)
    else:
        cpu_ns = int(_read(os.path.join(paths.cpu_usage, "cpuacct.usage")).strip() or 0)
        usage = int(_read(os.path.join(paths.memory, "memory.usage_in_bytes")).strip() or 0)
        stat = parse_flat_keyed(_read(os.path.join(paths.memory, "memory.stat")))
        rss = stat.get("total_rss", 0)
        faults, major = stat.get("total_pgfault", 0), stat.get("total_pgmajfault", 0)
    return Usage(cpu_ns, working_set(usage, stat, paths.unified), usage, rss, faults, major)


def read_cpu_limit(paths: CgroupPaths) -> tuple[int | None, int]:
    """(quota µs or None, period µs) the cgroup is held to."""
    if paths.unified:
        return parse_cpu_max(_read(os.path.join(paths.cpu_limit, "cpu.max")))
    quota = int(_read(os.path.join(paths.cpu_limit, "cpu.cfs_quota_us")).strip())
    period = int(_read(os.path.join(paths.cpu_limit, "cpu.cfs_period_us")).strip())
    return (None if quota < 0 else quota), period


def paths_of_process(pid: int, root: str = CGROUP_ROOT, unified: bool | None = None) -> CgroupPaths:
    """The cgroup of a process (a container's init process)."""
    text = _read(f"/proc/{pid}/cgroup")
    return cgroup_paths(parse_proc_cgroup(text), is_unified(root) if unified is None else unified, root)


# ---------------------------------------------------------------- the node as a whole
def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo → {key: bytes}."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            try:
                result[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
            except ValueError:
                pass
    return result


def node_memory(meminfo: dict[str, int]) -> tuple[int, int, int]:
    """(usage, working set, available) of the machine: usage = MemTotal − MemFree, working set = usage −
    Inactive(file), as cAdvisor counts the root cgroup; available = MemTotal − working set."""
    total = meminfo.get("MemTotal", 0)
    usage = max(0, total - meminfo.get("MemFree", 0))
    working = max(0, usage - meminfo.get("Inactive(file)", 0))
    return usage, working, max(0, total - working)


USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_proc_stat_cpu(text: str, hz: int = USER_HZ) -> int:
    """The busy CPU time of the machine (ns) from /proc/stat's `cpu` line: every field but idle and iowait
    (guest time is already in user)."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            values = [int(v) for v in parts[1:]]
            busy = sum(values[:8]) - values[3] - (values[4] if len(values) > 4 else 0)
            return busy * 1_000_000_000 // hz
    raise ValueError("no cpu line in /proc/stat")


def read_node_cpu_ns(root: str = CGROUP_ROOT) -> int:
    """Cumulative CPU time of the whole machine: the root cgroup's (v2 cpu.stat, v1 cpuacct.usage), else
    /proc/stat."""
    try:
        if is_unified(root):
            return parse_flat_keyed(_read(os.path.join(root, "cpu.stat")))["usage_usec"] * 1000
        return int(_read(os.path.join(root, "cpuacct", "cpuacct.usage")).strip())
    except (CgroupError, KeyError, ValueError):
        return parse_proc_stat_cpu(_read("/proc/stat"))


def read_node_memory() -> tuple[int, int, int]:
    return node_memory(parse_meminfo(_read("/proc/meminfo")))
