"""Node podCIDR allocation: the next free subnet of the cluster CIDR (state rebuilt from Nodes)."""
from __future__ import annotations

import ipaddress


class CIDRExhausted(Exception):
    pass


class CIDRAllocator:
    def __init__(self, cluster_cidr: str, mask_size: int):
        self.cluster = ipaddress.ip_network(cluster_cidr, strict=True)
        if mask_size < self.cluster.prefixlen or mask_size > self.cluster.max_prefixlen:
            raise ValueError(f"node CIDR mask size {mask_size} does not fit cluster CIDR {cluster_cidr}")
        self.mask_size = mask_size
        self._used: set[ipaddress._BaseNetwork] = set()

    def occupy(self, cidr: str) -> bool:
        """Mark a subnet used (from an existing Node); False if it is outside the cluster CIDR."""
        network = ipaddress.ip_network(cidr, strict=False)
        if network.prefixlen != self.mask_size or not network.subnet_of(self.cluster):
            return False
        self._used.add(network)
        return True

    def release(self, cidr: str) -> None:
        self._used.discard(ipaddress.ip_network(cidr, strict=False))

    def allocate(self) -> str:
        for subnet in self.cluster.subnets(new_prefix=self.mask_size):
            if subnet not in self._used:
                self._used.add(subnet)
                return str(subnet)
        raise CIDRExhausted(f"no free /{self.mask_size} left in {self.cluster}")
