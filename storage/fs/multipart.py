"""Multipart uploads for FSObjectStore (a mixin; state lives in store.py).

An upload is a directory ``buckets/<b>/uploads/<upload_id>/`` holding ``upload.json`` and, per
committed part, ``<nnnnn>.json`` naming ``<nnnnn>.<id>.data`` (see records.py). It is built in
``staging/`` and renamed into place, and removed by renaming it back into ``staging/`` first, so
it exists whole or not at all.

Completion never copies bytes: each named part's data file is hard-linked into the object's shard
as ``<h>.<id>.data``, then the object sidecar naming those files in order (with ``part_sizes``)
is committed exactly like a PUT, recording the ``upload_id`` so a crash right after the commit
is recognised as a completed upload at start-up. Then the upload directory goes, with the parts
that were not named. Part commits, completion and abort of one upload are serialised by a striped
lock; everything runs in one worker-thread call per operation (safe under ``asyncio.shield``).
"""
from __future__ import annotations

import asyncio
import functools
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base import ListUploadsResult, ObjectInfo, PartInfo, UploadInfo, WriteCondition
from ..errors import InvalidPart, NoSuchBucket, NoSuchUpload
from .atomic import fsync_dir, link_or_rename, read_bytes, remove_tree, unlink_quiet, write_atomic
from .layout import check_upload_id, encode_key, key_hash, new_id, new_upload_id
from .records import CorruptRecord, decode_part, decode_upload, encode_part, encode_upload

if TYPE_CHECKING:
    from .io import FSObjectWriter
    from .store import _Bucket

__all__ = ["MultipartMixin", "MAX_PART_NUMBER"]

MAX_PART_NUMBER = 10_000


