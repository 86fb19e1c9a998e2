"""Put/Get/DeleteBucketEncryption: a bucket's default server-side encryption.

Stored as the bucket config document ``encryption``::

    {"v": 1, "algorithm": "aws:kms" | "AES256", "key_id": str | None, "bucket_key": bool,
     "blocked": ["SSE-C"] | ["NONE"]}       # "blocked" only when the rule named it

``BlockedEncryptionTypes`` (S3, 2026; S3 UG "Blocking or unblocking SSE-C for a general purpose
bucket"; API_BlockedEncryptionTypes): a rule may list ``EncryptionType`` values ``SSE-C`` (new
SSE-C writes to the bucket are refused: PutObject, CopyObject, CreateMultipartUpload answer
403 AccessDenied; existing SSE-C objects stay readable with their key) or ``NONE`` (nothing
blocked). GetBucketEncryption returns what was set. A document without ``blocked`` (every
bucket configured before this) blocks nothing, so it stays format version 1.

A bucket without one behaves as ``Config.default_encryption`` says: ``AES256`` (AWS since
2023-01-05: every new object gets SSE-S3, GetBucketEncryption reports it) or ``none`` (older
AWS: no default, GetBucketEncryption is ServerSideEncryptionConfigurationNotFoundError).
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auth.payload import read_body
from gateway.s3.common import S3Call, storage_error, xml_response
from gateway.s3.errors import S3Error
from gateway.s3.xml import parse, render, text_of
from gateway.sse.envelope import WriteSettings
from gateway.sse.headers import SSE_C, SSE_KMS, parse_sse_headers
from storage import errors as se

__all__ = ["HANDLERS", "bucket_default_encryption", "resolve_write_settings",
           "parse_encryption_config"]

_KIND = "encryption"
SSE_C_TYPE = "SSE-C"
_ENCRYPTION_TYPES = (SSE_C_TYPE, "NONE")
_SSE_C_BLOCKED = ("Requests specifying Server Side Encryption with Customer provided keys are "
                  "blocked for this bucket.")


async def bucket_default_encryption(call: S3Call, bucket: str) -> dict[str, Any] | None:
    """The stored config, or the implicit default, or None when objects stay unencrypted."""
    doc = await call.store.get_bucket_config(bucket, _KIND)
    if doc is not None:
        return doc
    if call.config.default_encryption == "AES256":
        return {"v": 1, "algorithm": "AES256", "key_id": None, "bucket_key": False}
    return None


async def resolve_write_settings(call: S3Call, bucket: str) -> WriteSettings | None:
    """The encryption a write gets: its own SSE headers, else the bucket's default."""
    req = parse_sse_headers(call.request.headers)
    if req.mode == SSE_C:
        stored = await call.store.get_bucket_config(bucket, _KIND)
        if stored is not None and SSE_C_TYPE in (stored.get("blocked") or ()):
            raise S3Error("AccessDenied", _SSE_C_BLOCKED)
        if call.config.sse_c_require_tls and not call.request.secure:
            raise S3Error("InvalidRequest", "Requests specifying Server Side Encryption with "
                          "Customer provided keys must be made over a secure connection.")
        return WriteSettings(mode=SSE_C, customer=req.customer)
    if req.mode is not None:
        return WriteSettings(mode=req.mode, key_id=req.key_id, context=req.context,
                             context_b64=req.context_b64,
                             bucket_key=bool(req.bucket_key) and req.mode == SSE_KMS)
    default = await bucket_default_encryption(call, bucket)
    if default is None:
        return None
    bucket_key = default.get("bucket_key", False) if req.bucket_key is None else req.bucket_key
    return WriteSettings(mode=default["algorithm"], key_id=default.get("key_id"),
                         bucket_key=bool(bucket_key) and default["algorithm"] == SSE_KMS)


