"""Envelope encryption of objects: SSE headers -> KMS data keys -> coffer-sse/1 streams -> metadata.

The gateway plays "the AWS service" of the seed: it asks the KMS for a fresh data key per object
(as the caller, ``via_service`` = s3.<region>.amazonaws.com), encrypts the stream with it, keeps
only the *wrapped* key, and drops the plaintext key when the request ends.

    PUT  (aws:kms)  dk, blob = KMS.GenerateDataKey(key, ctx = {"aws:s3:arn": object ARN} ∪ user)
         (+BucketKey) bk, blob = KMS.GenerateDataKey(key, {"aws:s3:arn": bucket ARN}), cached
                      per principal; each reuse first KMS.authorize_key_use(as the caller)
                      (gateway/sse/bucket_keys.py)
                      dk = HKDF-SHA256(bk, salt = dk_salt (32 random), info = "coffer-bucket-key/1"
                                       ‖ 0x00 ‖ object ARN)
         (AES256)   as aws:kms, under a gateway-owned key of the reserved account COFFER_S3
         (SSE-C)    dk = the customer's key; stored: salt ‖ HMAC-SHA256(salt, key) only
                    (no MD5 of the key: responses echo the MD5 the request carried)
         stream     coffer-sse/1 with AAD = "coffer-object/1" ‖ 0 ‖ bucket ‖ 0 ‖ key ‖ 0 ‖ u32(part)
    GET  dk = KMS.Decrypt(blob, ctx) (after the KMS's own checks) -> decrypt only the segments
         the Range needs.
    checksums of SSE-KMS / SSE-C objects and parts: sealed under dk (gateway/sse/record.py),
         opened only after the caller's decrypt.

The object record's ``meta["sse"]`` (format version 1)::

    {"v": 1, "mode": "aws:kms" | "AES256" | "SSE-C",
     "key_arn": str, "wrapped_key": b64, "context": {...}, "context_b64": str | None,
     "bucket_key": bool, "dk_salt": b64 | None,
     "customer_key_salt": b64, "customer_key_hmac": hex,
     "customer_key_md5": b64,           # only in records written before issue 11; unused
     "sealed_checksums": str, "checksum_algorithms": [str],   # gateway/sse/record.py
     "plain_size": int,
     "stream": {coffer-sse/1 params}                      # single-stream objects
     "parts": [{"n": int, "plain": int, "stream": {...}}]  # multipart objects, in order}
"""
from __future__ import annotations

import asyncio
import copy
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.errors import kms_to_s3, sse_to_s3
from gateway.s3.errors import S3Error
from gateway.sse.bucket_keys import DEFAULT_TTL, BucketKeyCache
from gateway.sse.headers import SSE_C, SSE_KMS, SSE_S3, CustomerKey, SSERequest
from gateway.sse.record import (ALGORITHMS_FIELD, SEALED_FIELD, ChecksumSealError,
                                open_checksums, seal_checksums)
from gateway.sse.stream import (SegmentDecryptor, SegmentEncryptor, SSEError,
                                StreamAuthenticationError, StreamParams, ciphertext_size,
                                new_stream_params, plan_range)
from kms import errors as ke
from kms.model import Caller
from kms.service import KMS

__all__ = ["Envelope", "WriteSettings", "ObjectSealer", "kms_to_s3", "response_headers",
           "object_aad", "SSE_RECORD_VERSION", "COFFER_S3_ACCOUNT"]

SSE_RECORD_VERSION = 1
# The reserved account whose KMS key protects SSE-S3 objects (AWS: S3-owned keys, invisible to
# customers). No credential maps to it, so no caller can use its keys directly.
COFFER_S3_ACCOUNT = "000000000000"
_BUCKET_KEY_INFO = b"coffer-bucket-key/1"
_AAD_LABEL = b"coffer-object/1"


def object_aad(bucket: str, key: str, part: int = 0) -> bytes:
    return b"\0".join([_AAD_LABEL, bucket.encode(), key.encode(), part.to_bytes(4, "big")])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


@dataclass(frozen=True, slots=True)
class WriteSettings:
    """The encryption a write ends up with, after request headers and bucket default."""

    mode: str                                   # SSE_KMS, SSE_S3 or SSE_C
    key_id: str | None = None                   # as asked (None: the account's aws/s3 key)
    context: dict[str, str] | None = None
    context_b64: str | None = None
    bucket_key: bool = False
    customer: CustomerKey | None = None


