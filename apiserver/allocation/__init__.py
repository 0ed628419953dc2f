"""Allocation of unique values: Service ClusterIPs/NodePorts (`service_allocation.py`), node podCIDRs
(`pod_cidrs.py`), and the claims protocol both use across servers sharing one store (`claims.py`)."""
