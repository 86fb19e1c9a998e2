"""Start-up reconciliation: sweep debris a crash can leave, and re-derive index rows.

What a crash can leave, and what ``open()`` does about it (the sidecar / record rename is always
the commit point, so anything not named by a committed record is garbage)::

    staging/*                                   removed (in-flight writes, trashed buckets)
    objects/<hh>/<h>.json.<id>.tmp              removed (sidecar never renamed)
    objects/<hh>/<h>.<id>.data not in sidecar   removed (renamed in, sidecar never committed;
                                                or superseded, old version not yet unlinked)
    uploads/<id>/ without upload.json           removed (half-removed upload)
    uploads/<id>/ whose key's sidecar names it  removed (completed; dir not yet dropped)
    uploads/<id>/<nnnnn>.<id>.data unreferenced removed
    uploads/<id>/*.tmp                          removed

A sidecar that cannot be decoded (unknown version, damage) is left alone with all its data files
and reported; it is never guessed at. Sweeping is only safe while no writer is running, i.e. in
``open()``; ``rebuild_index`` (fsck) only reads.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

from .atomic import read_bytes, remove_tree, unlink_quiet
from .index import IndexRow
from .layout import DATA_NAME_RE, PART_DATA_RE, SIDECAR_TMP_RE, BucketPaths, key_hash
from .records import CorruptRecord, decode_object, decode_part, decode_upload

__all__ = ["sweep_dir", "scan_objects", "sweep_uploads"]

log = logging.getLogger("coffer.storage")


def sweep_dir(path: Path) -> int:
    """Remove everything inside ``path``; returns how many entries were removed."""
    n = 0
    for entry in _listdir(path):
        p = path / entry
        if p.is_dir() and not p.is_symlink():
            remove_tree(p)
        else:
            unlink_quiet(p)
        n += 1
    return n


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def scan_objects(paths: BucketPaths, *, repair: bool) -> Iterator[IndexRow]:
    """Yield an index row per committed sidecar; with ``repair``, delete unreferenced files."""
    for shard_name in sorted(_listdir(paths.objects)):
        shard = paths.objects / shard_name
        names = _listdir(shard)
        sidecars = {n[:-5] for n in names if n.endswith(".json") and len(n) == 69}
        referenced: dict[str, set[str] | None] = {}
        for h in sidecars:
            raw = read_bytes(shard / f"{h}.json")
            if raw is None:
                continue
            try:
                info, data, _ = decode_object(raw, h)
                if key_hash(info.key) != h:
                    raise CorruptRecord(f"sidecar {h} holds another key")
            except (CorruptRecord, ValueError) as e:
                log.warning("storage: skipping sidecar %s: %s", shard / f"{h}.json", e)
                referenced[h] = None        # keep every file of an unreadable record
                continue
            referenced[h] = set(data)
            yield (info.key.encode("utf-8"), info.size, info.etag, info.last_modified)
        if not repair:
            continue
        for n in names:
            m = DATA_NAME_RE.match(n)
            if m is not None:
                refs = referenced.get(m.group(1), set())
                if refs is not None and n not in refs:
                    log.info("storage: removing orphan data file %s", shard / n)
                    unlink_quiet(shard / n)
            elif SIDECAR_TMP_RE.match(n):
                unlink_quiet(shard / n)


def sweep_uploads(paths: BucketPaths) -> None:
    """Remove half-removed, completed-but-not-dropped and partial-part debris of uploads."""
    for upload_id in _listdir(paths.uploads):
        udir = paths.uploads / upload_id
        raw = read_bytes(udir / "upload.json")
        if raw is None:
            remove_tree(udir)
            continue
        try:
            upload = decode_upload(raw)
        except CorruptRecord as e:
            log.warning("storage: skipping upload %s: %s", udir, e)
            continue
        if _completed(paths, upload.key, upload_id):
            remove_tree(udir)
            continue
        names = _listdir(udir)
        referenced: set[str] = set()
        for n in names:
            if n.endswith(".json") and n != "upload.json":
                part = read_bytes(udir / n)
                try:
                    referenced.add(decode_part(part or b"")[1])
                except CorruptRecord:
                    referenced.update(x for x in names if x.startswith(n[:5] + "."))
        for n in names:
            if (PART_DATA_RE.match(n) and n not in referenced) or n.endswith(".tmp"):
                unlink_quiet(udir / n)


def _completed(paths: BucketPaths, key: str, upload_id: str) -> bool:
    try:
        h = key_hash(key)
    except Exception:
        return False
    raw = read_bytes(paths.sidecar(h))
    if raw is None:
        return False
    try:
        return decode_object(raw, h)[2] == upload_id
    except CorruptRecord:
        return False
