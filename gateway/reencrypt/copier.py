"""One object of ``coffer s3 reencrypt``: HEAD, decide, copy onto itself (or a multipart
UploadPartCopy above CopyObject's limit); and the ordered, windowed run over a listing.
The why is in gateway/reencrypt/__init__.py."""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from gateway.reencrypt.state import RunState, Target

__all__ = ["COPY_LIMIT", "PART_SIZE", "MIN_PART", "Outcome", "Options", "plan", "describe",
           "error_of", "Reencryptor"]

COPY_LIMIT = 5 * 1024 ** 3              # CopyObject's largest source (API_CopyObject)
PART_SIZE = 512 * 1024 ** 2
MIN_PART = 5 * 1024 ** 2                # UploadPartCopy: every part but the last (S3 limits)
_CONTENT_FIELDS = ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage",
                   "ContentType", "Expires", "WebsiteRedirectLocation", "StorageClass")


@dataclass(frozen=True, slots=True)
class Outcome:
    key: str
    status: str                 # "reencrypted" | "skipped" | "would-reencrypt" | "failed"
    detail: str = ""
    size: int = 0
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Options:
    bucket: str
    prefix: str
    target: Target
    only_unencrypted: bool
    dry_run: bool
    state_path: Path
    jobs: int
    copy_limit: int = COPY_LIMIT
    part_size: int = PART_SIZE
    customer_key: bytes | None = field(default=None, repr=False)


def _mode_of(head: Mapping[str, Any]) -> str | None:
    if head.get("SSECustomerAlgorithm"):
        return "SSE-C"
    return head.get("ServerSideEncryption") or None


def describe(head: Mapping[str, Any]) -> str:
    mode = _mode_of(head)
    if mode == "aws:kms":
        return f"aws:kms {head.get('SSEKMSKeyId')}"
    return {"AES256": "SSE-S3", None: "unencrypted"}.get(mode, str(mode))


def plan(head: Mapping[str, Any], target: Target, only_unencrypted: bool) -> str | None:
    """Why an object (its HeadObject answer) stays as it is, or None when it is to be
    re-encrypted. A Bucket Key object under the target key is left alone unless the target
    asks for Bucket Keys and it has none."""
    mode = _mode_of(head)
    if only_unencrypted and mode is not None:
        return f"already encrypted ({describe(head)})"
    if target.mode == "AES256" and mode == "AES256":
        return "already SSE-S3"
    if (target.mode == "aws:kms" and mode == "aws:kms"
            and head.get("SSEKMSKeyId") == target.key_arn
            and (head.get("BucketKeyEnabled") or not target.bucket_key)):
        return "already under the target key"
    return None


# -- one object -------------------------------------------------------------------------------

def error_of(exc: Exception) -> tuple[str, str, int]:
    """(code, message with the request id, HTTP status) of a botocore error."""
    resp = getattr(exc, "response", None) or {}
    err, meta = resp.get("Error", {}), resp.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode") or 0)
    code = str(err.get("Code") or type(exc).__name__)
    # HEAD answers carry no body: name the code S3 would have sent.
    code = {"403": "AccessDenied", "404": "NoSuchKey", "412": "PreconditionFailed",
            "400": "BadRequest"}.get(code, code)
    message = str(err.get("Message") or exc)
    if meta.get("RequestId"):
        message += f" (request {meta['RequestId']})"
    return code, message, status


