"""A second containerd of the test's own (root, state, sockets and registry config under a temp dir),
for tests that need containerd configured differently from the host's, which they must not touch."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shipmate import containerd_config


def cri_plugin_state(socket: Path) -> str | None:
    """The state column of the CRI plugin (`ok` when it loaded), None while containerd does not answer."""
    result = subprocess.run(["ctr", "--address", str(socket), "plugins", "ls"],
                            capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        return None
    cri = [line.split() for line in result.stdout.splitlines() if "io.containerd.grpc.v1" in line and " cri " in line]
    return cri[0][-1] if cri else ""


@contextmanager
def isolated_containerd(work_dir: Path, registries: dict, timeout: float = 20) -> Iterator[Path]:
    """containerd with the config `shipmate containerd-config` renders for `registries`; yields its socket
    once it answers (the CRI plugin's state is for the caller to check)."""
    certs_dir = work_dir / "certs.d"
    rendered = containerd_config.render(registries, certs_dir=str(certs_dir))
    containerd_config.apply(rendered, work_dir / "rendered.toml", certs_dir)
    socket = work_dir / "containerd.sock"
    isolation = (f'root = "{work_dir}/root"\nstate = "{work_dir}/state"\n'
                 f'[grpc]\n  address = "{socket}"\n[ttrpc]\n  address = "{socket}.ttrpc"\n'
                 f'[debug]\n  address = "{work_dir}/debug.sock"\n')
    body = (work_dir / "rendered.toml").read_text().replace("version = 2\n", "", 1)
    (work_dir / "config.toml").write_text("version = 2\n" + isolation + body)
    with open(work_dir / "containerd.log", "w") as log:
        daemon = subprocess.Popen(["containerd", "--config", str(work_dir / "config.toml")],
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and daemon.poll() is None and cri_plugin_state(socket) is None:
                time.sleep(0.2)
            yield socket
        finally:
            daemon.terminate()
            daemon.wait(timeout=20)