@dataclass(slots=True)
class _DataKey:
    """A plaintext data key and how to get it back. Lives only as long as one request."""

    key: bytes = field(repr=False)
    record: dict[str, Any]


class ObjectSealer:
    """Encrypts one stream (an object or a part) and yields what the record must hold."""

    def __init__(self, data_key: _DataKey, aad: bytes, *, segment_size: int = 65536,
                 where: tuple[str, str, int] = ("", "", 0)) -> None:
        self._params = new_stream_params(segment_size=segment_size)
        self._enc = SegmentEncryptor(data_key.key, self._params, aad)
        self._data_key = data_key
        self._where = where
        self.record = data_key.record
        self.plain_size = 0

    async def wrap(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.plain_size += len(chunk)
            out = self._enc.update(chunk)
            if out:
                yield bytes(out)
        tail = self._enc.finalize()
        if tail:
            yield bytes(tail)

    @property
    def stream_meta(self) -> dict[str, Any]:
        return self._params.to_meta()

    def object_record(self) -> dict[str, Any]:
        return {**self.record, "plain_size": self.plain_size, "stream": self.stream_meta}

    def seal_checksums(self, meta: dict[str, Any]) -> None:
        """Move the clear ``meta["checksums"]`` of what this sealer wrote (an object whose
        record is ``meta["sse"]``, or a part record) under its data key, unless SSE-S3."""
        seal_into(self._data_key, *self._where, meta)


class Envelope:
    """The gateway's side of SSE: talks to the KMS (in a bounded thread pool) for data keys."""

    def __init__(self, kms: KMS, *, region: str, bucket_key_ttl: float = DEFAULT_TTL,
                 workers: int = 8, clock: Callable[[], float] = time.monotonic) -> None:
        self.kms = kms
        self.region = region
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kms")
        # Bucket Keys made (for writes) and opened (for reads), each entry one principal's;
        # whose rights they carry and when they stop: gateway/sse/bucket_keys.py.
        self._bucket_keys = BucketKeyCache(ttl=bucket_key_ttl, clock=clock)
        self._opened_bucket_keys = BucketKeyCache(ttl=bucket_key_ttl, clock=clock)
        self._siblings: dict[str, Envelope] = {}

    def in_region(self, region: str) -> Envelope:
        """This envelope as S3 in ``region`` uses it: that region's KMS keys (a key from
        another region is KMS.NotFoundException, as in AWS) and ``s3.<region>`` as
        kms:ViaService. Siblings share the pool and caches; only the first one closes."""
        if region == self.region:
            return self
        sibling = self._siblings.get(region)
        if sibling is None:
            sibling = copy.copy(self)
            sibling.kms = self.kms.in_region(region)
            sibling.region = region
            sibling._siblings = {}
            self._siblings[region] = sibling
        return sibling

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._bucket_keys.clear()
        self._opened_bucket_keys.clear()

    @property
    def via_service(self) -> str:
        return f"s3.{self.region}.amazonaws.com"

    async def _kms(self, fn: Callable[..., dict[str, Any]], *args: Any, **kw: Any) -> dict:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kw))
        except ke.KMSError as exc:
            raise kms_to_s3(exc) from exc

    def _service_caller(self, caller: Caller) -> Caller:
        return Caller(principal_arn=f"arn:aws:iam::{COFFER_S3_ACCOUNT}:role/coffer-s3",
                      account_id=COFFER_S3_ACCOUNT, source_ip=caller.source_ip,
                      secure_transport=caller.secure_transport, via_service=self.via_service,
                      user_agent=caller.user_agent, request_id=caller.request_id)

    async def _resolve_key(self, caller: Caller, key_id: str | None) -> str:
        if key_id is not None:
            return key_id
        meta = await self._kms(self.kms.get_or_create_aws_managed_key, caller, "alias/aws/s3")
        return meta["KeyMetadata"]["Arn"]

    # -- writes

    async def new_data_key(self, caller: Caller, settings: WriteSettings, bucket: str,
                           key: str) -> _DataKey:
        """A fresh data key for one object (or one multipart upload)."""
        if settings.mode == SSE_C:
            assert settings.customer is not None
            salt = os.urandom(16)
            # No MD5 of the key is kept: unsalted, it would let anyone holding the data
            # dir recognise the key (or a guess of it); responses echo the request's MD5.
            return _DataKey(key=settings.customer.key, record={
                "v": SSE_RECORD_VERSION, "mode": SSE_C,
                "customer_key_salt": _b64(salt),
                "customer_key_hmac": settings.customer.verifier(salt)})
        object_arn = f"arn:aws:s3:::{bucket}/{key}"
        if settings.mode == SSE_S3:
            svc = self._service_caller(caller)
            key_arn = await self._resolve_key(svc, None)
            context = {"aws:s3:arn": object_arn}
            out = await self._kms(self.kms.generate_data_key, svc, key_arn, key_spec="AES_256",
                                  encryption_context=context)
            return _DataKey(key=out["Plaintext"], record={
                "v": SSE_RECORD_VERSION, "mode": SSE_S3, "key_arn": out["KeyId"],
                "wrapped_key": _b64(out["CiphertextBlob"]), "context": context})
        key_ref = await self._resolve_key(caller, settings.key_id)
        user = dict(settings.context or {})
        if settings.bucket_key:
            return await self._bucket_derived_key(caller, key_ref, bucket, object_arn, user,
                                                  settings.context_b64)
        context = {**user, "aws:s3:arn": object_arn} if "aws:s3:arn" not in user else user
        if context["aws:s3:arn"] != object_arn:
            raise S3Error("InvalidArgument", "The encryption context value for aws:s3:arn "
                          "must be the object ARN", ArgumentName="x-amz-server-side-encryption-"
                          "context")
        out = await self._kms(self.kms.generate_data_key, caller, key_ref, key_spec="AES_256",
                              encryption_context=context)
        return _DataKey(key=out["Plaintext"], record={
            "v": SSE_RECORD_VERSION, "mode": SSE_KMS, "key_arn": out["KeyId"],
            "wrapped_key": _b64(out["CiphertextBlob"]), "context": context,
            "context_b64": settings.context_b64, "bucket_key": False})

    async def _bucket_derived_key(self, caller: Caller, key_ref: str, bucket: str,
                                  object_arn: str, user: dict[str, str],
                                  context_b64: str | None) -> _DataKey:
        bucket_arn = f"arn:aws:s3:::{bucket}"
        context = {**user, "aws:s3:arn": bucket_arn}
        cache_key = (caller.principal_arn, caller.account_id, bucket, key_ref,
                     _canonical(context))
        cached = self._bucket_keys.get(cache_key) if caller.principal_arn else None
        if cached is not None:
            # Copied first: the entry may be dropped while the KMS decides.
            plaintext, blob, key_arn = bytes(cached.plaintext), cached.blob, cached.key_arn
            if await self._kms(self.kms.authorize_key_use, caller, "GenerateDataKey", key_ref,
                               encryption_context=context) != key_arn:
                cached = None                       # the alias now names another key
        if cached is None:
            out = await self._kms(self.kms.generate_data_key, caller, key_ref,
                                  key_spec="AES_256", encryption_context=context)
            plaintext, blob, key_arn = out["Plaintext"], out["CiphertextBlob"], out["KeyId"]
            if caller.principal_arn:
                self._bucket_keys.put(cache_key, plaintext, blob, key_arn)
        salt = os.urandom(32)
        return _DataKey(key=_derive(plaintext, salt, object_arn), record={
            "v": SSE_RECORD_VERSION, "mode": SSE_KMS, "key_arn": key_arn,
            "wrapped_key": _b64(blob), "context": context, "context_b64": context_b64,
            "bucket_key": True, "dk_salt": _b64(salt)})

    def sealer(self, data_key: _DataKey, bucket: str, key: str, part: int = 0) -> ObjectSealer:
        return ObjectSealer(data_key, object_aad(bucket, key, part), where=(bucket, key, part))

    # -- reads

    async def open_data_key(self, caller: Caller, record: dict[str, Any], bucket: str,
                            key: str, customer: CustomerKey | None) -> _DataKey:
        """The plaintext data key of a stored record, after the KMS's checks (or SSE-C's)."""
        if record.get("v") != SSE_RECORD_VERSION:
            raise S3Error("InternalError")
        mode = record["mode"]
        if mode == SSE_C:
            if customer is None:
                raise S3Error("InvalidRequest", "The object was stored using a form of Server Side "
                              "Encryption. The correct parameters must be provided to retrieve "
                              "the object.")
            expected = record["customer_key_hmac"]
            if not hmac.compare_digest(customer.verifier(_unb64(record["customer_key_salt"])),
                                       expected):
                raise S3Error("AccessDenied", "Access Denied")
            return _DataKey(key=customer.key, record=record)
        if customer is not None:
            raise S3Error("InvalidRequest", "The encryption parameters are not applicable to this "
                          "object.")
        blob = _unb64(record["wrapped_key"])
        context = record["context"]
        who = self._service_caller(caller) if mode == SSE_S3 else caller
        if record.get("bucket_key"):
            plaintext = await self._open_bucket_key(who, blob, context)
            object_arn = f"arn:aws:s3:::{bucket}/{key}"
            return _DataKey(key=_derive(plaintext, _unb64(record["dk_salt"]), object_arn),
                            record=record)
        out = await self._kms(self.kms.decrypt, who, blob, encryption_context=context)
        return _DataKey(key=out["Plaintext"], record=record)

    async def _open_bucket_key(self, caller: Caller, blob: bytes,
                               context: dict[str, str]) -> bytes:
        cache_key = (caller.principal_arn, caller.account_id,
                     hashlib.sha256(blob + b"\0" + _canonical(context).encode()).digest())
        cached = self._opened_bucket_keys.get(cache_key) if caller.principal_arn else None
        if cached is not None:
            plaintext = bytes(cached.plaintext)     # the entry may be dropped meanwhile
            await self._kms(self.kms.authorize_key_use, caller, "Decrypt", cached.key_arn,
                            encryption_context=context)
            return plaintext
        out = await self._kms(self.kms.decrypt, caller, blob, encryption_context=context)
        if caller.principal_arn:
            self._opened_bucket_keys.put(cache_key, out["Plaintext"], blob, out["KeyId"])
        return out["Plaintext"]


