"""FSObjectStore: the filesystem ObjectStore (buckets, objects, listing, lifecycle).

On-disk layout: see ``layout.py``; records: ``records.py``; index: ``index.py``; multipart:
``multipart.py``; crash recovery: ``recovery.py``.

Commit of a PUT (all in one worker-thread call, see ``io.py``)::

    staging/<id>.tmp --fsync--> rename to objects/<hh>/<h>.<id>.data
    sidecar -> objects/<hh>/<h>.json.<id>.tmp, fsync
    with bucket lock:                        # serialises the visible step per bucket
        read old sidecar (its data names); check the WriteCondition against it
        rename tmp over <h>.json                                      <- THE commit point
        upsert the index row
    fsync objects/<hh>/; unlink the old version's data files

Data writes, fsyncs and sidecar writes run concurrently; only the rename + index upsert (no I/O
wait) is serialised, so the last sidecar renamed is the index row kept: last committed wins.
Readers keep fds, so unlinking superseded data never disturbs them (POSIX unlink semantics).

Lifecycle: ``open()`` empties ``staging/``; if ``CLEAN`` (written by ``close()``) is missing, the
last run did not shut down cleanly and every bucket is swept and its index rebuilt from sidecars.
"""
from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ..base import BucketInfo, ListResult, ObjectInfo, WriteCondition, state_token
from ..errors import (BucketExists, BucketNotEmpty, ConditionalConflict, InvalidKey,
                      NoSuchBucket, NoSuchKey, PreconditionFailed, StorageError)
from .atomic import fsync_dir, read_bytes, remove_tree, unlink_quiet, write_atomic
from .index import BucketIndex, IndexRow
from .io import FSObjectReader, FSObjectWriter, open_pieces
from .layout import BucketPaths, Layout, check_bucket_name, encode_key, key_hash, new_id
from .multipart import MultipartMixin
from .records import (CorruptRecord, FORMAT_VERSION, decode_bucket, decode_config,
                      decode_object, dump, encode_bucket, encode_config, encode_object)
from .recovery import scan_objects, sweep_dir, sweep_uploads

__all__ = ["FSObjectStore"]

log = logging.getLogger("coffer.storage")
_OPEN_RETRIES = 8


class _Bucket:
    """A bucket's in-process state: its paths, index connection and commit lock."""

    __slots__ = ("name", "paths", "index", "deleted")

    def __init__(self, name: str, paths: BucketPaths, index: BucketIndex) -> None:
        self.name = name
        self.paths = paths
        self.index = index
        self.deleted = False

    @property
    def lock(self) -> threading.RLock:
        return self.index.lock


