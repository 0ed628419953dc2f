"""shipmate.install: pure rendering of units, env files, kubeconfig and containerd config."""
from __future__ import annotations

import pytest

from agent.config import parse_args
from shipmate.install import (AgentOptions, AgentPaths, InstallError, ServerOptions, agent_args, agent_files,
                              env_file, parse_env_args, server_files, unit_text, write_files)


TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "0f" * 32


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


def test_agent_files_carry_node_paths_join_flags_and_mirror() -> None:
    paths = AgentPaths(etc_dir="/n1/etc", root_dir="/n1/agent", ipam_dir="/n1/ipam", cni_socket="/n1/cni.sock",
                       cni_bin_dir="/n1/cni/bin", cni_conf_dir="/n1/cni/net.d",
                       containerd_socket="/n1/containerd.sock", containerd_config="/n1/containerd.toml",
                       certs_dir="/n1/certs.d")
    options = AgentOptions(server="https://10.0.0.1:6443,https://10.0.0.2:6443", token=TOKEN,
                           ca_cert_hash=CA_HASH, node_name="n1", node_ip="10.0.0.2",
                           registry_mirror="http://10.0.0.1:5000", paths=paths)
    files = {spec.path: spec for spec in agent_files(options, systemd_cgroup=False)}
    args = parse_env_args(files["/n1/etc/agent.env"].text, "SHIPMATE_AGENT_ARGS")
    assert args == agent_args(options)
    assert args[:6] == ["--server", "https://10.0.0.1:6443,https://10.0.0.2:6443", "--token", TOKEN,
                        "--ca-cert-hash", CA_HASH]
    assert args[args.index("--root-dir") + 1] == "/n1/agent"
    assert args[args.index("--container-runtime-endpoint") + 1] == "unix:///n1/containerd.sock"
    assert "--kubeconfig" not in args       # the agent writes <root-dir>/kubelet.kubeconfig when it joins
    assert files["/n1/etc/agent.env"].mode == 0o600      # it holds the token
    toml = files["/n1/containerd.toml"].text
    assert 'bin_dir = "/n1/cni/bin"' in toml and 'config_path = "/n1/certs.d"' in toml
    assert '[host."http://10.0.0.1:5000"]' in files["/n1/certs.d/127.0.0.1:5000/hosts.toml"].text


def test_agent_parses_the_join_flags_the_installer_writes() -> None:
    options = AgentOptions(server="https://10.0.0.1:6443", token=TOKEN, ca_file="/etc/shipmate/ca.crt",
                           node_ip="10.0.0.2")
    config = parse_args(agent_args(options))
    assert (config.server, config.token, config.ca_file) == ("https://10.0.0.1:6443", TOKEN, "/etc/shipmate/ca.crt")


@pytest.mark.parametrize("options, message", [
    (AgentOptions(server="10.0.0.1:6443"), "must start with https://"),
    (AgentOptions(server="http://10.0.0.1:6443"), "HTTPS only"),
    (AgentOptions(server="https://10.0.0.1:6443", token="secret"), "bootstrap token"),
    (AgentOptions(server="https://10.0.0.1:6443", token=TOKEN), "needs --ca-cert-hash"),
])
def test_agent_options_are_checked(options: AgentOptions, message: str) -> None:
    with pytest.raises(InstallError, match=message):
        agent_files(options, systemd_cgroup=False)


def test_write_files_under_root_reports_only_changes(tmp_path) -> None:
    files = server_files(ServerOptions(port=7443))
    written = write_files(files, str(tmp_path))
    assert "/etc/systemd/system/shipmate-server.service" in written
    env = (tmp_path / "etc/shipmate/server.env").read_text()
    assert parse_env_args(env, "SHIPMATE_SERVER_ARGS")[:4] == ["--bind-address", "0.0.0.0", "--port", "7443"]
    assert write_files(files, str(tmp_path)) == []