def _canonical(context: dict[str, str]) -> str:
    return json.dumps(context, sort_keys=True, separators=(",", ":"))


def _derive(bucket_key: bytes, salt: bytes, object_arn: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                info=_BUCKET_KEY_INFO + b"\0" + object_arn.encode()).derive(bucket_key)


def response_headers(record: dict[str, Any] | None,
                     customer: CustomerKey | None = None) -> dict[str, str]:
    """x-amz-server-side-encryption* response headers for a stored record. For SSE-C the key
    MD5 is the one of the request's (verified) key: the record keeps none."""
    if not record:
        return {}
    mode = record["mode"]
    if mode == SSE_C:
        out = {"x-amz-server-side-encryption-customer-algorithm": "AES256"}
        md5 = customer.md5_b64 if customer is not None else record.get("customer_key_md5")
        if md5:
            out["x-amz-server-side-encryption-customer-key-MD5"] = md5
        return out
    out = {"x-amz-server-side-encryption": mode}
    if mode == SSE_KMS:
        out["x-amz-server-side-encryption-aws-kms-key-id"] = record["key_arn"]
        if record.get("bucket_key"):
            out["x-amz-server-side-encryption-bucket-key-enabled"] = "true"
    return out


# -- checksums of encrypted objects (format: gateway/sse/record.py) ---------------------------