class FSObjectStore(MultipartMixin):
    """``ObjectStore`` on a local filesystem. ``sync=False`` skips fsync (benchmarks, tests)."""

    def __init__(self, root: str | Path, *, clock: Callable[[], float] = time.time,
                 sync: bool = True) -> None:
        self.layout = Layout(Path(root).absolute())
        self.clock = clock
        self.sync = sync
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._upload_locks = [threading.Lock() for _ in range(64)]
        self._dirty = False
        self._opened = False

    # -- lifecycle

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        lay = self.layout
        for d in (lay.root, lay.staging, lay.buckets):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)   # private, whatever the umask
        sweep_dir(lay.staging)
        clean = lay.clean_marker.exists()
        if clean:
            unlink_quiet(lay.clean_marker)
            if self.sync:
                fsync_dir(lay.root)
        for name in sorted(os.listdir(lay.buckets)):
            paths = BucketPaths(lay.buckets / name)
            if not paths.record.exists():
                log.warning("storage: %s has no bucket.json; ignored", paths.dir)
                continue
            index = BucketIndex(paths.index, sync=self.sync)
            fresh = index.open()
            if not clean:
                sweep_uploads(paths)
            if fresh or not clean:
                n = index.rebuild(scan_objects(paths, repair=not clean))
                log.info("storage: rebuilt index of %s (%d objects)", name, n)
            self._buckets[name] = _Bucket(name, paths, index)
        self._dirty = False
        self._opened = True

    async def close(self) -> None:
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        with self._lock:
            buckets, self._buckets = list(self._buckets.values()), {}
        for b in buckets:
            b.index.close()
        if self._opened and not self._dirty:
            write_atomic(self.layout.clean_marker,
                         dump({"v": FORMAT_VERSION, "closed": self.clock()}),
                         f"CLEAN.{new_id()}.tmp", sync=self.sync)
        self._opened = False

    async def rebuild_index(self, bucket: str) -> int:
        """Re-derive the bucket's index from its sidecars (``coffer fsck``); returns the count."""
        def run() -> int:
            b = self._bucket(bucket)
            with b.lock:
                return b.index.rebuild(scan_objects(b.paths, repair=False))
        return await asyncio.to_thread(run)

    # -- bucket state (blocking helpers)

    def _bucket(self, name: str) -> _Bucket:
        check_bucket_name(name)
        with self._lock:
            b = self._buckets.get(name)
            if b is not None:
                return b
            paths = self.layout.bucket(name)
            if not paths.record.exists():
                raise NoSuchBucket(name)
            index = BucketIndex(paths.index, sync=self.sync)
            if index.open():
                index.rebuild(scan_objects(paths, repair=False))
            b = self._buckets[name] = _Bucket(name, paths, index)
            return b

    def _index_failed(self, b: _Bucket, e: Exception) -> None:
        # The sidecar (the truth) is committed; a stale index is repaired by the next open().
        self._dirty = True
        log.error("storage: index update failed for bucket %s: %s", b.name, e)

    # -- buckets

    async def create_bucket(self, name: str, *, region: str, owner: str) -> BucketInfo:
        info = BucketInfo(name=check_bucket_name(name), created=self.clock(), region=region,
                          owner=owner)
        return await asyncio.to_thread(self._create_bucket_sync, info)

    def _create_bucket_sync(self, info: BucketInfo) -> BucketInfo:
        paths = self.layout.bucket(info.name)
        existing = read_bytes(paths.record)
        if existing is not None:
            raise BucketExists(info.name, decode_bucket(existing).owner)
        # Built in staging, then renamed into place: a bucket exists whole or not at all.
        tmp = self.layout.staging / f"{new_id()}.bucket"
        tmp.mkdir(mode=0o700)
        try:
            for sub in ("objects", "uploads", "config"):
                (tmp / sub).mkdir(mode=0o700)
            for i in range(256):
                (tmp / "objects" / f"{i:02x}").mkdir(mode=0o700)
            write_atomic(tmp / "bucket.json", encode_bucket(info), f"bucket.json.{new_id()}.tmp",
                         sync=self.sync)
            if self.sync:
                fsync_dir(tmp / "objects")
                fsync_dir(tmp)
            try:
                os.rename(tmp, paths.dir)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                raw = read_bytes(paths.record)
                raise BucketExists(info.name, decode_bucket(raw).owner if raw else "") from None
        finally:
            remove_tree(tmp)
        if self.sync:
            fsync_dir(self.layout.buckets)
        self._bucket(info.name)
        return info

    async def head_bucket(self, name: str) -> BucketInfo:
        def run() -> BucketInfo:
            raw = read_bytes(self.layout.bucket(name).record)
            if raw is None:
                raise NoSuchBucket(name)
            return decode_bucket(raw)
        return await asyncio.to_thread(run)

    async def delete_bucket(self, name: str) -> None:
        await asyncio.to_thread(self._delete_bucket_sync, name)

    def _delete_bucket_sync(self, name: str) -> None:
        b = self._bucket(name)
        trash = self.layout.trash_dir()
        with b.lock:
            if b.deleted:
                raise NoSuchBucket(name)
            # In-progress multipart uploads do not keep a bucket alive: S3 deletes a bucket
            # whose only content is uploads and aborts them (they leave with the directory;
            # a part or completion racing this finds its bucket gone).
            if not b.index.is_empty():
                raise BucketNotEmpty(name)
            b.deleted = True
            b.index.close()
            with self._lock:
                self._buckets.pop(name, None)
            os.rename(b.paths.dir, trash)
        if self.sync:
            fsync_dir(self.layout.buckets)
        remove_tree(trash)

    async def list_buckets(self) -> list[BucketInfo]:
        def run() -> list[BucketInfo]:
            out = []
            for name in sorted(os.listdir(self.layout.buckets)):
                raw = read_bytes(self.layout.buckets / name / "bucket.json")
                if raw is not None:
                    out.append(decode_bucket(raw))
            return out
        return await asyncio.to_thread(run)

    async def put_bucket_config(self, name: str, kind: str, doc: dict[str, Any] | None) -> None:
        def run() -> None:
            b = self._bucket(name)
            path = b.paths.config(kind)
            if doc is None:
                unlink_quiet(path)
                if self.sync:
                    fsync_dir(path.parent)
                return
            write_atomic(path, encode_config(kind, doc), f"{path.name}.{new_id()}.tmp",
                         sync=self.sync)
        await asyncio.to_thread(run)

    async def get_bucket_config(self, name: str, kind: str) -> dict[str, Any] | None:
        def run() -> dict[str, Any] | None:
            raw = read_bytes(self._bucket(name).paths.config(kind))
            return None if raw is None else decode_config(raw)
        return await asyncio.to_thread(run)

    # -- objects

    async def open_writer(self, bucket: str, key: str, *,
                          condition: WriteCondition | None = None) -> FSObjectWriter:
        kbytes = encode_key(key)
        await asyncio.to_thread(self._bucket, bucket)
        commit = functools.partial(self._commit_object, bucket, key, kbytes, condition)
        return await self._new_writer(commit)

    async def _new_writer(self, commit: Callable[..., Any]) -> FSObjectWriter:
        path = self.layout.staging_file()
        fd = await asyncio.to_thread(
            os.open, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
            0o600)
        return FSObjectWriter(fd, path, commit, sync=self.sync)

    def _commit_object(self, bucket: str, key: str, kbytes: bytes,
                       condition: WriteCondition | None, staged: Path, written: int,
                       etag: str, meta: dict[str, Any], size: int | None) -> ObjectInfo:
        b = self._bucket(bucket)
        h = key_hash(key)
        name = b.paths.data_name(h)
        try:
            os.rename(staged, b.paths.shard(h) / name)
        except FileNotFoundError:
            raise NoSuchBucket(bucket) from None
        info = ObjectInfo(key=key, size=written if size is None else size, etag=etag,
                          last_modified=self.clock(), meta=meta,
                          stored_size=None if size is None or size == written else written)
        return self._publish(b, h, kbytes, info, [name], None, condition)

    def _publish(self, b: _Bucket, h: str, kbytes: bytes, info: ObjectInfo, data: list[str],
                 upload_id: str | None, condition: WriteCondition | None = None) -> ObjectInfo:
        """Commit ``info`` naming ``data`` (already in the shard dir) as the key's version."""
        shard = b.paths.shard(h)
        sidecar = b.paths.sidecar(h)
        tmp_name = f"{h}.json.{new_id()}.tmp"
        try:
            try:
                if self.sync:       # the data names must be durable before a sidecar names them
                    fsync_dir(shard)
                write_atomic(shard / tmp_name, encode_object(info, data, upload_id), tmp_name,
                             sync=self.sync, sync_dir=False)
            except FileNotFoundError:
                raise NoSuchBucket(b.name) from None
            with b.lock:
                if b.deleted:
                    raise NoSuchBucket(b.name)
                raw = read_bytes(sidecar)
                if condition is not None:
                    _check_condition(condition, _current(raw, h, info.key), info.key)
                old = _sidecar_data(raw, h)
                os.replace(shard / tmp_name, sidecar)       # the commit point
                try:
                    b.index.upsert((kbytes, info.size, info.etag, info.last_modified))
                except Exception as e:
                    self._index_failed(b, e)
        except BaseException:
            unlink_quiet(shard / tmp_name)
            for n in data:
                unlink_quiet(shard / n)
            raise
        if self.sync:
            fsync_dir(shard)
        for n in old:
            if n not in data:
                unlink_quiet(shard / n)
        return info

    async def head_object(self, bucket: str, key: str) -> ObjectInfo:
        return (await asyncio.to_thread(self._read_sidecar, bucket, key))[0]

    async def update_object_meta(self, bucket: str, key: str,
                                 changes: dict[str, Any]) -> ObjectInfo:
        def run() -> ObjectInfo:
            b = self._bucket(bucket)
            h = key_hash(key)
            shard, sidecar = b.paths.shard(h), b.paths.sidecar(h)
            tmp_name = f"{h}.json.{new_id()}.tmp"
            # Read, rewrite and rename under the bucket lock: a commit of the key cannot slip
            # between the read and the rename (its sidecar would be lost, its data unlinked).
            with b.lock:
                if b.deleted:
                    raise NoSuchBucket(bucket)
                raw = read_bytes(sidecar)
                if raw is None:
                    raise NoSuchKey(key)
                info, data, upload_id = decode_object(raw, h)
                if info.key != key:
                    raise CorruptRecord(f"sidecar {h} holds another key")
                meta = dict(info.meta)
                for name, value in changes.items():
                    if value is None:
                        meta.pop(name, None)
                    else:
                        meta[name] = value
                new = replace(info, meta=meta)
                try:
                    write_atomic(shard / tmp_name, encode_object(new, data, upload_id),
                                 tmp_name, sync=self.sync, sync_dir=False)
                    os.replace(shard / tmp_name, sidecar)       # the commit point
                except BaseException:
                    unlink_quiet(shard / tmp_name)
                    raise
            if self.sync:
                fsync_dir(shard)
            return new
        return await asyncio.to_thread(run)

    def _read_sidecar(self, bucket: str, key: str) -> tuple[ObjectInfo, list[str], Path]:
        b = self._bucket(bucket)
        h = key_hash(key)
        raw = read_bytes(b.paths.sidecar(h))
        if raw is None:
            raise NoSuchKey(key)
        info, data, _ = decode_object(raw, h)
        if info.key != key:
            raise CorruptRecord(f"sidecar {h} holds another key")
        return info, data, b.paths.shard(h)

    async def open_object(self, bucket: str, key: str) -> FSObjectReader:
        def run() -> FSObjectReader:
            for _ in range(_OPEN_RETRIES):
                info, data, shard = self._read_sidecar(bucket, key)
                try:
                    fds, sizes = open_pieces([shard / n for n in data])
                except FileNotFoundError:
                    continue            # superseded between reading the sidecar and opening
                reader = FSObjectReader(info, fds, sizes)
                stored = info.size if info.stored_size is None else info.stored_size
                expected = info.part_sizes if info.part_sizes is not None else [stored]
                if sizes != expected:
                    reader._close_now()
                    raise CorruptRecord(f"{bucket}/{key}: data size differs from its record")
                return reader
            raise StorageError(f"{bucket}/{key}: too many concurrent overwrites while opening")
        return await asyncio.to_thread(run)

    async def delete_object(self, bucket: str, key: str, *,
                            condition: WriteCondition | None = None) -> bool:
        kbytes = encode_key(key)

        def run() -> bool:
            b = self._bucket(bucket)
            h = key_hash(key)
            sidecar = b.paths.sidecar(h)
            with b.lock:
                raw = read_bytes(sidecar)
                if condition is not None:
                    _check_condition(condition, _current(raw, h, key), key)
                if raw is None:
                    return False
                old = _sidecar_data(raw, h)
                os.unlink(sidecar)
                try:
                    b.index.delete(kbytes)
                except Exception as e:
                    self._index_failed(b, e)
            if self.sync:
                fsync_dir(sidecar.parent)
            for n in old:
                unlink_quiet(sidecar.parent / n)
            return True
        return await asyncio.to_thread(run)

    async def list_objects(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                           start_after: str = "", max_keys: int = 1000) -> ListResult:
        try:
            p, d, s = (x.encode("utf-8") for x in (prefix, delimiter, start_after))
        except UnicodeEncodeError as e:
            raise InvalidKey("prefix, delimiter or start_after is not valid UTF-8") from e

        def run() -> ListResult:
            b = self._bucket(bucket)
            with b.lock:
                if b.deleted:
                    raise NoSuchBucket(bucket)
                page = b.index.list_page(p, d, s, max_keys)
            return ListResult(
                objects=[_row_info(r) for r in page.rows],
                common_prefixes=[x.decode("utf-8") for x in page.prefixes],
                is_truncated=page.is_truncated,
                next_marker=page.next_marker.decode("utf-8") if page.next_marker else None)
        return await asyncio.to_thread(run)


