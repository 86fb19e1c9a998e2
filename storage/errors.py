"""Storage errors. The gateway maps each class to its S3 error code (one table, at the edge)."""
from __future__ import annotations

__all__ = [
    "StorageError", "NoSuchBucket", "BucketExists", "BucketNotEmpty", "NoSuchKey",
    "NoSuchUpload", "InvalidPart", "InvalidKey", "PreconditionFailed", "ConditionalConflict",
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


class PreconditionFailed(StorageError):
    """A WriteCondition did not hold at the commit point; ``condition`` names the header."""

    def __init__(self, condition: str) -> None:
        super().__init__(condition)
        self.condition = condition


class ConditionalConflict(StorageError):
    """The key changed while a conditional write was in flight (S3's 409)."""
