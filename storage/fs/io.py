"""Streaming writers and readers over staged / committed data files.

A writer appends to ``staging/<id>.tmp`` (small chunks are coalesced into one ``writev`` per
``FLUSH_BYTES``). ``commit`` runs in ONE worker-thread call: flush, fsync, close, then the store's
commit step (rename into place, sidecar rename, index update). A thread cannot be cancelled, so
a task cancelled while awaiting commit (or a commit under ``asyncio.shield``) still completes or
fails as a whole; it never leaves half a commit behind.

A reader opens every data file of the object at ``open_object`` time and reads with ``pread``, so
later overwrites and deletes (which unlink files, never rewrite them) do not change its bytes.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from ..base import ObjectInfo, PartInfo
from ..errors import StorageError
from .atomic import unlink_quiet, write_all

__all__ = ["FLUSH_BYTES", "FSObjectWriter", "FSObjectReader", "CommitFn", "open_pieces"]

FLUSH_BYTES = 1 << 20

# (staging path, bytes written, etag, meta, reported size or None) -> committed record;
# blocking, runs in a worker thread.
CommitFn = Callable[[Path, int, str, dict[str, Any], "int | None"], "ObjectInfo | PartInfo"]


class FSObjectWriter:
    """One staged object or part. Exactly one of commit / abort ends it."""

    def __init__(self, fd: int, path: Path, commit_fn: CommitFn, *, sync: bool = True) -> None:
        self._fd: int | None = fd
        self._path = path
        self._commit_fn = commit_fn
        self._sync = sync
        self._buf: list[bytes] = []
        self._buffered = 0
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    async def write(self, data: bytes) -> None:
        if self._fd is None:
            raise StorageError("writer is closed")
        if not data:
            return
        # Keep a private copy only of mutable buffers the caller may reuse.
        self._buf.append(data if isinstance(data, bytes) else bytes(data))
        self._buffered += len(data)
        self._size += len(data)
        if self._buffered >= FLUSH_BYTES:
            bufs, self._buf, self._buffered = self._buf, [], 0
            await asyncio.to_thread(write_all, self._fd, bufs)

    async def commit(self, etag: str, meta: dict[str, Any], *,
                     size: int | None = None) -> ObjectInfo | PartInfo:
        if self._fd is None:
            raise StorageError("writer is closed")
        fd, self._fd = self._fd, None
        bufs, self._buf, self._buffered = self._buf, [], 0
        return await asyncio.to_thread(self._commit_sync, fd, bufs, etag, dict(meta), size)

    def _commit_sync(self, fd: int, bufs: list[bytes], etag: str, meta: dict[str, Any],
                     size: int | None) -> ObjectInfo | PartInfo:
        try:
            try:
                write_all(fd, bufs)
                if self._sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            return self._commit_fn(self._path, self._size, etag, meta, size)
        finally:
            # After a successful commit the staging name is gone (renamed); after a failure
            # nothing refers to it.
            unlink_quiet(self._path)

    async def abort(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        self._buf, self._buffered = [], 0
        await asyncio.to_thread(_close_and_unlink, fd, self._path)


def _close_and_unlink(fd: int, path: Path) -> None:
    try:
        os.close(fd)
    finally:
        unlink_quiet(path)


class FSObjectReader:
    """An open object: ``info`` plus one open fd per data piece."""

    def __init__(self, info: ObjectInfo, fds: list[int], sizes: list[int]) -> None:
        self.info = info
        self._fds = fds
        self._sizes = sizes

    async def read(self, start: int = 0, end: int | None = None,
                   chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Yield bytes [start, end) across all pieces, at most ``chunk_size`` at a time."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        total = sum(self._sizes)
        end = total if end is None else min(end, total)
        start = max(start, 0)
        base = 0
        for fd, size in zip(self._fds, self._sizes):
            lo, hi = max(start - base, 0), min(end - base, size)
            pos = lo
            while pos < hi:
                if not self._fds:
                    raise StorageError("reader is closed")
                n = min(chunk_size, hi - pos)
                chunk = await asyncio.to_thread(os.pread, fd, n, pos)
                if not chunk:
                    raise StorageError("data file shorter than its record")
                pos += len(chunk)
                yield chunk
            base += size
            if base >= end:
                break

    async def close(self) -> None:
        self._close_now()

    def _close_now(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    async def __aenter__(self) -> "FSObjectReader":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self) -> None:
        for fd in getattr(self, "_fds", ()):
            try:
                os.close(fd)
            except OSError:
                pass


def open_pieces(paths: list[Path]) -> tuple[list[int], list[int]]:
    """Open every piece read-only (blocking); all or nothing. Raises FileNotFoundError."""
    fds: list[int] = []
    try:
        for p in paths:
            fds.append(os.open(p, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
        return fds, [os.fstat(fd).st_size for fd in fds]
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
