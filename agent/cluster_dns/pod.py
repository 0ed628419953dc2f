"""The cluster DNS as a pod (the `coredns` Deployment in kube-system, image shipmate/cluster-dns):
the same zone and server the agent can run, fed by Services and EndpointSlices the pod lists and
watches with its service account, names outside the cluster domain forwarded to the pod's own
resolv.conf (dnsPolicy Default: the node's resolvers, as CoreDNS's `forward . /etc/resolv.conf`).

    python3 -m agent.cluster_dns.pod [--port 53] [--domain cluster.local]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from agent.cluster_dns.probes import DNSState, serve_http
from agent.cluster_dns.server import DNS_PORT
from agent.cluster_dns.service import ClusterDNS
from agent.dns import ResolvConf, parse_resolv_conf
from agent.proxy.sources import ServiceSources
from shipmate.kubeclient import KubeClient, in_cluster_config
from shipmate.supervisor import cancel_on_signals

log = logging.getLogger("cluster-dns")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cluster-dns", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="0.0.0.0", help="address to serve DNS on (UDP and TCP)")
    parser.add_argument("--port", type=int, default=DNS_PORT)
    parser.add_argument("--domain", default="cluster.local", help="the cluster domain")
    parser.add_argument("--resolv-conf", default="/etc/resolv.conf", help="upstream resolvers for other names")
    parser.add_argument("--health-port", type=int, default=8080)
    parser.add_argument("--ready-port", type=int, default=8181)
    parser.add_argument("--metrics-port", type=int, default=9153)
    return parser.parse_args(argv)


def read_resolv_conf(path: str) -> ResolvConf:
    try:
        with open(path) as handle:
            return parse_resolv_conf(handle.read())
    except FileNotFoundError:
        return ResolvConf()


async def run(args: argparse.Namespace) -> None:
    dns = ClusterDNS(args.listen, args.domain, read_resolv_conf(args.resolv_conf), port=args.port,
                     manage_interface=False)

    def state() -> DNSState:
        server = dns.server
        return DNSState(serving=server is not None, synced=dns.zone.synced,
                        requests=dict(server.requests) if server else {}, forwarded=server.forwarded if server else 0)

    endpoints = [await serve_http(args.listen, port, state)
                 for port in dict.fromkeys((args.health_port, args.ready_port, args.metrics_port))]
    async with KubeClient(in_cluster_config(), user_agent="shipmate-cluster-dns") as client:
        try:
            await asyncio.gather(dns.run(), ServiceSources(client, [dns]).run())
        finally:
            for endpoint in endpoints:
                endpoint.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def serve() -> None:
        cancel_on_signals()
        try:
            await run(args)
        except asyncio.CancelledError:
            log.info("stopping")

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