class Reencryptor:
    """Runs one ``coffer s3 reencrypt``: ``s3`` is a boto3 client acting as the caller."""

    def __init__(self, s3, opts: Options) -> None:
        self.s3 = s3
        self.opts = opts
        self.stop = threading.Event()

    def _versions(self, key: str) -> Iterator[str | None]:
        # Unversioned buckets hold one (null) version per key; a versioned bucket's loop over
        # ListObjectVersions goes here, each version copied by VersionId.
        yield None

    def _sse_args(self) -> dict[str, Any]:
        t = self.opts.target
        if t.mode == "AES256":
            return {"ServerSideEncryption": "AES256"}
        args = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": t.key_arn}
        if t.bucket_key:
            args["BucketKeyEnabled"] = True
        return args

    def _head(self, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(HeadObject answer, the copy-source SSE-C arguments it needed)."""
        from botocore.exceptions import ClientError
        try:
            return self.s3.head_object(Bucket=self.opts.bucket, Key=key), {}
        except ClientError as exc:
            # S3 refuses a HEAD of an SSE-C object without its key with a bare 400.
            if error_of(exc)[2] != 400 or self.opts.customer_key is None:
                raise
        c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": self.opts.customer_key}
        head = self.s3.head_object(Bucket=self.opts.bucket, Key=key, **c)
        return head, {"CopySourceSSECustomerAlgorithm": "AES256",
                      "CopySourceSSECustomerKey": self.opts.customer_key}

    def process(self, key: str) -> list[Outcome]:
        return [self._one(key) for _version in self._versions(key)]

    def _one(self, key: str, attempts: int = 3) -> Outcome:
        from botocore.exceptions import BotoCoreError, ClientError
        for _ in range(attempts):
            try:
                head, source_c = self._head(key)
            except ClientError as exc:
                code, message, status = error_of(exc)
                if status == 404:
                    return Outcome(key, "skipped", "deleted while running")
                if status == 400 and self.opts.customer_key is None:
                    return Outcome(key, "skipped", "SSE-C object (or unreadable): its customer "
                                   "key is needed, --source-sse-c-key-file", code=code)
                return Outcome(key, "failed", message, code=code)
            except BotoCoreError as exc:
                return Outcome(key, "failed", str(exc), code=type(exc).__name__)
            size = int(head.get("ContentLength") or 0)
            reason = plan(head, self.opts.target, self.opts.only_unencrypted)
            if reason is not None:
                return Outcome(key, "skipped", reason, size)
            change = f"{describe(head)} -> {self.opts.target.describe()}"
            if self.opts.dry_run:
                return Outcome(key, "would-reencrypt", change, size)
            try:
                if size > self.opts.copy_limit:
                    self._multipart_copy(key, head, source_c)
                else:
                    self.s3.copy_object(
                        Bucket=self.opts.bucket, Key=key, MetadataDirective="COPY",
                        CopySource={"Bucket": self.opts.bucket, "Key": key},
                        CopySourceIfMatch=head["ETag"], IfMatch=head["ETag"],
                        **source_c, **self._sse_args())
                return Outcome(key, "reencrypted", change, size)
            except ClientError as exc:
                code, message, status = error_of(exc)
                if status == 412 or code == "PreconditionFailed":
                    continue                    # replaced since the HEAD: look again
                return Outcome(key, "failed", message, size, code)
            except BotoCoreError as exc:
                return Outcome(key, "failed", str(exc), size, type(exc).__name__)
        return Outcome(key, "failed", "replaced again and again while running",
                       code="PreconditionFailed")

    def _multipart_copy(self, key: str, head: Mapping[str, Any],
                        source_c: dict[str, Any]) -> None:
        bucket, size, part = self.opts.bucket, int(head["ContentLength"]), self.opts.part_size
        extra = {f: head[f] for f in _CONTENT_FIELDS if head.get(f)}
        up = self.s3.create_multipart_upload(Bucket=bucket, Key=key,
                                             Metadata=head.get("Metadata") or {},
                                             **extra, **self._sse_args())
        upload_id = up["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, part), 1):
                end = min(start + part, size) - 1
                r = self.s3.upload_part_copy(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    CopySource={"Bucket": bucket, "Key": key},
                    CopySourceRange=f"bytes={start}-{end}", CopySourceIfMatch=head["ETag"],
                    **source_c)
                parts.append({"PartNumber": number, "ETag": r["CopyPartResult"]["ETag"]})
            self.s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
            raise

    # -- the run ------------------------------------------------------------------------------

    def _keys(self, after: str | None) -> Iterator[tuple[str, int]]:
        """(key, size) in UTF-8 binary order after ``after``; the progress total grows as
        pages arrive (a bucket is never listed in full before work starts)."""
        kw: dict[str, Any] = {"Bucket": self.opts.bucket, "Prefix": self.opts.prefix}
        if after:
            kw["StartAfter"] = after
        for page in self.s3.get_paginator("list_objects_v2").paginate(**kw):
            contents = page.get("Contents", [])
            self.on_listed(len(contents))
            for obj in contents:
                yield obj["Key"], int(obj.get("Size") or 0)

    def on_listed(self, count: int) -> None:
        """Called per listing page (the progress bar's total)."""

    def run(self, state: RunState, settle) -> None:
        """Process every key after ``state.after``, ``jobs`` at a time; ``settle(key,
        outcomes)`` runs in this thread, in listing order, once a key and every key before it
        are done (so the state's ``after`` never passes an unfinished key). Stops taking new
        keys when ``self.stop`` is set."""
        jobs = max(1, self.opts.jobs)
        window: deque[tuple[str, Future]] = deque()
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="reencrypt") as pool:
            try:
                for key, _size in self._keys(state.after):
                    if self.stop.is_set():
                        break
                    window.append((key, pool.submit(self.process, key)))
                    while len(window) >= 2 * jobs:
                        k, fut = window.popleft()
                        settle(k, fut.result())
                # In-flight copies finish (each is atomic on the server) and are recorded.
                while window:
                    k, fut = window.popleft()
                    settle(k, fut.result())
            except BaseException:
                for _k, fut in window:
                    fut.cancel()
                raise


