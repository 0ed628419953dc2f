"""The node boundary, attacked from inside real containers on a private node (its own containerd,
`shipmate server` and agent; tests/integration/private_node.py): a container must not make the
agent, which runs as root, read a host file or mount a host directory for it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.private_node import BUSYBOX, PrivateNode, running_node
from tests.support import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

NODE_NAME = "agentsec"
LOADED = 90          # the shared 2-core box is often busy
SECRET = "host-secret-4b1d"
SWAPPED = 7          # exit code of a container whose symlink swap worked


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with running_node(name=NODE_NAME) as private:
        yield private


@pytest.fixture
def host_secret() -> Iterator[Path]:
    """A host file with known content, outside anything a pod mounts."""
    with tempfile.TemporaryDirectory(prefix="agentsec-") as directory:
        path = Path(directory) / "secret"
        path.write_text(SECRET)
        os.chmod(path, 0o600)
        yield path


def apply(node: PrivateNode, name: str, spec: dict[str, Any]) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                "spec": {"terminationGracePeriodSeconds": 1, **spec}}
    node.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def container(name: str, script: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script],
            **fields}


def statuses(node: PrivateNode, name: str) -> dict[str, dict[str, Any]]:
    result = node.kubectl("get", "pod", name, "-o", "json", check=False)
    if result.returncode != 0:
        return {}
    status = json.loads(result.stdout).get("status", {})
    return {s["name"]: s for s in status.get("containerStatuses") or []}


def terminated(node: PrivateNode, name: str, containers: list[str]) -> dict[str, dict[str, Any]]:
    def done() -> dict[str, dict[str, Any]] | None:
        found = {c: s["state"]["terminated"] for c, s in statuses(node, name).items() if "terminated" in s["state"]}
        return found if set(found) == set(containers) else None
    return wait_for(done, LOADED, f"{name}'s containers {containers} terminated", interval=0.5)


def delete(node: PrivateNode, name: str) -> None:
    node.kubectl("delete", "pod", name, "--grace-period=1", "--wait=false", check=False)


# ---------------------------------------------------------------- files: termination message, subPath
def test_termination_message_swapped_for_a_symlink_reads_no_host_file(node: PrivateNode, host_secret: Path) -> None:
    """Each container mounts its termination message file from a volume it also mounts whole, and
    replaces that file with a symlink to a host file before exiting: the agent reads the message
    as root, and must not follow the symlink on the host."""
    before = host_secret.stat()
    shadow_before = Path("/etc/shadow").read_bytes() if Path("/etc/shadow").exists() else b""

    def swapper(name: str, target: str) -> dict[str, Any]:
        return container(name, f"rm /shared/{name} && ln -s {target} /shared/{name} && exit {SWAPPED}; exit 1",
                         volumeMounts=[{"name": "shared", "mountPath": "/shared"},
                                       {"name": "shared", "mountPath": "/dev/termination-log", "subPath": name}])
    apply(node, "leak-message", {
        "restartPolicy": "Never", "volumes": [{"name": "shared", "emptyDir": {}}],
        "initContainers": [container("prepare", "touch /shared/to-file /shared/to-shadow",
                                     volumeMounts=[{"name": "shared", "mountPath": "/shared"}])],
        "containers": [swapper("to-file", str(host_secret)), swapper("to-shadow", "/etc/shadow"),
                       container("honest", "printf fine > /dev/termination-log")]})
    try:
        states = terminated(node, "leak-message", ["to-file", "to-shadow", "honest"])
        assert states.pop("honest").get("message") == "fine"
        for name, state in states.items():
            assert state["exitCode"] == SWAPPED, f"{name} did not swap in its symlink: {state}"
            message = state.get("message", "")
            assert SECRET not in message and "root:" not in message, f"{name} leaked a host file: {message!r}"
        assert host_secret.read_text() == SECRET and host_secret.stat().st_mtime_ns == before.st_mtime_ns
        if shadow_before:
            assert Path("/etc/shadow").read_bytes() == shadow_before
    finally:
        delete(node, "leak-message")


def subpath_binds(node: PrivateNode) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p.startswith(str(node.agent_root)) and "/volume-subpaths/" in p]


def test_sub_path_bind_is_unmounted_before_the_pod_dir_is_removed(node: PrivateNode, host_secret: Path) -> None:
    """A subPath of a hostPath volume is a bind mount in the pod's directory: removing the pod
    must unmount it first, or removing the directory would delete the host's files."""
    host_dir = host_secret.parent
    apply(node, "host-subpath", {
        "restartPolicy": "Never",
        "volumes": [{"name": "host", "hostPath": {"path": str(host_dir.parent), "type": "Directory"}}],
        "containers": [container("app", "cat /mnt/secret > /dev/termination-log",
                                 volumeMounts=[{"name": "host", "mountPath": "/mnt", "subPath": host_dir.name}])]})
    try:
        assert terminated(node, "host-subpath", ["app"])["app"].get("message") == SECRET
        assert subpath_binds(node)
    finally:
        delete(node, "host-subpath")
    wait_for(lambda: node.kubectl("get", "pod", "host-subpath", check=False).returncode != 0, LOADED, "pod gone")
    wait_for(lambda: not subpath_binds(node), LOADED, "the subPath bind unmounted", interval=0.5)
    assert host_secret.read_text() == SECRET


