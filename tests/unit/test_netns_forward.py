import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from netns import cni_forward
from netns.cni_codes import ERR_INTERNAL, ERR_TRY_AGAIN_LATER
from netns.cni_wire import decode_reply, decode_request, encode_reply, encode_request

REPO = str(Path(__file__).resolve().parents[2])
CONF = b'{"cniVersion":"0.4.0","name":"shipmate","type":"shipmate-cni"}'


def test_wire_round_trip_keeps_only_cni_env():
    env = {"CNI_COMMAND": "ADD", "PATH": "/bin", "CNI_ARGS": "A=1;B=2", "CNI_NETNS": ""}
    decoded_env, stdin = decode_request(encode_request(env, CONF))
    assert decoded_env == {"CNI_COMMAND": "ADD", "CNI_ARGS": "A=1;B=2", "CNI_NETNS": ""}
    assert stdin == CONF.decode()
    assert decode_reply(encode_reply(1, '{"code": 7}')) == (1, '{"code": 7}')
    assert decode_reply(encode_reply(0, "")) == (0, "")


@pytest.mark.parametrize("data", [b"", b"x\n", b"99\nCNI_A=1", b"5\nPATH=", b"3\nCNI{}",
                                  b"0\n\xff\xfe"])
def test_malformed_requests(data):
    with pytest.raises(ValueError):
        decode_request(data)


@pytest.mark.parametrize("data", [b"", b"ok", b"-1\n{}"])
def test_malformed_replies(data):
    with pytest.raises(ValueError):
        decode_reply(data)


def test_fast_path_imports_no_heavy_modules():
    code = (f"import sys; sys.path.insert(0, {REPO!r}); import netns.cni_forward; "
            "print(' '.join(sorted(sys.modules)))")
    modules = set(subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                                 text=True, check=True).stdout.split())
    assert not modules & {"json", "socket", "re", "dataclasses", "ipaddress", "pyroute2", "netns.cni_spec"}


def serve_once(path: str, reply: bytes | None) -> tuple[threading.Thread, list[bytes]]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received: list[bytes] = []

    def run() -> None:
        conn, _ = server.accept()
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        received.append(data)
        if reply is not None:
            conn.sendall(reply)
        conn.close()
        server.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, received


def test_execute_returns_the_agents_reply(tmp_path):
    path = str(tmp_path / "cni.sock")
    thread, received = serve_once(path, encode_reply(0, '{"ok": true}'))
    assert cni_forward.execute({"CNI_COMMAND": "DEL"}, CONF, path) == (0, '{"ok": true}')
    thread.join()
    assert decode_request(received[0]) == ({"CNI_COMMAND": "DEL"}, CONF.decode())


def test_an_agent_that_hangs_up_means_try_again(tmp_path):
    path = str(tmp_path / "cni.sock")
    thread, _ = serve_once(path, None)
    exit_code, stdout = cni_forward.execute({"CNI_COMMAND": "DEL"}, CONF, path)
    thread.join()
    error = json.loads(stdout)
    assert exit_code == 1 and error["code"] == ERR_TRY_AGAIN_LATER and error["cniVersion"] == "0.4.0"


def test_missing_socket_falls_back_to_in_process(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cni_forward, "run_in_process", lambda env, stdin: calls.append(env) or (0, "done"))
    assert cni_forward.execute({"CNI_COMMAND": "DEL"}, CONF, str(tmp_path / "absent.sock")) == (0, "done")
    assert calls == [{"CNI_COMMAND": "DEL"}]


def test_a_failing_fallback_still_answers_in_cni_format(tmp_path, monkeypatch):
    def broken(env, stdin):
        raise ImportError("No module named 'pyroute2'")

    monkeypatch.setattr(cni_forward, "run_in_process", broken)
    exit_code, stdout = cni_forward.execute({"CNI_COMMAND": "ADD"}, CONF, str(tmp_path / "absent.sock"))
    assert exit_code == 1 and json.loads(stdout)["code"] == ERR_INTERNAL
    assert "pyroute2" in json.loads(stdout)["details"]
