"""A finished container's termination message, as kubelet reads it: the file the container wrote
at its terminationMessagePath (mounted from the pod directory), or with FallbackToLogsOnError and a
failure, the end of its log.

The agent reads that file as root while the container may have replaced it (e.g. through a volume
it shares) with a symlink to a host file or a FIFO: it is opened without following any symlink
below the agent's root directory (below "/" for a file elsewhere, e.g. a hostPath), must be a
regular file, and only its last 4 KiB are read."""
from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass

from cri.gen import api_pb2

from agent import labels
from agent.volumes import safe_path

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


def read_message_file(host_path: str, trusted_root: str, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """The last `max_bytes` of the regular file at host_path (kubelet's tail.ReadAtMost), opened
    with no symlink on the way below `trusted_root` when host_path is in it, else below "/"."""
    root = trusted_root.rstrip("/") or "/"
    relative = os.path.relpath(host_path, root) if host_path.startswith(root.rstrip("/") + "/") else None
    if relative is None:
        root, relative = "/", host_path
    root_fd = safe_path.open_root(root)
    try:
        fd = safe_path.open_beneath(root_fd, relative, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    finally:
        os.close(root_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return os.pread(fd, max_bytes, max(0, info.st_size - max_bytes))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class MessageSource:
    """Where an exited container's termination message comes from: the host side of the file mounted at
    its terminationMessagePath, and with FallbackToLogsOnError its CRI log."""
    file: str = ""
    fallback_to_logs: bool = False
    log_path: str = ""


def message_source(status: api_pb2.ContainerStatus) -> MessageSource | None:
    """What termination_message will read for this container (None: nothing)."""
    path = status.annotations.get(labels.TERMINATION_MESSAGE_PATH, "")
    host_file = next((m.host_path for m in status.mounts if path and m.container_path == path), "")
    fallback = status.annotations.get(labels.TERMINATION_MESSAGE_POLICY) == FALLBACK_TO_LOGS
    if not host_file and not (fallback and status.log_path):
        return None
    return MessageSource(host_file, fallback, status.log_path)


def termination_message(status: api_pb2.ContainerStatus, trusted_root: str = "/") -> str:
    """The termination message of an exited container as CRI shows it (reads files: run it in a thread)."""
    return read_termination_message(message_source(status), status.exit_code, status.reason, trusted_root)


def read_termination_message(source: MessageSource | None, exit_code: int, reason: str = "",
                             trusted_root: str = "/") -> str:
    """kubelet's getTerminationMessage + readLastStringFromContainerLogs for a container that exited with
    exit_code; reads files (run it in a thread). `trusted_root`: the agent's root directory."""
    if source is None:
        return ""
    fallback = source.fallback_to_logs and exit_code != 0 and reason != "ContainerCannotRun"
    if source.file:
        try:
            data = read_message_file(source.file, trusted_root)
        except FileNotFoundError:
            data = b""
        except OSError as error:
            return f"Error on reading termination log {source.file}: {error.strerror or error}"
        if data or not fallback:
            return data.decode("utf-8", "replace")
    if fallback and source.log_path:
        try:
            with open(source.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 64 * 1024))
                return last_log_messages(handle.read().decode("utf-8", "replace"))
        except OSError:
            return ""
    return ""
