"""Container probes: liveness, readiness, startup (exec, httpGet, tcpSocket, grpc)."""
from agent.prober.manager import ProbeManager

__all__ = ["ProbeManager"]