def _row_info(row: IndexRow) -> ObjectInfo:
    return ObjectInfo(key=row[0].decode("utf-8"), size=row[1], etag=row[2], last_modified=row[3])


def _current(raw: bytes | None, h: str, key: str) -> ObjectInfo | None:
    """The key's committed record from its sidecar bytes (None: absent)."""
    if raw is None:
        return None
    info = decode_object(raw, h)[0]
    if info.key != key:
        raise CorruptRecord(f"sidecar {h} holds another key")
    return info


def _check_condition(cond: WriteCondition, current: ObjectInfo | None, key: str) -> None:
    """Raise unless ``cond`` holds for ``current``; the order is WriteCondition's."""
    if cond.expect_state and state_token(current) != cond.state:
        raise ConditionalConflict(key)
    if cond.if_none_match and current is not None:
        raise PreconditionFailed("If-None-Match")
    if cond.if_match is not None:
        if current is None:
            raise NoSuchKey(key)
        if cond.if_match != "*" and cond.if_match != current.etag:
            raise PreconditionFailed("If-Match")


def _sidecar_data(raw: bytes | None, h: str) -> list[str]:
    """Data names of a sidecar about to be replaced; an unreadable one keeps its files."""
    if raw is None:
        return []
    try:
        return decode_object(raw, h)[1]
    except CorruptRecord:
        return []
