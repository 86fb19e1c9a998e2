"""The storage contract: buckets, objects and multipart uploads as names and opaque bytes.

Storage knows nothing of HTTP, keys or encryption. An object is a byte stream plus a record:
``size``, ``etag`` and ``last_modified`` (which listings need) and ``meta``, a JSON-serialisable
dict owned by the gateway (content headers, user metadata, checksums, SSE envelope...) that storage
persists verbatim and never interprets.

Writes go through a writer: bytes are streamed into a staging file, then ``commit`` makes the
object visible in one atomic step (fsync + rename of the sidecar record). ``abort`` throws the
staging data away. Readers opened before a commit keep reading the old bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol

__all__ = [
    "BucketInfo", "ObjectInfo", "ListResult", "PartInfo", "UploadInfo", "ListUploadsResult",
    "ObjectWriter", "ObjectReader", "ObjectStore", "WriteCondition", "state_token",
]


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    created: float            # epoch seconds
    region: str
    owner: str                # account id


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str                 # without quotes
    last_modified: float      # epoch seconds
    meta: dict[str, Any] = field(default_factory=dict)
    # Byte size of each stored piece when the object was assembled from parts (multipart),
    # in order; None for a single-piece object.
    part_sizes: list[int] | None = None
    # Bytes held in storage when they differ from ``size`` (the object's size as S3 reports it),
    # e.g. ciphertext of an encrypted object. Readers address stored bytes.
    stored_size: int | None = None


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """A conditional write or delete, checked at the commit point under the key's lock, so two
    racing conditional requests can never both pass (S3 conditional writes, AWS: userguide/
    conditional-writes.html, conditional-deletes.html).

    Evaluated in this order against the key's current record:

        expect_state and state_token(current) != state   -> ConditionalConflict
        if_none_match and current exists                  -> PreconditionFailed("If-None-Match")
        if_match and current is missing                   -> NoSuchKey
        if_match not in ("*", current.etag)               -> PreconditionFailed("If-Match")

    ``state`` is the key's token when the request began (PutObject: its pre-check;
    CompleteMultipartUpload: CreateMultipartUpload): S3 answers 409 ConditionalRequestConflict,
    not 412, when the key changed while the conditional request was in flight.
    """
    if_none_match: bool = False
    if_match: str | None = None       # ETag without quotes; "*" = the key must exist
    expect_state: bool = False
    state: str | None = None          # state_token() of the key when the request began


def state_token(info: "ObjectInfo | None") -> str | None:
    """Names one committed version of a key (None: absent), for WriteCondition.state."""
    if info is None:
        return None
    return f"{info.etag}/{info.last_modified!r}/{info.size}"


@dataclass(frozen=True, slots=True)
class ListResult:
    objects: list[ObjectInfo]         # meta may be empty in listings
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str | None           # last key or common prefix returned when truncated


@dataclass(frozen=True, slots=True)
class PartInfo:
    part_number: int
    size: int
    etag: str                 # without quotes
    last_modified: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UploadInfo:
    upload_id: str
    key: str
    initiated: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListUploadsResult:
    uploads: list[UploadInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


class ObjectWriter(Protocol):
    """A staged object (or part) being written. Exactly one of commit/abort must be called."""

    async def write(self, data: bytes) -> None: ...

    @property
    def size(self) -> int: ...

    async def commit(self, etag: str, meta: dict[str, Any], *,
                     size: int | None = None) -> ObjectInfo | PartInfo:
        """fsync + atomic rename; returns the committed record. ``size`` is the object's
        reported size when it differs from the bytes written (then recorded as stored_size;
        parts ignore it). Raises NoSuchBucket / NoSuchUpload if the bucket or upload
        disappeared meanwhile."""

    async def abort(self) -> None: ...


class ObjectReader(Protocol):
    """An open object. Holds its data files open so a concurrent overwrite or delete does not
    change what this reader returns."""

    info: ObjectInfo

    def read(self, start: int = 0, end: int | None = None,
             chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Yield stored bytes [start, end) (end exclusive, None = to the end) across all
        pieces."""

    async def close(self) -> None: ...


