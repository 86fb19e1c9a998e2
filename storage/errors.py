"""Storage errors. The gateway maps each class to its S3 error code (one table, at the edge)."""
from __future__ import annotations

__all__ = [
    "StorageError", "NoSuchBucket", "BucketExists", "BucketNotEmpty", "NoSuchKey",
    "NoSuchUpload", "InvalidPart", "InvalidKey",
]


class StorageError(Exception):
    """Root of every storage failure."""


class NoSuchBucket(StorageError):
    pass


class BucketExists(StorageError):
    def __init__(self, name: str, owner: str) -> None:
        super().__init__(name)
        self.owner = owner


class BucketNotEmpty(StorageError):
    pass


class NoSuchKey(StorageError):
    pass


class NoSuchUpload(StorageError):
    pass


class InvalidPart(StorageError):
    pass


class InvalidKey(StorageError):
    """A key storage cannot hold (empty, over 1024 UTF-8 bytes, not valid UTF-8)."""
