"""NetworkPolicy enforcement on the node (the role k3s embeds from kube-router): pure policy evaluation
(`policy`), iptables text (`render`), the sync loop (`controller`)."""