def test_sub_path_swapped_for_a_symlink_to_a_host_dir_is_not_mounted(node: PrivateNode, host_secret: Path) -> None:
    """An init container replaces the subPath directory with a symlink to a host directory; the
    next container's subPath mount is refused as kubelet refuses it, and never sees the host."""
    host_dir = host_secret.parent
    apply(node, "escape-subpath", {
        "restartPolicy": "Never", "volumes": [{"name": "data", "emptyDir": {}}],
        "initContainers": [container("plant", f"ln -s {host_dir} /data/escape",
                                     volumeMounts=[{"name": "data", "mountPath": "/data"}])],
        "containers": [container("app", "touch /mnt/pwned; cat /mnt/secret; sleep 3600",
                                 volumeMounts=[{"name": "data", "mountPath": "/mnt", "subPath": "escape"}])]})
    try:
        waiting = wait_for(lambda: statuses(node, "escape-subpath").get("app", {}).get("state", {}).get("waiting")
                           if statuses(node, "escape-subpath").get("app", {}).get("state", {}).get("waiting", {})
                           .get("reason") == "CreateContainerConfigError" else None,
                           LOADED, "app waiting in CreateContainerConfigError", interval=0.5)
        assert waiting["message"] == 'failed to prepare subPath for volumeMount "data" of container "app"'
        assert str(host_dir) not in waiting["message"]
        assert sorted(os.listdir(host_dir)) == ["secret"]          # nothing written through the mount
        assert "running" not in statuses(node, "escape-subpath")["app"]["state"]
    finally:
        delete(node, "escape-subpath")


# ---------------------------------------------------------------- the pod's securityContext, as applied
REPORT = ("{ grep -E '^(Uid|Gid|Groups|NoNewPrivs|Seccomp|CapEff|CapBnd):' /proc/self/status; "
          "echo \"Rootfs: $(touch /probe 2>&1 && echo writable)\"; "
          "echo \"Mkdir: $(mkdir /tmp/probe 2>&1 && echo made)\"; } > /dev/termination-log")
DEFAULT_CAPS = 0xa80425fb      # containerd's default set (CHOWN … AUDIT_WRITE)
NET_BIND_SERVICE = 1 << 10
DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}


def report(message: str) -> dict[str, str]:
    return {key: value.strip() for key, _, value in (line.partition(":") for line in message.splitlines())}


def own_status(field: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith(field + ":"))