def seal_into(data_key: _DataKey, bucket: str, key: str, part: int,
              meta: dict[str, Any]) -> None:
    """Replace the clear ``meta["checksums"]`` by a token sealed under ``data_key``: in
    ``meta["sse"]`` for an object (``part`` 0), in ``meta`` itself for a part record. SSE-S3
    keeps them clear (AWS returns them to every reader; the key is not the caller's)."""
    checksums = meta.get("checksums") or {}
    if data_key.record.get("mode") == SSE_S3 or not checksums:
        return
    target = meta["sse"] if part == 0 else meta
    target[SEALED_FIELD] = seal_checksums(data_key.key, bucket, key, part, checksums,
                                          meta.get("checksum_type"))
    if part == 0:
        target[ALGORITHMS_FIELD] = sorted(checksums)
        meta["checksum_type"] = None
    meta["checksums"] = {}


def needs_key_for_checksums(meta: dict[str, Any]) -> bool:
    """Whether returning this object's (or part's) checksums needs the caller's decrypt:
    SSE-KMS and SSE-C objects uploaded with a checksum (AWS HeadObject, ChecksumMode)."""
    record = meta.get("sse")
    if not record or record.get("mode") == SSE_S3:
        return False
    return SEALED_FIELD in record or bool(meta.get("checksums"))


