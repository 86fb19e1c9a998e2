"""Where things live under the data dir: S3 names -> safe filesystem paths.

Layout (every name below is produced here; nothing from a request reaches a path unchecked)::

    <root>/
      CLEAN                                    written by close(), removed by open()
      staging/<id>.tmp                         in-flight object / part data, temp docs
      staging/<id>.trash/                      a deleted bucket being removed
      buckets/<bucket>/
        bucket.json                            BucketRecord
        index.sqlite3 (+ -wal, -shm)           derived listing index (see index.py)
        config/<kind>.json                     named per-bucket JSON documents
        objects/<hh>/<h>.json                  ObjectRecord sidecar, h = sha256(key utf-8), hh = h[:2]
        objects/<hh>/<h>.<id>.data             data piece(s) named by that sidecar
        objects/<hh>/<h>.json.<id>.tmp         sidecar being written (debris if found at start)
        uploads/<upload_id>/upload.json        UploadRecord
        uploads/<upload_id>/<nnnnn>.json       PartRecord, nnnnn = part number, 5 digits
        uploads/<upload_id>/<nnnnn>.<id>.data  part data

``<id>`` is 24 random lowercase hex digits. A key never becomes a path component: only its SHA-256
does, so ``..``, ``/``, NUL-free unicode, 1024-byte segments and the like cannot escape or collide
with the bucket directory structure. Bucket names come validated from the gateway (S3 bucket naming
rules) and are still refused here if they could act as anything but a single path component.
Upload ids are generated here (url-safe base64) and re-checked whenever a request names one.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidKey, NoSuchBucket, NoSuchUpload

__all__ = [
    "MAX_KEY_BYTES", "Layout", "BucketPaths", "encode_key", "key_hash", "new_id", "new_upload_id",
    "check_bucket_name", "check_upload_id", "check_config_kind", "DATA_NAME_RE", "PART_DATA_RE",
]

MAX_KEY_BYTES = 1024
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_UPLOAD_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{32}$")
_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
DATA_NAME_RE = re.compile(r"^([0-9a-f]{64})\.[0-9a-f]{24}\.data$")
PART_DATA_RE = re.compile(r"^(\d{5})\.[0-9a-f]{24}\.data$")
SIDECAR_TMP_RE = re.compile(r"^([0-9a-f]{64})\.json\.[0-9a-f]{24}\.tmp$")


def encode_key(key: str) -> bytes:
    """The key's UTF-8 bytes. Raises InvalidKey for an empty, oversized or non-UTF-8 key."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("key must be a non-empty string")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates
        raise InvalidKey("key is not valid UTF-8") from e
    if len(raw) > MAX_KEY_BYTES:
        raise InvalidKey(f"key is {len(raw)} bytes; the limit is {MAX_KEY_BYTES}")
    return raw


def key_hash(key: str) -> str:
    return hashlib.sha256(encode_key(key)).hexdigest()


def new_id() -> str:
    return secrets.token_hex(12)


def new_upload_id() -> str:
    """32 url-safe characters, never starting with "-": command lines take an id that starts
    with one for an option (aws s3api ... --upload-id -x... fails 1 time in 64)."""
    while True:
        upload_id = secrets.token_urlsafe(24)
        if not upload_id.startswith("-"):
            return upload_id


def check_bucket_name(name: str) -> str:
    """Defence in depth: the gateway validated S3 naming already. A name that is not one safe
    path component is reported as a missing bucket."""
    if (not isinstance(name, str) or not _BUCKET_RE.match(name) or ".." in name
            or "/" in name or "\\" in name or "\x00" in name):
        raise NoSuchBucket(str(name))
    return name


def check_upload_id(upload_id: str) -> str:
    if not isinstance(upload_id, str) or not _UPLOAD_ID_RE.match(upload_id):
        raise NoSuchUpload(str(upload_id))
    return upload_id


def check_config_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        raise ValueError(f"invalid bucket config kind {kind!r}")
    return kind


@dataclass(frozen=True, slots=True)
class BucketPaths:
    dir: Path

    @property
    def record(self) -> Path:
        return self.dir / "bucket.json"

    @property
    def index(self) -> Path:
        return self.dir / "index.sqlite3"

    @property
    def objects(self) -> Path:
        return self.dir / "objects"

    @property
    def uploads(self) -> Path:
        return self.dir / "uploads"

    @property
    def config_dir(self) -> Path:
        return self.dir / "config"

    def config(self, kind: str) -> Path:
        return self.config_dir / f"{check_config_kind(kind)}.json"

    def shard(self, h: str) -> Path:
        return self.objects / h[:2]

    def sidecar(self, h: str) -> Path:
        return self.shard(h) / f"{h}.json"

    def data_name(self, h: str) -> str:
        return f"{h}.{new_id()}.data"

    def upload_dir(self, upload_id: str) -> Path:
        return self.uploads / check_upload_id(upload_id)

    def upload_record(self, upload_id: str) -> Path:
        return self.upload_dir(upload_id) / "upload.json"

    def part_record(self, upload_id: str, part_number: int) -> Path:
        return self.upload_dir(upload_id) / f"{part_number:05d}.json"


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def buckets(self) -> Path:
        return self.root / "buckets"

    @property
    def clean_marker(self) -> Path:
        return self.root / "CLEAN"

    def bucket(self, name: str) -> BucketPaths:
        return BucketPaths(self.buckets / check_bucket_name(name))

    def staging_file(self) -> Path:
        return self.staging / f"{new_id()}.tmp"

    def trash_dir(self) -> Path:
        return self.staging / f"{new_id()}.trash"
