"""A finished container's termination message, as kubelet reads it: the file the container wrote
at its terminationMessagePath (mounted from the pod directory), or with FallbackToLogsOnError and a
failure, the end of its log."""
from __future__ import annotations

import os
import secrets

from cri.gen import api_pb2

from agent import labels

MAX_MESSAGE_BYTES = 4 * 1024          # kubecontainer.MaxContainerTerminationMessageLength
MAX_LOG_LINES = 80                    # MaxContainerTerminationMessageLogLines
MAX_LOG_BYTES = 2048                  # MaxContainerTerminationMessageLogLength
FALLBACK_TO_LOGS = "FallbackToLogsOnError"


def create_message_file(root_dir: str, pod_uid: str, container_name: str) -> str:
    """A fresh, empty, world-writable file under <root-dir>/pods/<uid>/containers/<name>/ to mount at
    the container's terminationMessagePath (one per run: a random name, as kubelet's)."""
    directory = os.path.join(root_dir, "pods", pod_uid, "containers", container_name)
    os.makedirs(directory, 0o750, exist_ok=True)
    path = os.path.join(directory, secrets.token_hex(4))
    with open(path, "w"):
        pass
    os.chmod(path, 0o666)
    return path


def last_log_messages(text: str, max_lines: int = MAX_LOG_LINES, max_bytes: int = MAX_LOG_BYTES) -> str:
    """The end of a CRI log file's content (`<time> <stream> <P|F> <message>` lines; P lines are
    parts of one line): the last `max_lines` lines, at most `max_bytes`."""
    lines: list[str] = []
    partial = ""
    for raw in text.splitlines():
        fields = raw.split(" ", 3)
        if len(fields) < 3:
            continue
        message = fields[3] if len(fields) == 4 else ""
        if fields[2] == "P":
            partial += message
            continue
        lines.append(partial + message)
        partial = ""
    if partial:
        lines.append(partial)
    tail = "".join(line + "\n" for line in lines[-max_lines:]) if lines else ""
    encoded = tail.encode()
    return encoded[-max_bytes:].decode("utf-8", "replace") if len(encoded) > max_bytes else tail


def termination_message(status: api_pb2.ContainerStatus) -> str:
    """kubelet's getTerminationMessage + readLastStringFromContainerLogs for an exited container;
    reads files (run it in a thread)."""
    path = status.annotations.get(labels.TERMINATION_MESSAGE_PATH, "")
    fallback = status.annotations.get(labels.TERMINATION_MESSAGE_POLICY) == FALLBACK_TO_LOGS \
        and status.exit_code != 0 and status.reason != "ContainerCannotRun"
    check_logs = fallback
    for mount in status.mounts if path else []:
        if mount.container_path != path:
            continue
        try:
            with open(mount.host_path, "rb") as handle:
                data = handle.read(MAX_MESSAGE_BYTES)
        except FileNotFoundError:
            break
        except OSError as error:
            return f"Error on reading termination log {mount.host_path}: {error}"
        if data or not fallback:
            return data.decode("utf-8", "replace")
        break
    if check_logs and status.log_path:
        try:
            with open(status.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 64 * 1024))
                return last_log_messages(handle.read().decode("utf-8", "replace"))
        except OSError:
            return ""
    return ""