def readable_checksums(meta: dict[str, Any], data_key: _DataKey | None, bucket: str,
                       key: str) -> dict[str, Any]:
    """``{"checksums", "checksum_type"}`` of a stored object, for a caller who may read them:
    clear ones as stored; sealed ones (and clear ones of old SSE-KMS / SSE-C records) only
    with the data key the caller's decrypt gave."""
    clear = {"checksums": meta.get("checksums") or {},
             "checksum_type": meta.get("checksum_type")}
    if not needs_key_for_checksums(meta):
        return clear
    if data_key is None:
        raise S3Error("AccessDenied", "Access Denied")
    token = meta["sse"].get(SEALED_FIELD)
    if token is None:
        return clear                        # a record from before sealing
    checksums, kind = _open(data_key, bucket, key, 0, token)
    return {"checksums": checksums, "checksum_type": kind}


def part_checksums(part_meta: dict[str, Any], data_key: _DataKey | None, bucket: str,
                   key: str, part: int) -> dict[str, str]:
    """A part's checksums (algorithm -> base64); sealed ones need the upload's data key."""
    token = part_meta.get(SEALED_FIELD)
    if token is None:
        return dict(part_meta.get("checksums") or {})
    if data_key is None:
        raise S3Error("AccessDenied", "Access Denied")
    return _open(data_key, bucket, key, part, token)[0]


def _open(data_key: _DataKey, bucket: str, key: str, part: int,
          token: object) -> tuple[dict[str, str], str | None]:
    try:
        return open_checksums(data_key.key, bucket, key, part, token)
    except ChecksumSealError as exc:
        raise sse_to_s3(exc) from exc


def random_etag() -> str:
    """SSE-KMS / SSE-C ETags: 32 hex, stable once stored, revealing nothing of the plaintext."""
    return secrets.token_hex(16)


async def decrypt_stream(reader, info, data_key: _DataKey, bucket: str, key: str,
                         start: int, end: int, chunk: int = 1 << 20) -> AsyncIterator[bytes]:
    """Plaintext bytes [start, end) of a stored encrypted object, reading and authenticating
    only the segments that cover them. Multipart objects are one stream per part."""
    record = data_key.record
    if end <= start:
        if record.get("plain_size") == 0 and "stream" in record:
            # An empty object is one empty final segment: authenticate it all the same.
            dec = SegmentDecryptor(data_key.key, StreamParams.from_meta(record["stream"]),
                                   object_aad(bucket, key), total_segments=1)
            async for ct in reader.read(0, None, chunk):
                dec.update(ct)
            dec.finalize()
        return
    if "parts" in record:
        pieces = [(p["n"], p["plain"], StreamParams.from_meta(p["stream"]))
                  for p in record["parts"]]
        stored = info.part_sizes or []
    else:
        pieces = [(0, record["plain_size"], StreamParams.from_meta(record["stream"]))]
        stored = [info.stored_size if info.stored_size is not None else info.size]
    if len(stored) != len(pieces):
        raise S3Error("InternalError")
    # Only the covering segments are read, so check here that nothing was appended to (or cut
    # from) any stream: its stored length is fixed by its plaintext size.
    if any(stored_size != ciphertext_size(plain, params.segment_size)
           for (_, plain, params), stored_size in zip(pieces, stored)):
        raise StreamAuthenticationError()
    plain_base, stored_base = 0, 0
    for (part, plain, params), stored_size in zip(pieces, stored):
        lo, hi = max(start - plain_base, 0), min(end - plain_base, plain)
        if lo < hi:
            plan = plan_range(plain, params.segment_size, lo, hi)
            dec = SegmentDecryptor.for_range(data_key.key, params, plan,
                                             object_aad(bucket, key, part))
            # Whole segments per read (plan.ct_start is segment-aligned): no carry-over copies.
            stride = params.segment_size + 16
            aligned = max(stride, chunk // stride * stride)
            async for ct in reader.read(stored_base + plan.ct_start, stored_base + plan.ct_end,
                                        aligned):
                out = dec.update(ct)
                if out:
                    yield out
            tail = dec.finalize()
            if tail:
                yield tail
        plain_base += plain
        stored_base += stored_size
        if plain_base >= end:
            break


__all__ += ["random_etag", "decrypt_stream", "SSEError", "SSERequest", "seal_into",
            "needs_key_for_checksums", "readable_checksums", "part_checksums"]