def parse_encryption_config(body: bytes) -> dict[str, Any]:
    """A PutBucketEncryption body -> the stored config document (module docstring). Raises
    S3Error only (MalformedXML, InvalidArgument)."""
    doc = parse(body)
    if doc.tag != "ServerSideEncryptionConfiguration":
        raise S3Error("MalformedXML")
    rules = [r for r in doc if r.tag == "Rule"]
    if len(rules) != 1:
        raise S3Error("MalformedXML")
    rule = rules[0]
    blocked = _blocked_types(rule)
    default = rule.find("ApplyServerSideEncryptionByDefault")
    if default is None:
        if blocked is None:
            raise S3Error("MalformedXML")
        # A rule that only blocks types: new objects get SSE-S3, S3's default since 2023.
        return {"v": 1, "algorithm": "AES256", "key_id": None, "bucket_key": False,
                "blocked": blocked}
    algorithm = (text_of(default, "SSEAlgorithm") or "").strip()
    key_id = text_of(default, "KMSMasterKeyID")
    key_id = key_id.strip() if key_id else None
    if algorithm not in ("aws:kms", "AES256"):
        raise S3Error("MalformedXML")
    if key_id and algorithm != "aws:kms":
        raise S3Error("InvalidArgument", "a KMSMasterKeyID is not applicable if the default "
                      "sse algorithm is not aws:kms or aws:kms:dsse",
                      ArgumentName="ApplyServerSideEncryptionByDefault")
    bucket_key = (text_of(rule, "BucketKeyEnabled") or "false").strip().lower() == "true"
    doc = {"v": 1, "algorithm": algorithm, "key_id": key_id, "bucket_key": bucket_key}
    if blocked is not None:
        doc["blocked"] = blocked
    return doc


def _blocked_types(rule) -> list[str] | None:
    """The rule's ``BlockedEncryptionTypes`` (a flattened list of ``EncryptionType``), or None
    when it has none. ``NONE`` cannot be combined with a type; unknown values are refused."""
    element = rule.find("BlockedEncryptionTypes")
    if element is None:
        return None
    values: list[str] = []
    for child in element:
        if child.tag != "EncryptionType":
            raise S3Error("MalformedXML")
        value = (child.text or "").strip()
        if value not in _ENCRYPTION_TYPES:
            raise S3Error("MalformedXML")
        if value not in values:
            values.append(value)
    if not values or ("NONE" in values and len(values) > 1):
        raise S3Error("InvalidArgument", "NONE cannot be combined with another encryption "
                      "type", ArgumentName="BlockedEncryptionTypes")
    return values


async def put_bucket_encryption(call: S3Call) -> web.StreamResponse:
    body = await read_body(call.request.content, call.request.headers, call.auth, 64 * 1024)
    config = parse_encryption_config(body)
    try:
        await call.store.put_bucket_config(call.bucket, _KIND, config)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket) from exc
    return web.Response(status=200)


async def get_bucket_encryption(call: S3Call) -> web.StreamResponse:
    config = await bucket_default_encryption(call, call.bucket)
    if config is None:
        raise S3Error("ServerSideEncryptionConfigurationNotFoundError", BucketName=call.bucket)
    default = {"SSEAlgorithm": config["algorithm"]}
    if config.get("key_id"):
        default["KMSMasterKeyID"] = config["key_id"]
    rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": default,
                            "BucketKeyEnabled": bool(config.get("bucket_key"))}
    if config.get("blocked"):
        rule["BlockedEncryptionTypes"] = {"EncryptionType": list(config["blocked"])}
    body = render("ServerSideEncryptionConfiguration", {"Rule": rule})
    return xml_response(body)


async def delete_bucket_encryption(call: S3Call) -> web.StreamResponse:
    try:
        await call.store.put_bucket_config(call.bucket, _KIND, None)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket) from exc
    return web.Response(status=204)


HANDLERS = {
    "PutBucketEncryption": put_bucket_encryption,
    "GetBucketEncryption": get_bucket_encryption,
    "DeleteBucketEncryption": delete_bucket_encryption,
}
