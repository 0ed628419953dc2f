"""What only real VMs with systemd as PID 1 prove (issue 21 item 3), against `make e2e-vagrant`'s
cluster (SHIPMATE_VAGRANT_E2E_KUBECONFIG; hack/vagrant.sh e2e sets it after tests/e2e/multinode):

- `journalctl -u shipmate-agent` holds the agent's structured lines (level, logger, key=value fields)
  under its unit and syslog identifier;
- `systemctl restart shipmate-agent` restarts no container (KillMode=process);
- an agent frozen with SIGSTOP stops its WATCHDOG=1 pings: systemd kills and restarts it after
  WatchdogSec, and the pods keep running;
- a rebooted VM comes back: its node is Ready again and its pod runs again.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support import wait_for

pytestmark = pytest.mark.e2e

KUBECONFIG = os.environ.get("SHIPMATE_VAGRANT_E2E_KUBECONFIG", "")
VAGRANT_SH = str(Path(__file__).resolve().parents[2] / "hack" / "vagrant.sh")
KUBECTL = "/usr/local/bin/kubectl"
IMAGE = "127.0.0.1:5000/library/busybox:latest"
NAMESPACE = "g-vm-checks"
UNIT = "shipmate-agent.service"

if not KUBECONFIG:
    pytest.skip("runs in `make e2e-vagrant` (SHIPMATE_VAGRANT_E2E_KUBECONFIG names its cluster)",
                allow_module_level=True)


def kubectl(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([KUBECTL, "--kubeconfig", KUBECONFIG, *args], input=stdin, capture_output=True,
                            text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result


def vm(node: str, command: str, check: bool = True, timeout: float = 180) -> str:
    result = subprocess.run(["bash", VAGRANT_SH, "ssh", "e2e", node, command], capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{node}: {command}: status {result.returncode}: {result.stderr.strip()}")
    return result.stdout.strip()


def node_ready(node: str) -> bool:
    result = kubectl("get", "node", node, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    conditions = json.loads(result.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def unit_property(node: str, name: str) -> str:
    return vm(node, f"systemctl show -p {name} --value {UNIT}")


def container_pids(node: str) -> dict[str, str]:
    """containerd's running tasks on the node: container id -> pid."""
    lines = vm(node, "sudo ctr -n k8s.io tasks list").splitlines()[1:]
    return {fields[0]: fields[1] for fields in (line.split() for line in lines) if fields[2:3] == ["RUNNING"]}


@pytest.fixture(scope="module")
def pods() -> dict[str, str]:
    """One sleeping pod pinned on each agent VM: node -> pod name."""
    kubectl("create", "namespace", NAMESPACE, check=False)
    placed = {}
    for node in ("agent1", "agent2"):
        name = f"sleeper-{node}-{uuid.uuid4().hex[:4]}"
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                             # A frozen or rebooting agent's node goes NotReady/unreachable: the pod
                             # stays bound to it (as a DaemonSet's would) instead of being evicted.
                             "tolerations": [{"key": key, "operator": "Exists", "effect": "NoExecute"}
                                             for key in ("node.kubernetes.io/unreachable",
                                                         "node.kubernetes.io/not-ready")],
                             "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                             "command": ["sh", "-c", "echo started; sleep 100000"]}]}}
        kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        placed[node] = name
    for name in placed.values():
        wait_for(lambda name=name: pod_running(name), timeout=300, interval=2, what=f"pod {name} Running")
    yield placed
    kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def pod(name: str) -> dict:
    return json.loads(kubectl("get", "pod", "-n", NAMESPACE, name, "-o", "json").stdout)


def pod_running(name: str) -> bool:
    status = pod(name).get("status", {})
    return status.get("phase") == "Running" and all(c.get("ready") for c in status.get("containerStatuses", [{}]))


def restart_count(name: str) -> int:
    return sum(c.get("restartCount", 0) for c in pod(name)["status"].get("containerStatuses", []))


def started_at(name: str) -> str:
    statuses = pod(name)["status"].get("containerStatuses", [])
    return statuses[0].get("state", {}).get("running", {}).get("startedAt", "") if statuses else ""


