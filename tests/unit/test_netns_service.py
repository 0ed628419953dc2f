"""CNIService over a real unix socket, with requests that need no netlink (no root)."""
import asyncio
import json
import os
import stat

from netns.cni_forward import forward
from netns.cni_wire import decode_reply
from netns.service import CNIService


async def start(tmp_path) -> tuple[asyncio.Task, str]:
    path = str(tmp_path / "run" / "cni.sock")
    task = asyncio.create_task(CNIService(str(tmp_path / "ipam")).serve(path))
    for _ in range(200):
        if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
            break
        await asyncio.sleep(0.01)
    return task, path


async def test_serves_requests_and_removes_its_socket(tmp_path):
    task, path = await start(tmp_path)
    try:
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        exit_code, stdout = await asyncio.to_thread(
            forward, path, {"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "0.4.0"}')
        assert exit_code == 0 and json.loads(stdout)["cniVersion"] == "0.4.0"
        exit_code, stdout = await asyncio.to_thread(
            forward, path, {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "x;y", "CNI_IFNAME": "eth0",
                            "CNI_NETNS": "/var/run/netns/x"}, b'{"cniVersion": "1.0.0", "name": "n"}')
        assert exit_code == 1 and json.loads(stdout)["code"] == 4
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"garbage")
        writer.write_eof()
        exit_code, stdout = decode_reply(await reader.read())
        writer.close()
        assert exit_code == 1 and json.loads(stdout)["code"] == 6
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not os.path.exists(path)


async def test_a_stale_socket_file_is_replaced(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "cni.sock").write_text("left by a killed agent")
    task, path = await start(tmp_path)
    try:
        exit_code, _ = await asyncio.to_thread(forward, path, {"CNI_COMMAND": "VERSION"}, b"{}")
        assert exit_code == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
