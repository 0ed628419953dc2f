"""Cluster DNS served by the agent: `<svc>.<ns>.svc.<cluster-domain>` and friends from the zone,
every other name forwarded to the host's resolvers.

wire (DNS message encoding, pure) · zone (Services + EndpointSlices → answers, pure) ·
server (asyncio UDP/TCP, forwarding) · interface (the node-local address) · service (wiring).
"""
