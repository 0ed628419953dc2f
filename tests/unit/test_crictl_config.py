"""/etc/crictl.yaml: written for the node's containerd when absent or ours, never over a user's file; `make up`
and `shipmate install agent` both write it."""
from __future__ import annotations

from pathlib import Path

import yaml

from shipmate import crictl_config, install


def test_written_when_absent_and_kept_up_to_date_when_ours(tmp_path: Path) -> None:
    path = tmp_path / "crictl.yaml"
    assert crictl_config.write_crictl_config(path) == "written"
    document = yaml.safe_load(path.read_text())
    assert document["runtime-endpoint"] == document["image-endpoint"] == "unix:///run/containerd/containerd.sock"
    assert crictl_config.write_crictl_config(path) == "unchanged"
    assert crictl_config.write_crictl_config(path, "unix:///run/other.sock") == "written"
    assert yaml.safe_load(path.read_text())["runtime-endpoint"] == "unix:///run/other.sock"


def test_a_users_own_file_is_never_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "crictl.yaml"
    mine = "runtime-endpoint: unix:///run/crio/crio.sock\n# shipmate would like to write here\n"
    path.write_text(mine)
    assert crictl_config.write_crictl_config(path) == "kept"
    assert path.read_text() == mine
    path.write_bytes(b"\xff\xfe binary")
    assert crictl_config.write_crictl_config(path) == "kept"


def test_install_agent_writes_it_under_root(tmp_path: Path) -> None:
    args = ["agent", "--root", str(tmp_path), "--no-start", "--server", "https://192.0.2.1:6443"]
    assert install.main(args) == 0
    written = (tmp_path / "etc/crictl.yaml").read_text()
    assert crictl_config.is_ours(written) and "unix:///run/containerd/containerd.sock" in written
    (tmp_path / "etc/crictl.yaml").write_text("timeout: 2\n")
    assert install.main(args) == 0
    assert (tmp_path / "etc/crictl.yaml").read_text() == "timeout: 2\n"


def test_make_up_writes_it_after_containerd() -> None:
    up = (Path(__file__).resolve().parents[2] / "hack/up.sh").read_text()
    assert "ensure_containerd\n  ensure_crictl_config" in up
    assert "crictl-config --endpoint \"unix://$CONTAINERD_SOCKET\" --out /etc/crictl.yaml" in up
