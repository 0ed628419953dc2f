"""Opening paths a container can change, without following its symlinks.

Every lookup starts from a directory fd the agent trusts and refuses a symlink at any step:
openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) where the kernel has it, otherwise one
openat(O_NOFOLLOW) per component. The fd that comes back is what the caller then reads or
bind-mounts (through /proc/self/fd/N), so the file checked is the file used: a symlink swapped in
after a check cannot redirect the agent, which runs as root, to a host file. Blocking."""
from __future__ import annotations

import ctypes
import errno
import os
import stat

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SYS_OPENAT2 = 437                      # the same number on every architecture
_RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x02, 0x04, 0x08
_MS_BIND = 4096
_openat2_missing = False                # set once the kernel answered ENOSYS


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _components(relative: str) -> list[str]:
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EXDEV, f"path {relative} leaves its root")
    return parts


def _refuse_symlink(fd: int, relative: str) -> int:
    """O_PATH|O_NOFOLLOW opens a trailing symlink itself; that is a refusal too."""
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.ELOOP, f"symlink at {relative}")
    return fd


def _openat2(root_fd: int, relative: str, flags: int) -> int | None:
    """The fd, or None when this kernel has no openat2."""
    global _openat2_missing
    if _openat2_missing:
        return None
    how = _OpenHow(flags, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(root_fd), ctypes.c_char_p(os.fsencode(relative)),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd >= 0:
        return int(fd)
    code = ctypes.get_errno()
    if code == errno.ENOSYS:
        _openat2_missing = True
        return None
    raise OSError(code, f"{os.strerror(code)}: {relative}")


def _walk(root_fd: int, parts: list[str], flags: int) -> int:
    """openat(O_NOFOLLOW) component by component (kernels before 5.6)."""
    parent = os.dup(root_fd)
    try:
        for index, part in enumerate(parts[:-1]):
            child = _refuse_symlink(os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent),
                                    "/".join(parts[:index + 1]))
            os.close(parent)
            parent = child
            if not stat.S_ISDIR(os.fstat(parent).st_mode):
                raise OSError(errno.ENOTDIR, f"not a directory: {'/'.join(parts[:index + 1])}")
        return os.open(parts[-1], flags, dir_fd=parent)
    finally:
        os.close(parent)


def open_beneath(root_fd: int, relative: str, flags: int = os.O_PATH) -> int:
    """An fd for `relative` below the directory `root_fd`, with no symlink and no `..` on the way
    (OSError ELOOP / EXDEV otherwise). An empty `relative` is the root itself."""
    parts = _components(relative)
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    if not parts:
        return os.open(".", flags | os.O_DIRECTORY, dir_fd=root_fd)
    fd = _openat2(root_fd, "/".join(parts), flags)
    if fd is None:
        fd = _walk(root_fd, parts, flags)
    return _refuse_symlink(fd, relative)


def open_root(path: str) -> int:
    """An O_PATH fd for a directory the agent trusts (the symlinks up to it are the host's own)."""
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def make_dirs_beneath(root_fd: int, relative: str, mode: int) -> None:
    """Creates the missing directories of `relative` below `root_fd` with `mode` (umask aside),
    never through a symlink."""
    parts = _components(relative)
    for index in range(len(parts)):
        step = "/".join(parts[:index + 1])
        try:
            os.close(open_beneath(root_fd, step))
            continue
        except FileNotFoundError:
            pass
        parent = open_beneath(root_fd, "/".join(parts[:index]))
        try:
            try:
                os.mkdir(parts[index], mode, dir_fd=parent)
            except FileExistsError:
                pass                      # created meanwhile; opened and checked below
            created = open_beneath(root_fd, step, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fchmod(created, mode)
            finally:
                os.close(created)
        finally:
            os.close(parent)


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def bind_fd(fd: int, target: str) -> None:
    """Bind-mounts what `fd` refers to on `target` (an existing file or directory); the kernel
    follows the /proc magic link to exactly that inode, not to a path."""
    if _libc.mount(os.fsencode(fd_path(fd)), os.fsencode(target), None, _MS_BIND, None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"bind mount onto {target}: {os.strerror(code)}")