class ObjectStore(Protocol):
    """Operations named after S3's. Errors are ``storage.errors.StorageError`` subclasses."""

    # -- lifecycle
    async def open(self) -> None:
        """Create directories, sweep staging debris, reconcile indexes."""

    async def close(self) -> None: ...

    # -- buckets
    async def create_bucket(self, name: str, *, region: str, owner: str) -> BucketInfo:
        """Raises BucketExists (with .owner) if the bucket exists."""

    async def head_bucket(self, name: str) -> BucketInfo: ...
    async def delete_bucket(self, name: str) -> None:
        """Raises BucketNotEmpty if it holds objects; in-progress multipart uploads are
        aborted with the bucket (as S3 does)."""

    async def list_buckets(self) -> list[BucketInfo]: ...

    async def put_bucket_config(self, name: str, kind: str, doc: dict[str, Any] | None) -> None:
        """Store (or with None delete) a named per-bucket JSON document, e.g. "encryption"."""

    async def get_bucket_config(self, name: str, kind: str) -> dict[str, Any] | None: ...

    # -- objects
    async def open_writer(self, bucket: str, key: str, *,
                          condition: WriteCondition | None = None) -> ObjectWriter:
        """``condition`` is checked when the writer commits (see WriteCondition)."""
    async def open_object(self, bucket: str, key: str) -> ObjectReader:
        """Raises NoSuchKey."""

    async def head_object(self, bucket: str, key: str) -> ObjectInfo: ...
    async def update_object_meta(self, bucket: str, key: str,
                                 changes: dict[str, Any]) -> ObjectInfo:
        """Set (a None value: remove) members of the key's ``meta`` in one atomic step, the
        bytes, ETag and Last-Modified unchanged (PutObjectTagging). A concurrent commit of the
        key either precedes it (and is updated) or replaces it whole. Raises NoSuchKey."""
    async def delete_object(self, bucket: str, key: str, *,
                            condition: WriteCondition | None = None) -> bool:
        """True if something was deleted; deleting a missing key is not an error unless
        ``condition`` names an ETag (then NoSuchKey). Raises PreconditionFailed,
        ConditionalConflict."""

    async def list_objects(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                           start_after: str = "", max_keys: int = 1000) -> ListResult:
        """Keys > start_after in UTF-8 byte order. Each common prefix counts toward max_keys."""

    # -- multipart
    async def create_multipart_upload(self, bucket: str, key: str,
                                      meta: dict[str, Any]) -> UploadInfo: ...
    async def get_multipart_upload(self, bucket: str, upload_id: str) -> UploadInfo:
        """Raises NoSuchUpload."""

    async def open_part_writer(self, bucket: str, upload_id: str,
                               part_number: int) -> ObjectWriter: ...
    async def list_parts(self, bucket: str, upload_id: str) -> list[PartInfo]:
        """All committed parts, ascending part number."""

    async def complete_multipart_upload(self, bucket: str, upload_id: str,
                                        part_numbers: list[int], etag: str,
                                        meta: dict[str, Any], *,
                                        size: int | None = None,
                                        condition: WriteCondition | None = None) -> ObjectInfo:
        """Assemble the named parts (without copying their bytes) into the object, atomically;
        the upload disappears. ``size`` as for ObjectWriter.commit. Raises NoSuchUpload,
        InvalidPart, and for ``condition`` PreconditionFailed, ConditionalConflict, NoSuchKey
        (the upload then stays)."""

    async def abort_multipart_upload(self, bucket: str, upload_id: str) -> None: ...
    async def list_multipart_uploads(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                                     key_marker: str = "", upload_id_marker: str = "",
                                     max_uploads: int = 1000) -> ListUploadsResult: ...
