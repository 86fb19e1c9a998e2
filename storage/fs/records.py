"""The JSON records kept on disk, as plain encode/decode functions.

Every record is one UTF-8 JSON object whose ``"v"`` member is the format version; a record with an
unknown version (or a missing or mistyped member) is refused with ``CorruptRecord``. Version 1::

    bucket.json      {"v": 1, "name": str, "created": float, "region": str, "owner": str}
    <h>.json         {"v": 1, "key": str, "size": int, "etag": str, "last_modified": float,
    (object sidecar)  "meta": {...}, "part_sizes": [int, ...] | null,
                      "data": [str, ...],            data file names in the sidecar's directory,
                                                     in byte order; each matches <h>.<id>.data
                      "upload_id": str | null}       the multipart upload it completed, if any
    upload.json      {"v": 1, "upload_id": str, "key": str, "initiated": float, "meta": {...}}
    <nnnnn>.json     {"v": 1, "part_number": int, "size": int, "etag": str,
    (part record)     "last_modified": float, "meta": {...}, "data": str}
    config/<k>.json  {"v": 1, "kind": str, "doc": {...}}
    CLEAN            {"v": 1, "closed": float}

``meta`` is the gateway's dict, stored verbatim. For an object, ``sum(part_sizes) == size`` and
``len(part_sizes) == len(data)`` when ``part_sizes`` is set; otherwise ``data`` names one file.
"""
from __future__ import annotations

import json
from typing import Any

from ..base import BucketInfo, ObjectInfo, PartInfo, UploadInfo
from ..errors import StorageError
from .layout import DATA_NAME_RE, PART_DATA_RE

__all__ = [
    "FORMAT_VERSION", "CorruptRecord", "dump", "load",
    "encode_bucket", "decode_bucket", "encode_object", "decode_object",
    "encode_upload", "decode_upload", "encode_part", "decode_part",
    "encode_config", "decode_config",
]

FORMAT_VERSION = 1


class CorruptRecord(StorageError):
    """A record on disk is unreadable or has an unknown format version."""


def dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptRecord(f"{what}: not JSON") from e
    if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION:
        raise CorruptRecord(f"{what}: unknown format version {doc.get('v') if isinstance(doc, dict) else None!r}")
    return doc


def _get(doc: dict[str, Any], name: str, types: type | tuple[type, ...], what: str) -> Any:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, types):
        raise CorruptRecord(f"{what}: bad {name!r}")
    return value


# -- buckets

def encode_bucket(info: BucketInfo) -> bytes:
    return dump({"v": FORMAT_VERSION, "name": info.name, "created": info.created,
                 "region": info.region, "owner": info.owner})


def decode_bucket(raw: bytes) -> BucketInfo:
    d = load(raw, "bucket.json")
    w = "bucket.json"
    return BucketInfo(name=_get(d, "name", str, w), created=float(_get(d, "created", (int, float), w)),
                      region=_get(d, "region", str, w), owner=_get(d, "owner", str, w))


# -- objects

def encode_object(info: ObjectInfo, data: list[str], upload_id: str | None = None) -> bytes:
    return dump({"v": FORMAT_VERSION, "key": info.key, "size": info.size, "etag": info.etag,
                 "last_modified": info.last_modified, "meta": info.meta,
                 "part_sizes": info.part_sizes, "data": data, "upload_id": upload_id,
                 "stored_size": info.stored_size})


def decode_object(raw: bytes, h: str | None = None) -> tuple[ObjectInfo, list[str], str | None]:
    """-> (info, data file names, upload id). ``h``, when given, is the key hash the sidecar is
    filed under; every data name must carry it (a sidecar cannot point outside its own files)."""
    w = "object sidecar"
    d = load(raw, w)
    size = _get(d, "size", int, w)
    data = _get(d, "data", list, w)
    part_sizes = d.get("part_sizes")
    stored_size = d.get("stored_size")
    if stored_size is not None and (not isinstance(stored_size, int) or stored_size < 0):
        raise CorruptRecord(f"{w}: bad stored_size")
    for name in data:
        m = DATA_NAME_RE.match(name) if isinstance(name, str) else None
        if m is None or (h is not None and m.group(1) != h):
            raise CorruptRecord(f"{w}: bad data file name {name!r}")
    if part_sizes is not None:
        if (not isinstance(part_sizes, list) or len(part_sizes) != len(data)
                or not all(isinstance(n, int) and n >= 0 for n in part_sizes)
                or sum(part_sizes) != (size if stored_size is None else stored_size)):
            raise CorruptRecord(f"{w}: bad part_sizes")
    elif len(data) != 1:
        raise CorruptRecord(f"{w}: a single-piece object names {len(data)} data files")
    upload_id = d.get("upload_id")
    info = ObjectInfo(key=_get(d, "key", str, w), size=size, etag=_get(d, "etag", str, w),
                      last_modified=float(_get(d, "last_modified", (int, float), w)),
                      meta=_get(d, "meta", dict, w), part_sizes=part_sizes,
                      stored_size=stored_size)
    return info, list(data), upload_id if isinstance(upload_id, str) else None


# -- multipart

def encode_upload(info: UploadInfo) -> bytes:
    return dump({"v": FORMAT_VERSION, "upload_id": info.upload_id, "key": info.key,
                 "initiated": info.initiated, "meta": info.meta})


def decode_upload(raw: bytes) -> UploadInfo:
    w = "upload.json"
    d = load(raw, w)
    return UploadInfo(upload_id=_get(d, "upload_id", str, w), key=_get(d, "key", str, w),
                      initiated=float(_get(d, "initiated", (int, float), w)),
                      meta=_get(d, "meta", dict, w))


def encode_part(info: PartInfo, data: str) -> bytes:
    return dump({"v": FORMAT_VERSION, "part_number": info.part_number, "size": info.size,
                 "etag": info.etag, "last_modified": info.last_modified, "meta": info.meta,
                 "data": data})


def decode_part(raw: bytes) -> tuple[PartInfo, str]:
    w = "part record"
    d = load(raw, w)
    data = _get(d, "data", str, w)
    if not PART_DATA_RE.match(data):
        raise CorruptRecord(f"{w}: bad data file name {data!r}")
    info = PartInfo(part_number=_get(d, "part_number", int, w), size=_get(d, "size", int, w),
                    etag=_get(d, "etag", str, w),
                    last_modified=float(_get(d, "last_modified", (int, float), w)),
                    meta=_get(d, "meta", dict, w))
    return info, data


# -- bucket configuration documents

def encode_config(kind: str, doc: dict[str, Any]) -> bytes:
    return dump({"v": FORMAT_VERSION, "kind": kind, "doc": doc})


def decode_config(raw: bytes) -> dict[str, Any]:
    return _get(load(raw, "bucket config"), "doc", dict, "bucket config")