class MultipartMixin:
    # Provided by FSObjectStore.
    sync: bool
    _upload_locks: list[threading.Lock]

    def _upload_lock(self, upload_id: str) -> threading.Lock:
        return self._upload_locks[hash(upload_id) % len(self._upload_locks)]

    def _upload_sync(self, bucket: str, upload_id: str) -> tuple[_Bucket, UploadInfo, Path]:
        b = self._bucket(bucket)  # type: ignore[attr-defined]
        udir = b.paths.upload_dir(upload_id)
        raw = read_bytes(udir / "upload.json")
        if raw is None:
            raise NoSuchUpload(upload_id)
        return b, decode_upload(raw), udir

    async def create_multipart_upload(self, bucket: str, key: str,
                                      meta: dict[str, Any]) -> UploadInfo:
        encode_key(key)
        info = UploadInfo(upload_id=new_upload_id(), key=key, initiated=self.clock(),  # type: ignore[attr-defined]
                          meta=dict(meta))

        def run() -> UploadInfo:
            b = self._bucket(bucket)  # type: ignore[attr-defined]
            tmp = self.layout.staging / f"{new_id()}.upload"  # type: ignore[attr-defined]
            tmp.mkdir(mode=0o700)
            try:
                write_atomic(tmp / "upload.json", encode_upload(info), f"upload.json.{new_id()}.tmp",
                             sync=self.sync)
                with b.lock:
                    if b.deleted:
                        raise NoSuchBucket(bucket)
                    os.rename(tmp, b.paths.upload_dir(info.upload_id))
            except BaseException:
                remove_tree(tmp)
                raise
            if self.sync:
                fsync_dir(b.paths.uploads)
            return info
        return await asyncio.to_thread(run)

    async def get_multipart_upload(self, bucket: str, upload_id: str) -> UploadInfo:
        return (await asyncio.to_thread(self._upload_sync, bucket, upload_id))[1]

    async def open_part_writer(self, bucket: str, upload_id: str,
                               part_number: int) -> FSObjectWriter:
        if not isinstance(part_number, int) or not 1 <= part_number <= MAX_PART_NUMBER:
            raise InvalidPart(f"part number {part_number!r} is not in 1..{MAX_PART_NUMBER}")
        await asyncio.to_thread(self._upload_sync, bucket, upload_id)
        commit = functools.partial(self._commit_part, bucket, upload_id, part_number)
        return await self._new_writer(commit)  # type: ignore[attr-defined]

    def _commit_part(self, bucket: str, upload_id: str, part_number: int, staged: Path,
                     size: int, etag: str, meta: dict[str, Any],
                     _reported: int | None = None) -> PartInfo:
        b = self._bucket(bucket)  # type: ignore[attr-defined]
        udir = b.paths.upload_dir(upload_id)
        data = f"{part_number:05d}.{new_id()}.data"
        record = udir / f"{part_number:05d}.json"
        tmp_name = f"{record.name}.{new_id()}.tmp"
        info = PartInfo(part_number=part_number, size=size, etag=etag,
                        last_modified=self.clock(), meta=meta)  # type: ignore[attr-defined]
        try:
            try:
                os.rename(staged, udir / data)
                if self.sync:
                    fsync_dir(udir)
                write_atomic(udir / tmp_name, encode_part(info, data), tmp_name, sync=self.sync,
                             sync_dir=False)
            except FileNotFoundError:
                raise NoSuchUpload(upload_id) from None
            with self._upload_lock(upload_id):
                if not (udir / "upload.json").exists():
                    raise NoSuchUpload(upload_id)
                old = read_bytes(record)
                os.replace(udir / tmp_name, record)     # the part's commit point
        except BaseException:
            unlink_quiet(udir / tmp_name)
            unlink_quiet(udir / data)
            raise
        if self.sync:
            fsync_dir(udir)
        if old is not None:
            try:
                old_data = decode_part(old)[1]
            except CorruptRecord:
                old_data = data         # unreadable: leave its files alone
            if old_data != data:
                unlink_quiet(udir / old_data)
        return info

    async def list_parts(self, bucket: str, upload_id: str) -> list[PartInfo]:
        def run() -> list[PartInfo]:
            _, _, udir = self._upload_sync(bucket, upload_id)
            return [p for p, _ in _read_parts(udir)]
        return await asyncio.to_thread(run)

    async def complete_multipart_upload(self, bucket: str, upload_id: str,
                                        part_numbers: list[int], etag: str,
                                        meta: dict[str, Any], *,
                                        size: int | None = None,
                                        condition: WriteCondition | None = None) -> ObjectInfo:
        if not part_numbers:
            raise InvalidPart("no parts named")
        check_upload_id(upload_id)
        return await asyncio.to_thread(self._complete_sync, bucket, upload_id, list(part_numbers),
                                       etag, dict(meta), size, condition)

    def _complete_sync(self, bucket: str, upload_id: str, part_numbers: list[int], etag: str,
                       meta: dict[str, Any], size: int | None = None,
                       condition: WriteCondition | None = None) -> ObjectInfo:
        with self._upload_lock(upload_id):
            b, upload, udir = self._upload_sync(bucket, upload_id)
            parts: list[tuple[PartInfo, str]] = []
            for n in part_numbers:
                raw = read_bytes(udir / f"{n:05d}.json") if isinstance(n, int) and n > 0 else None
                if raw is None:
                    raise InvalidPart(f"part {n} was not uploaded")
                parts.append(decode_part(raw))
            h = key_hash(upload.key)
            shard = b.paths.shard(h)
            names: list[str] = []
            try:
                for _, data in parts:
                    name = b.paths.data_name(h)
                    link_or_rename(udir / data, shard / name)
                    names.append(name)
            except BaseException:
                for name in names:
                    unlink_quiet(shard / name)
                raise
            sizes = [p.size for p, _ in parts]
            stored = sum(sizes)
            info = ObjectInfo(key=upload.key, size=stored if size is None else size, etag=etag,
                              last_modified=self.clock(), meta=meta,  # type: ignore[attr-defined]
                              part_sizes=sizes,
                              stored_size=None if size is None or size == stored else stored)
            self._publish(b, h, encode_key(upload.key), info, names, upload_id,  # type: ignore[attr-defined]
                          condition)
            self._drop_upload(b, udir)
        return info

    def _drop_upload(self, b: _Bucket, udir: Path) -> None:
        trash = self.layout.trash_dir()  # type: ignore[attr-defined]
        os.rename(udir, trash)
        if self.sync:
            fsync_dir(b.paths.uploads)
        remove_tree(trash)

    async def abort_multipart_upload(self, bucket: str, upload_id: str) -> None:
        def run() -> None:
            with self._upload_lock(upload_id):
                b, _, udir = self._upload_sync(bucket, upload_id)
                self._drop_upload(b, udir)
        await asyncio.to_thread(run)

    async def list_multipart_uploads(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                                     key_marker: str = "", upload_id_marker: str = "",
                                     max_uploads: int = 1000) -> ListUploadsResult:
        uploads = await asyncio.to_thread(self._all_uploads, bucket)
        return select_uploads(uploads, prefix=prefix, delimiter=delimiter, key_marker=key_marker,
                              upload_id_marker=upload_id_marker, max_uploads=max_uploads)

    def _all_uploads(self, bucket: str) -> list[UploadInfo]:
        b = self._bucket(bucket)  # type: ignore[attr-defined]
        out = []
        for upload_id in os.listdir(b.paths.uploads):
            raw = read_bytes(b.paths.uploads / upload_id / "upload.json")
            if raw is not None:
                out.append(decode_upload(raw))
        return out


