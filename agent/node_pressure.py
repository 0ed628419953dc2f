"""Node pressure: eviction signals (psutil, statvfs, CRI's image filesystem) against kubelet's hard
eviction thresholds → the MemoryPressure / DiskPressure / PIDPressure conditions.

Thresholds are kubelet's Linux defaults (memory.available<100Mi, nodefs.available<10%,
nodefs.inodesFree<5%, imagefs.available<15%, imagefs.inodesFree<5%); pid.available has no default
threshold upstream, so PIDPressure only turns true when one is configured. A condition stays true
for the pressure transition period (5 min) after the last time its threshold was met, as kubelet's
`--eviction-pressure-transition-period` keeps it, so it does not flap.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction

import psutil

from shipmate.quantity import parse_quantity

MEMORY_AVAILABLE = "memory.available"
NODEFS_AVAILABLE = "nodefs.available"
NODEFS_INODES_FREE = "nodefs.inodesFree"
IMAGEFS_AVAILABLE = "imagefs.available"
IMAGEFS_INODES_FREE = "imagefs.inodesFree"
PID_AVAILABLE = "pid.available"

MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE = "MemoryPressure", "DiskPressure", "PIDPressure"
CONDITION_OF_SIGNAL = {MEMORY_AVAILABLE: MEMORY_PRESSURE, NODEFS_AVAILABLE: DISK_PRESSURE,
                       NODEFS_INODES_FREE: DISK_PRESSURE, IMAGEFS_AVAILABLE: DISK_PRESSURE,
                       IMAGEFS_INODES_FREE: DISK_PRESSURE, PID_AVAILABLE: PID_PRESSURE}
DEFAULT_EVICTION_HARD = {MEMORY_AVAILABLE: "100Mi", NODEFS_AVAILABLE: "10%", NODEFS_INODES_FREE: "5%",
                         IMAGEFS_AVAILABLE: "15%", IMAGEFS_INODES_FREE: "5%"}
PRESSURE_TRANSITION_PERIOD = 300.0


@dataclass(frozen=True)
class Threshold:
    signal: str
    quantity: int | None = None         # absolute (bytes, inodes, pids)
    percentage: Fraction | None = None  # of the capacity

    def minimum(self, capacity: int) -> Fraction:
        return Fraction(self.quantity) if self.quantity is not None else (self.percentage or 0) * capacity


def parse_thresholds(spec: dict[str, str]) -> list[Threshold]:
    """`{"memory.available": "100Mi", "nodefs.available": "10%"}` → thresholds (ValueError when bad)."""
    thresholds = []
    for signal, value in spec.items():
        if signal not in CONDITION_OF_SIGNAL:
            raise ValueError(f"unknown eviction signal {signal!r}")
        if value.endswith("%"):
            percent = Fraction(value[:-1])
            if not 0 <= percent <= 100:
                raise ValueError(f"eviction threshold {signal}<{value}: percentage must be within 0%..100%")
            thresholds.append(Threshold(signal, percentage=percent / 100))
        else:
            thresholds.append(Threshold(signal, quantity=int(parse_quantity(value).value)))
    return thresholds


def parse_eviction_hard(text: str) -> dict[str, str]:
    """kubelet's `--eviction-hard` syntax: `memory.available<100Mi,nodefs.available<10%` (ValueError
    when bad). The flag replaces the defaults as a whole."""
    spec = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        signal, operator, value = item.partition("<")
        if not operator or not value:
            raise ValueError(f"eviction threshold {item!r} is not of the form signal<quantity")
        spec[signal.strip()] = value.strip()
    parse_thresholds(spec)
    return spec


@dataclass(frozen=True)
class Observation:
    available: int
    capacity: int


@dataclass(frozen=True)
class Signals:
    """Observed value and capacity per signal (missing signals are not evaluated)."""
    values: dict[str, Observation]


def thresholds_met(signals: Signals, thresholds: list[Threshold]) -> list[Threshold]:
    met = []
    for threshold in thresholds:
        observed = signals.values.get(threshold.signal)
        if observed is not None and observed.capacity > 0 and observed.available < threshold.minimum(observed.capacity):
            met.append(threshold)
    return met


@dataclass
class PressureTracker:
    """Which pressure conditions hold, with the transition period applied."""
    thresholds: list[Threshold] = field(default_factory=lambda: parse_thresholds(DEFAULT_EVICTION_HARD))
    transition_period: float = PRESSURE_TRANSITION_PERIOD
    last_met: dict[str, float] = field(default_factory=dict)     # condition → monotonic time

    def observe(self, signals: Signals, now: float) -> set[str]:
        for threshold in thresholds_met(signals, self.thresholds):
            self.last_met[CONDITION_OF_SIGNAL[threshold.signal]] = now
        return {condition for condition, at in self.last_met.items() if now - at < self.transition_period}


def _filesystem(path: str) -> tuple[Observation, Observation] | None:
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return (Observation(stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize),
            Observation(stat.f_favail, stat.f_files))


def _pid_max(path: str = "/proc/sys/kernel/pid_max") -> int:
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return 0


def gather_signals(nodefs_path: str, imagefs_path: str | None) -> Signals:
    """Reads the host (blocking: call it in a thread). memory.available is psutil's available memory
    (free + reclaimable), the closest psutil gives to kubelet's capacity − working set."""
    memory = psutil.virtual_memory()
    values = {MEMORY_AVAILABLE: Observation(memory.available, memory.total)}
    for (space, inodes), path in ((NODEFS_AVAILABLE, NODEFS_INODES_FREE), nodefs_path), \
                                 ((IMAGEFS_AVAILABLE, IMAGEFS_INODES_FREE), imagefs_path or nodefs_path):
        observed = _filesystem(path)
        if observed is not None:
            values[space], values[inodes] = observed
    pid_max = _pid_max()
    if pid_max:
        values[PID_AVAILABLE] = Observation(pid_max - len(psutil.pids()), pid_max)
    return Signals(values)
