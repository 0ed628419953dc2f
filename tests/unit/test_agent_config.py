"""`shipmate agent` flags and their defaults (docs/design.md)."""
from __future__ import annotations

import logging

import pytest

from agent.config import parse_args
from shipmate.hostnet import default_route_interface


def test_defaults_follow_the_design() -> None:
    config = parse_args(["--node-name", "Dev-Node", "--node-ip", "192.0.2.2"])
    assert config.server == "https://127.0.0.1:6443" and config.kubeconfig is None
    assert config.node_name == "dev-node"
    assert config.container_runtime_endpoint == "unix:///run/containerd/containerd.sock"
    assert (config.root_dir, config.cni_bin_dir, config.cni_conf_dir, config.cni_socket) == \
        ("/var/lib/shipmate/agent", "/opt/cni/bin", "/etc/cni/net.d", "/run/shipmate/cni.sock")
    assert (config.pod_log_dir, config.max_pods, config.log_level) == ("/var/log/pods", 110, logging.INFO)


def test_kubeconfig_alone_takes_the_server_from_the_file() -> None:
    assert parse_args(["--kubeconfig", "/k", "--node-ip", "10.0.0.1"]).server is None


@pytest.mark.parametrize("flag, level", [("-v=4", logging.DEBUG), ("-v", logging.INFO), ("--log-level=warning", logging.WARNING)])
def test_log_levels(flag: str, level: int) -> None:
    argv = [flag] if "=" in flag else [flag, "1"]
    assert parse_args(["--node-ip", "10.0.0.1", *argv]).log_level == level


def test_bad_node_ip_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--node-ip", "not-an-ip"])
    assert "not an IP address" in capsys.readouterr().err


def test_default_route_interface(tmp_path) -> None:
    route = tmp_path / "route"
    route.write_text("Iface\tDestination\tGateway\n"
                     "eth1\t0002000A\t00000000\n"
                     "eth0\t00000000\t010200C0\n")
    assert default_route_interface(str(route)) == "eth0"
