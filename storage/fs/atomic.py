"""Blocking filesystem primitives: temp + fsync + rename, and their clean-up.

Everything here blocks; callers run it through ``asyncio.to_thread``. ``sync=False`` skips the
fsyncs (benchmarks and throwaway test stores only); the ordering of renames is unchanged.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

__all__ = ["write_all", "fsync_dir", "write_atomic", "read_bytes", "unlink_quiet",
           "remove_tree", "link_or_rename"]

_O_TMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def write_all(fd: int, bufs: list[bytes]) -> None:
    """Write every buffer, in order, in as few syscalls as the kernel allows."""
    views = [memoryview(b) for b in bufs if b]
    while views:
        n = os.writev(fd, views[:1024])     # IOV_MAX is 1024 on Linux
        while n:
            head = views[0]
            if n >= len(head):
                n -= len(head)
                views.pop(0)
            else:
                views[0] = head[n:]
                n = 0


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, tmp_name: str, *, sync: bool = True,
                 sync_dir: bool = True) -> None:
    """Write ``data`` to ``path.parent / tmp_name``, fsync, rename over ``path``; the rename is
    the commit point. The temp file lives in the target directory so the rename never crosses a
    filesystem."""
    tmp = path.parent / tmp_name
    fd = os.open(tmp, _O_TMP, 0o600)
    try:
        write_all(fd, [data])
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        unlink_quiet(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        unlink_quiet(tmp)
        raise
    if sync and sync_dir:
        fsync_dir(path.parent)


def read_bytes(path: Path) -> bytes | None:
    """The file's contents, or None if it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def link_or_rename(src: Path, dst: Path) -> None:
    """Give ``dst`` the bytes of ``src`` without copying them. A hard link leaves ``src`` intact
    until the caller commits; filesystems without hard links fall back to a rename."""
    try:
        os.link(src, dst)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        os.rename(src, dst)
