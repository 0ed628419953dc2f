"""Change trackers: watch callbacks record {previous, current} per object; a sync consumes them.

As in kube-proxy, several updates of one object between two syncs merge into one change, and
a change that ends where it started disappears, so a sync only touches what really changed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from agent.proxy.model import (Endpoint, InvalidObject, ServicePort, ServicePortName,
                               SliceEndpoints, service_ports, slice_endpoints)

log = logging.getLogger(__name__)

ServiceKey = tuple[str, str]  # (namespace, name)
PortMap = dict[ServicePortName, ServicePort]
EndpointMap = dict[ServicePortName, tuple[Endpoint, ...]]


@dataclass(slots=True)
class _Change:
    previous: dict
    current: dict


def _port_map(service: dict | None) -> PortMap:
    if service is None:
        return {}
    try:
        return {sp.name: sp for sp in service_ports(service)}
    except InvalidObject as error:
        # Programming what we cannot parse is impossible; keep the error visible, drop the ports.
        log.error("ignoring service: %s", error)
        return {}


def _service_key(obj: dict) -> ServiceKey:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name") or "")


def _record_change(changes: dict[ServiceKey, _Change], key: ServiceKey,
                   previous: Callable[[], dict], current: dict) -> bool:
    """Keeps the state before the first pending change and the latest state; a change that ends
    where it began is dropped. True when something is pending for `key` afterwards."""
    change = changes.get(key)
    if change is None:
        change = changes[key] = _Change(previous=previous(), current={})
    change.current = current
    if change.previous == change.current:
        del changes[key]
        return False
    return True

@dataclass
class ServiceChangeTracker:
    """Pending Service changes keyed by service; `update(old, new)` with None for add/delete."""
    _changes: dict[ServiceKey, _Change] = field(default_factory=dict)

    def update(self, previous: dict | None, current: dict | None) -> bool:
        """Record a change; True when something is pending for that service afterwards."""
        obj = current if current is not None else previous
        if obj is None:
            return False
        return _record_change(self._changes, _service_key(obj), lambda: _port_map(previous),
                              _port_map(current))

    def pending(self) -> bool:
        return bool(self._changes)

    def apply(self, services: PortMap) -> set[ServicePortName]:
        """Move pending changes into `services`; returns the service ports that changed."""
        changed: set[ServicePortName] = set()
        for change in self._changes.values():
            for name in change.previous:
                services.pop(name, None)
            services.update(change.current)
            changed.update(n for n in change.previous.keys() | change.current.keys()
                           if change.previous.get(n) != change.current.get(n))
        self._changes.clear()
        return changed


@dataclass
class EndpointsChangeTracker:
    """EndpointSlices merged per service; pending changes as {previous, current} endpoint maps."""
    _slices: dict[ServiceKey, dict[str, SliceEndpoints]] = field(default_factory=dict)
    _changes: dict[ServiceKey, _Change] = field(default_factory=dict)

    def update(self, endpoint_slice: dict, deleted: bool = False) -> bool:
        try:
            parsed = slice_endpoints(endpoint_slice)
        except InvalidObject as error:
            log.error("ignoring endpointslice: %s", error)
            return False
        if parsed is None:
            return False
        key = (parsed.namespace, parsed.service)
        slices = self._slices.setdefault(key, {})
        before = self._merged(key)
        if deleted:
            slices.pop(parsed.name, None)
        else:
            slices[parsed.name] = parsed
        if not slices:
            del self._slices[key]
        return _record_change(self._changes, key, lambda: before, self._merged(key))

    def pending(self) -> bool:
        return bool(self._changes)

    def _merged(self, key: ServiceKey) -> dict[tuple[str, str], tuple[Endpoint, ...]]:
        """Endpoints per (port name, protocol) over all slices, deduplicated by address."""
        merged: dict[tuple[str, str], dict[str, Endpoint]] = {}
        for name in sorted(self._slices.get(key, {})):
            for port, endpoints in self._slices[key][name].by_port.items():
                by_address = merged.setdefault(port, {})
                for ep in endpoints:
                    by_address.setdefault(ep.address, ep)
        return {port: tuple(sorted(eps.values(), key=_endpoint_order)) for port, eps in merged.items()}

    def apply(self, endpoints: EndpointMap) -> set[ServicePortName]:
        """Move pending changes into `endpoints`; returns the service ports whose endpoints changed."""
        changed: set[ServicePortName] = set()
        for (namespace, service), change in self._changes.items():
            for (port, protocol) in change.previous.keys() | change.current.keys():
                name = ServicePortName(namespace, service, port, protocol)
                new = change.current.get((port, protocol))
                if new is None:
                    endpoints.pop(name, None)
                else:
                    endpoints[name] = new
                if change.previous.get((port, protocol)) != new:
                    changed.add(name)
        self._changes.clear()
        return changed


def _endpoint_order(ep: Endpoint) -> tuple:
    # Stable order (upstream sorts by address) so an unchanged set renders unchanged text.
    return (tuple(int(part) for part in ep.ip.split(".")), ep.port)
