"""Put/Get/DeleteBucketEncryption: a bucket's default server-side encryption.

Stored as the bucket config document ``encryption``::

    {"v": 1, "algorithm": "aws:kms" | "AES256", "key_id": str | None, "bucket_key": bool}

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
    default = rule.find("ApplyServerSideEncryptionByDefault")
    if default is None:
        raise S3Error("MalformedXML")
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
    return {"v": 1, "algorithm": algorithm, "key_id": key_id, "bucket_key": bucket_key}


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
    body = render("ServerSideEncryptionConfiguration", {"Rule": {
        "ApplyServerSideEncryptionByDefault": default,
        "BucketKeyEnabled": bool(config.get("bucket_key")),
    }})
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
