"""shipmate.install: pure rendering of units, env files, kubeconfig and containerd config."""
from __future__ import annotations

import json

import pytest

from shipmate.install import (AgentOptions, AgentPaths, InstallError, ServerOptions, agent_args, agent_files,
                              env_file, parse_env_args, server_files, unit_text, write_files)


def test_env_file_round_trips_the_arguments() -> None:
    args = ["--server", "http://10.0.0.1:6443", "--node-ip", "10.0.0.2"]
    assert parse_env_args(env_file("SHIPMATE_AGENT_ARGS", args), "SHIPMATE_AGENT_ARGS") == args


@pytest.mark.parametrize("bad", ["has space", "", 'quo"te', "$HOME"])
def test_env_file_refuses_arguments_systemd_would_split_or_expand(bad: str) -> None:
    with pytest.raises(InstallError):
        env_file("X", ["--flag", bad])


def test_unit_points_at_the_given_executable() -> None:
    text = unit_text("shipmate-agent.service", "/usr/local/bin/shipmate")
    assert "ExecStart=/usr/local/bin/shipmate agent $SHIPMATE_AGENT_ARGS" in text
    for line in ("Type=notify", "KillMode=process", "Restart=always", "EnvironmentFile=-/etc/shipmate/agent.env"):
        assert line in text.splitlines()
    assert "WatchdogSec=" in text and "Wants=network-online.target containerd.service" in text


def test_agent_files_carry_node_paths_and_mirror() -> None:
    paths = AgentPaths(etc_dir="/n1/etc", root_dir="/n1/agent", ipam_dir="/n1/ipam", cni_socket="/n1/cni.sock",
                       cni_bin_dir="/n1/cni/bin", cni_conf_dir="/n1/cni/net.d",
                       containerd_socket="/n1/containerd.sock", containerd_config="/n1/containerd.toml",
                       certs_dir="/n1/certs.d")
    options = AgentOptions(server="http://10.0.0.1:6443", token="t0k", node_name="n1", node_ip="10.0.0.2",
                           registry_mirror="http://10.0.0.1:5000", paths=paths)
    files = {spec.path: spec for spec in agent_files(options, systemd_cgroup=False)}
    args = parse_env_args(files["/n1/etc/agent.env"].text, "SHIPMATE_AGENT_ARGS")
    assert args == agent_args(options)
    assert args[args.index("--kubeconfig") + 1] == "/n1/etc/agent.kubeconfig"
    assert args[args.index("--container-runtime-endpoint") + 1] == "unix:///n1/containerd.sock"
    kubeconfig = json.loads(files["/n1/etc/agent.kubeconfig"].text)
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "http://10.0.0.1:6443"
    assert kubeconfig["users"][0]["user"] == {"token": "t0k"}
    assert files["/n1/etc/agent.kubeconfig"].mode == 0o600
    toml = files["/n1/containerd.toml"].text
    assert 'bin_dir = "/n1/cni/bin"' in toml and 'config_path = "/n1/certs.d"' in toml
    assert '[host."http://10.0.0.1:5000"]' in files["/n1/certs.d/127.0.0.1:5000/hosts.toml"].text


def test_agent_needs_an_http_server_url() -> None:
    with pytest.raises(InstallError):
        agent_files(AgentOptions(server="10.0.0.1:6443"), systemd_cgroup=False)


def test_write_files_under_root_reports_only_changes(tmp_path) -> None:
    files = server_files(ServerOptions(port=7443))
    written = write_files(files, str(tmp_path))
    assert "/etc/systemd/system/shipmate-server.service" in written
    env = (tmp_path / "etc/shipmate/server.env").read_text()
    assert parse_env_args(env, "SHIPMATE_SERVER_ARGS")[:4] == ["--bind-address", "0.0.0.0", "--port", "7443"]
    assert write_files(files, str(tmp_path)) == []
