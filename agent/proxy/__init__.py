"""kube-proxy role of the agent: Services + EndpointSlices → iptables rules.

model (objects → typed view) → render (view → iptables-restore text) → netns.iptables (apply);
changes (trackers) and runner (bounded frequency) drive it; proxier ties them together.
"""
