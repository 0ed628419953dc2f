"""The `shipmate` command: dispatches to the server and agent daemons."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "server": "apiserver.main",
        "agent": "agent.main",
        "containerd-config": "shipmate.containerd_config",
        "crictl-config": "shipmate.crictl_config",
        "install": "shipmate.install",
        "token": "shipmate.tokens",
        "addons": "shipmate.addons",
    }
    if not args or args[0] in ("-h", "--help") or args[0] not in commands:
        print("usage: shipmate {server|agent|containerd-config|crictl-config|install|token|addons} [options]\n"
              "  server   run the Kubernetes-compatible API server\n"
              "  agent    run the node agent (kubelet + kube-proxy)\n"
              "  containerd-config  write containerd's config (CRI, registry mirrors)\n"
              "  crictl-config  write /etc/crictl.yaml for this node's containerd (never over a user's)\n"
              "  install  install the systemd units and config: install server|agent\n"
              "  token    bootstrap tokens agents join with: token create|list|delete\n"
              "  addons   apply the cluster addons (DNS in kube-system): addons apply|print", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    import importlib
    module = importlib.import_module(commands[args[0]])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