def test_journal_holds_the_agents_structured_logs(pods: dict[str, str]) -> None:
    # -u also shows systemd's own lines about the unit (starts, stops, watchdog): the agent's are its.
    entries = [entry for entry in map(json.loads, vm("agent1", f"sudo journalctl -u {UNIT} -o json -n 300 --no-pager").splitlines())
               if entry.get("SYSLOG_IDENTIFIER") == "shipmate-agent"]
    assert len(entries) > 20, entries
    assert all(entry.get("_SYSTEMD_UNIT") == UNIT for entry in entries)
    structured = [entry["MESSAGE"] for entry in entries if isinstance(entry.get("MESSAGE"), str)
                  and re.search(r" (DEBUG|INFO|WARNING|ERROR) [a-z_.]+ .*\b[a-z_]+=\S", entry["MESSAGE"])]
    assert len(structured) > len(entries) // 2, entries[-5:]


def test_systemctl_restart_restarts_no_container(pods: dict[str, str]) -> None:
    node, name = "agent1", pods["agent1"]
    before = container_pids(node)
    restarts = restart_count(name)
    main_pid = unit_property(node, "MainPID")
    vm(node, f"sudo systemctl restart {UNIT}")
    wait_for(lambda: unit_property(node, "ActiveState") == "active" and unit_property(node, "MainPID") != main_pid,
             timeout=300, interval=3, what="the agent active again")
    wait_for(lambda: node_ready(node), timeout=180, interval=3, what=f"{node} Ready")
    assert container_pids(node) == before
    time.sleep(5)
    assert pod_running(name) and restart_count(name) == restarts


def test_watchdog_restarts_a_frozen_agent_and_pods_keep_running(pods: dict[str, str]) -> None:
    node, name = "agent1", pods["agent1"]
    before = container_pids(node)
    restarts = int(unit_property(node, "NRestarts"))
    main_pid = unit_property(node, "MainPID")
    vm(node, f"sudo kill -STOP {main_pid}")
    # WatchdogSec (60 s), then SIGABRT; a stopped process acts on no signal but SIGKILL, which comes
    # after TimeoutStopSec (30 s); then RestartSec (2 s) and a start.
    wait_for(lambda: int(unit_property(node, "NRestarts")) > restarts, timeout=240, interval=5,
             what="systemd's restart of the frozen agent")
    assert unit_property(node, "MainPID") != main_pid
    journal = vm(node, f"sudo journalctl -u {UNIT} --no-pager -n 300")
    assert "watchdog" in journal.lower(), journal[-2000:]
    wait_for(lambda: unit_property(node, "ActiveState") == "active", timeout=300, interval=3, what="the agent active")
    wait_for(lambda: node_ready(node), timeout=180, interval=3, what=f"{node} Ready")
    assert container_pids(node) == before
    assert pod_running(name)


def test_rebooted_vm_is_ready_again_with_its_pod(pods: dict[str, str]) -> None:
    node, name = "agent2", pods["agent2"]
    boot_id = vm(node, "cat /proc/sys/kernel/random/boot_id")
    started = started_at(name)
    vm(node, "sudo systemctl reboot", check=False, timeout=60)

    def rebooted() -> bool:
        try:
            return vm(node, "cat /proc/sys/kernel/random/boot_id", check=False, timeout=30) not in ("", boot_id)
        except subprocess.TimeoutExpired:
            return False

    wait_for(rebooted, timeout=600, interval=5, what=f"{node} back after its reboot")
    wait_for(lambda: unit_property(node, "ActiveState") == "active", timeout=300, interval=5,
             what="the agent started by systemd at boot")
    wait_for(lambda: node_ready(node), timeout=300, interval=3, what=f"{node} Ready after the reboot")
    # Its pod's container died with the VM: the agent starts it again (a new sandbox, same pod).
    wait_for(lambda: pod_running(name) and started_at(name) != started, timeout=300, interval=3,
             what=f"pod {name} running again after the reboot")