def _read_parts(udir: Path) -> list[tuple[PartInfo, str]]:
    parts = []
    for n in sorted(os.listdir(udir)):
        if n.endswith(".json") and n != "upload.json":
            raw = read_bytes(udir / n)
            if raw is not None:
                parts.append(decode_part(raw))
    parts.sort(key=lambda p: p[0].part_number)
    return parts


def select_uploads(uploads: list[UploadInfo], *, prefix: str, delimiter: str, key_marker: str,
                   upload_id_marker: str, max_uploads: int) -> ListUploadsResult:
    """ListMultipartUploads over an in-memory list: keys in UTF-8 byte order, then initiation
    time (ties by upload id). With ``upload_id_marker``, uploads of ``key_marker`` after that
    upload are included; without it, listing resumes after ``key_marker`` entirely."""
    if max_uploads <= 0:
        return ListUploadsResult([], [], False, None, None)
    p, d, km = prefix.encode(), delimiter.encode(), key_marker.encode()
    rows = sorted(((u.key.encode(), u.initiated, u.upload_id, u) for u in uploads
                   if u.key.encode().startswith(p)), key=lambda r: r[:3])
    if key_marker or upload_id_marker:
        pos = next((r[:3] for r in rows if r[0] == km and r[2] == upload_id_marker), None)
        if not upload_id_marker:
            rows = [r for r in rows if r[0] > km]
        elif pos is not None:
            rows = [r for r in rows if r[:3] > pos]
        else:
            rows = [r for r in rows if r[0] > km or (r[0] == km and r[2] > upload_id_marker)]
    out: list[UploadInfo] = []
    prefixes: list[str] = []
    last: tuple[str, str | None] | None = None
    truncated = False
    for k, _, _, u in rows:
        at = k.find(d, len(p)) if d else -1
        cp = k[:at + len(d)] if at >= 0 else None
        if cp is not None and (cp <= km or (prefixes and prefixes[-1] == cp.decode())):
            continue
        if len(out) + len(prefixes) >= max_uploads:
            truncated = True
            break
        if cp is not None:
            prefixes.append(cp.decode())
            last = (prefixes[-1], None)
        else:
            out.append(u)
            last = (u.key, u.upload_id)
    if not truncated or last is None:
        return ListUploadsResult(out, prefixes, False, None, None)
    return ListUploadsResult(out, prefixes, True, last[0], last[1])