def test_security_context_is_what_the_container_process_gets(node: PrivateNode) -> None:
    """Each container reports its own /proc/self/status and whether it may write to / (through
    its termination message): what the agent asked containerd for is what the process runs with."""
    profiles = node.agent_root / "seccomp"
    profiles.mkdir(exist_ok=True)
    (profiles / "deny-mkdir.json").write_text(json.dumps(DENY_MKDIR))
    apply(node, "secctx", {
        "restartPolicy": "Never", "securityContext": {"fsGroup": 2000, "supplementalGroups": [4000]},
        "containers": [
            container("restricted", REPORT, securityContext={
                "runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                "seccompProfile": {"type": "RuntimeDefault"}}),
            container("defaults", REPORT),
            container("read-only", REPORT, securityContext={"readOnlyRootFilesystem": True}),
            container("privileged", REPORT, securityContext={"privileged": True}),
            container("localhost", REPORT, securityContext={
                "seccompProfile": {"type": "Localhost", "localhostProfile": "deny-mkdir.json"}}),
        ]})
    try:
        states = terminated(node, "secctx", ["restricted", "defaults", "read-only", "privileged", "localhost"])
        got = {name: report(state.get("message", "")) for name, state in states.items()}
        assert all(state["exitCode"] == 0 for state in states.values()), states

        restricted = got["restricted"]
        assert restricted["Uid"].split() == ["1000"] * 4 and restricted["Gid"].split() == ["3000"] * 4
        assert {"2000", "4000"} <= set(restricted["Groups"].split())
        assert restricted["NoNewPrivs"] == "1" and restricted["Seccomp"] == "2"       # 2: a filter
        assert int(restricted["CapBnd"], 16) == NET_BIND_SERVICE and int(restricted["CapEff"], 16) == 0

        defaults = got["defaults"]
        assert defaults["Uid"].split()[0] == "0" and defaults["NoNewPrivs"] == "0" and defaults["Seccomp"] == "0"
        assert int(defaults["CapBnd"], 16) == DEFAULT_CAPS and defaults["Rootfs"] == "writable"

        assert "Read-only file system" in got["read-only"]["Rootfs"]
        assert got["privileged"]["CapBnd"] == own_status("CapBnd") and got["privileged"]["Seccomp"] == "0"
        assert got["localhost"]["Seccomp"] == "2" and "not permitted" in got["localhost"]["Mkdir"]
        assert got["defaults"]["Mkdir"] == "made"
    finally:
        delete(node, "secctx")


def test_run_as_non_root_with_a_root_image_never_starts(node: PrivateNode) -> None:
    """busybox names no USER, so it runs as root: runAsNonRoot without runAsUser is refused before
    the start, and kubelet's words reach the pod's status."""
    apply(node, "nonroot", {"securityContext": {"runAsNonRoot": True},
                            "containers": [container("app", "touch /tmp/started; sleep 3600")]})
    try:
        def waiting() -> dict[str, Any] | None:
            state = statuses(node, "nonroot").get("app", {}).get("state", {})
            assert "running" not in state and "terminated" not in state, state
            return state.get("waiting") if state.get("waiting", {}).get("reason") == "CreateContainerConfigError" \
                else None
        found = wait_for(waiting, LOADED, "app waiting in CreateContainerConfigError", interval=0.5)
        uid = node.json("get", "pod", "nonroot")["metadata"]["uid"]
        assert found["message"] == (f'container has runAsNonRoot and image will run as root '
                                    f'(pod: "nonroot_default({uid})", container: app)')
    finally:
        delete(node, "nonroot")


# ---------------------------------------------------------------- streams: exec over WebSocket
WS_CLIENT = r"""
import asyncio, json, sys
import aiohttp
from shipmate.kubeclient import load_kubeconfig

async def echo(ws, payload):
    # channel 0 is stdin, 1 stdout: `cat` sends the payload back, in chunks
    await ws.send_bytes(b"\x00" + payload)
    echoed = b""
    while len(echoed) < len(payload):
        message = await asyncio.wait_for(ws.receive(), 30)
        if message.type != aiohttp.WSMsgType.BINARY:
            break
        if message.data[:1] == b"\x01":
            echoed += message.data[1:]
    return echoed

async def main(kubeconfig, url, bound):
    tls = load_kubeconfig(kubeconfig).ssl_context()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, protocols=["v4.channel.k8s.io"], ssl=tls, max_msg_size=0,
                                      headers={"Sec-WebSocket-Extensions": "permessage-deflate"}) as ws:
            extensions = ws._response.headers.get("Sec-WebSocket-Extensions", "")
            under = await echo(ws, b"u" * (bound // 2))
            await ws.send_bytes(b"\x00" + b"x" * (bound + 1024))    # one message past the bound
            echoed_after, closed = 0, None
            while closed is None:
                message = await asyncio.wait_for(ws.receive(), 30)
                if message.type == aiohttp.WSMsgType.BINARY:
                    echoed_after += len(message.data) - 1
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    closed = ws.close_code
    print(json.dumps({"extensions": extensions, "under": len(under), "echoed_after": echoed_after,
                      "close_code": closed}))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_exec_stream_messages_past_the_bound_close_the_session(node: PrivateNode) -> None:
    """Through the API server's pod proxy to the agent's :10250: a WebSocket exec session carries a stdin
    message of half the 1 MiB bound, offers of permessage-deflate are not taken (no compression bombs), and
    a message over the bound ends the session (1009 message too big, or 1006 when the close frame is lost
    while the client still writes) without reaching the container."""
    from shipmate.stream_limits import MAX_STREAM_MESSAGE_BYTES
    apply(node, "streams", {"containers": [container("app", "sleep 3600")]})
    try:
        wait_for(lambda: statuses(node, "streams").get("app", {}).get("state", {}).get("running"), LOADED,
                 "the streams pod running")
        url = (f"{node.urls[0].replace('https', 'wss')}/api/v1/namespaces/default/pods/streams/exec"
               "?command=cat&stdin=true&stdout=true&container=app")
        result = subprocess.run([*node.enter, sys.executable, "-c", WS_CLIENT, str(node.kubeconfig), url,
                                 str(MAX_STREAM_MESSAGE_BYTES)],
                                capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 0, result.stderr[-3000:]
        outcome = json.loads(result.stdout.splitlines()[-1])
        assert outcome["under"] == MAX_STREAM_MESSAGE_BYTES // 2, outcome
        assert "deflate" not in outcome["extensions"], outcome
        assert outcome["close_code"] in (1009, 1006) and outcome["echoed_after"] == 0, outcome
    finally:
        delete(node, "streams")
