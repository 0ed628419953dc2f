import json
import os
import subprocess
import sys

import pytest

from netns.install import CONFLIST_NAME, default_route_mtu, install_cni, render_conflist, render_launcher


def test_render_conflist():
    conf = json.loads(render_conflist("10.244.7.0/24", ipam_dir="/ipam", mtu=1400))
    assert conf["cniVersion"] == "1.0.0" and conf["name"] == "shipmate"
    assert conf["plugins"] == [{"type": "shipmate-cni", "bridge": "shipmate0", "subnet": "10.244.7.0/24",
                                "gateway": "10.244.7.1", "hairpinMode": True, "ipamDataDir": "/ipam",
                                "capabilities": {"portMappings": True}, "mtu": 1400}]
    assert "mtu" not in json.loads(render_conflist("10.244.7.0/24"))["plugins"][0]


@pytest.mark.parametrize("cidr", ["10.244.7.1/24", "nonsense", "fd00::/64", "10.0.0.0/31"])
def test_render_conflist_rejects_bad_pod_cidrs(cidr):
    with pytest.raises(ValueError):
        render_conflist(cidr)


def test_launcher_runs_isolated_without_site():
    text = render_launcher("/opt/venv/bin/python", "/src", "/run/s.sock")
    assert text.startswith("#!/opt/venv/bin/python -IS\n")
    assert "sys.path.insert(0, '/src')" in text and "main('/run/s.sock')" in text
    with pytest.raises(ValueError):
        render_launcher("/opt/my venv/bin/python", "/src", "/run/s.sock")


def test_install_is_idempotent_and_installs_both_plugins(tmp_path):
    bin_dir, conf_dir = tmp_path / "bin", tmp_path / "net.d"
    install_cni("10.244.7.0/24", str(bin_dir), str(conf_dir), mtu=1500)
    conflist = conf_dir / CONFLIST_NAME
    first = conflist.stat().st_mtime_ns
    for name in ("shipmate-cni", "loopback"):
        assert os.access(bin_dir / name, os.X_OK)
    install_cni("10.244.7.0/24", str(bin_dir), str(conf_dir), mtu=1500)
    assert conflist.stat().st_mtime_ns == first  # unchanged content is not rewritten
    install_cni("10.244.8.0/24", str(bin_dir), str(conf_dir), mtu=1500)
    assert json.loads(conflist.read_text())["plugins"][0]["subnet"] == "10.244.8.0/24"
    assert sorted(p.name for p in conf_dir.iterdir()) == [CONFLIST_NAME]  # no temp files left


def test_installed_plugin_answers_version_without_an_agent(tmp_path):
    install_cni("10.244.7.0/24", str(tmp_path), str(tmp_path), socket_path=str(tmp_path / "none.sock"),
                python=sys.executable)
    out = subprocess.run([str(tmp_path / "shipmate-cni")], input=b'{"cniVersion":"0.4.0"}',
                         env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=True, timeout=30)
    assert json.loads(out.stdout) == {"cniVersion": "0.4.0",
                                      "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}


def test_default_route_mtu(tmp_path):
    route = tmp_path / "route"
    route.write_text("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
                     "eth9\t0000FEA9\t00000000\t0001\t0\t0\t0\t0000FFFF\n"
                     "eth7\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\n")
    (tmp_path / "net" / "eth7").mkdir(parents=True)
    (tmp_path / "net" / "eth7" / "mtu").write_text("1400\n")
    assert default_route_mtu(str(route), str(tmp_path / "net")) == 1400
    assert default_route_mtu(str(tmp_path / "missing"), str(tmp_path / "net")) is None
