"""SSE request headers -> a validated ``SSERequest`` (S3's rules and error codes).

S3 accepts, on PutObject, CopyObject (for the destination) and CreateMultipartUpload:

    x-amz-server-side-encryption                      aws:kms | AES256
    x-amz-server-side-encryption-aws-kms-key-id       key id, key ARN, alias name or alias ARN
    x-amz-server-side-encryption-context              base64(JSON {string: string})
    x-amz-server-side-encryption-bucket-key-enabled   true | false
    x-amz-server-side-encryption-customer-algorithm   AES256          (SSE-C, with the next two)
    x-amz-server-side-encryption-customer-key         base64(32 bytes)
    x-amz-server-side-encryption-customer-key-MD5     base64(md5(key))

CopyObject reads an SSE-C source with the ``x-amz-copy-source-server-side-encryption-customer-*``
headers. GET and HEAD must not carry the SSE (non -customer) headers: 400, as S3 answers.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Mapping

from gateway.s3.errors import S3Error

__all__ = ["SSERequest", "CustomerKey", "parse_sse_headers", "parse_customer_key",
           "refuse_sse_on_read", "SSE_KMS", "SSE_S3", "SSE_C", "H"]

SSE_KMS = "aws:kms"
SSE_S3 = "AES256"
SSE_C = "SSE-C"


class H:
    SSE = "x-amz-server-side-encryption"
    KEY_ID = "x-amz-server-side-encryption-aws-kms-key-id"
    CONTEXT = "x-amz-server-side-encryption-context"
    BUCKET_KEY = "x-amz-server-side-encryption-bucket-key-enabled"
    C_ALG = "x-amz-server-side-encryption-customer-algorithm"
    C_KEY = "x-amz-server-side-encryption-customer-key"
    C_MD5 = "x-amz-server-side-encryption-customer-key-MD5"
    COPY_PREFIX = "x-amz-copy-source-"


_MAX_CONTEXT_BYTES = 8192   # AWS KMS limit on the whole encryption context


@dataclass(frozen=True, slots=True)
class CustomerKey:
    """An SSE-C key as sent: used for one request, never stored."""

    key: bytes = field(repr=False)
    md5_b64: str

    def verifier(self, salt: bytes) -> str:
        """What is stored to recognise this key later: a salted HMAC, never the key."""
        return hmac.new(salt, self.key, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class SSERequest:
    mode: str | None                       # SSE_KMS, SSE_S3, SSE_C or None (no headers)
    key_id: str | None = None
    context: dict[str, str] | None = None  # the user's context, as sent
    context_b64: str | None = None
    bucket_key: bool | None = None
    customer: CustomerKey | None = None


def _context(raw: str) -> dict[str, str]:
    bad = S3Error("InvalidArgument", "The header 'x-amz-server-side-encryption-context' shall be "
                  "Base64-encoded UTF-8 string holding JSON which represents a string-string map",
                  ArgumentName=H.CONTEXT)
    try:
        doc = json.loads(base64.b64decode(raw, validate=True).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) and k
                                            for k, v in doc.items()):
        raise bad
    if sum(len(k.encode()) + len(v.encode()) for k, v in doc.items()) > _MAX_CONTEXT_BYTES:
        raise S3Error("InvalidArgument", "Encryption context exceeds the maximum size",
                      ArgumentName=H.CONTEXT)
    return doc


def _bool(headers: Mapping[str, str], name: str) -> bool | None:
    raw = headers.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise S3Error("InvalidArgument", f"Invalid value for {name}", ArgumentName=name)
    return value == "true"


def parse_customer_key(headers: Mapping[str, str], prefix: str = "") -> CustomerKey | None:
    """SSE-C headers (``prefix`` = ``x-amz-copy-source-`` for a copy source)."""
    def name(header: str) -> str:
        # x-amz-copy-source-server-side-encryption-customer-*, not ...-source-x-amz-server-...
        return prefix + header.removeprefix("x-amz-") if prefix else header

    alg = headers.get(name(H.C_ALG))
    key = headers.get(name(H.C_KEY))
    md5 = headers.get(name(H.C_MD5))
    if alg is None and key is None and md5 is None:
        return None
    if alg is None or key is None:
        raise S3Error("InvalidRequest", "Requests specifying Server Side Encryption with Customer "
                      "provided keys must provide an appropriate secret key.")
    if alg != "AES256":
        raise S3Error("InvalidEncryptionAlgorithmError", ArgumentName=name(H.C_ALG),
                      ArgumentValue=alg)
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise S3Error("InvalidArgument", "The secret key was invalid for the specified algorithm.",
                      ArgumentName=name(H.C_KEY))
    digest = base64.b64encode(hashlib.md5(raw).digest()).decode()
    if md5 is None or not hmac.compare_digest(md5.strip(), digest):
        raise S3Error("InvalidArgument", "The calculated MD5 hash of the key did not match the "
                      "hash that was provided.", ArgumentName=name(H.C_MD5))
    return CustomerKey(key=raw, md5_b64=digest)


def parse_sse_headers(headers: Mapping[str, str]) -> SSERequest:
    """The SSE a write asks for. No headers -> mode None (the bucket default applies)."""
    mode = headers.get(H.SSE)
    key_id = headers.get(H.KEY_ID)
    ctx_raw = headers.get(H.CONTEXT)
    bucket_key = _bool(headers, H.BUCKET_KEY)
    customer = parse_customer_key(headers)
    if customer is not None:
        if mode is not None or key_id is not None or ctx_raw is not None:
            raise S3Error("InvalidArgument", "Server Side Encryption with Customer provided key "
                          "is incompatible with the encryption method specified",
                          ArgumentName=H.SSE, ArgumentValue=mode or "")
        return SSERequest(mode=SSE_C, customer=customer)
    if mode is None:
        if key_id is not None or ctx_raw is not None:
            raise S3Error("InvalidArgument", "Server Side Encryption with KMS managed key requires "
                          "HTTP header x-amz-server-side-encryption : aws:kms",
                          ArgumentName=H.SSE)
        return SSERequest(mode=None, bucket_key=bucket_key)
    if mode not in (SSE_KMS, SSE_S3):
        raise S3Error("InvalidArgument", "The encryption method specified is not supported",
                      ArgumentName=H.SSE, ArgumentValue=mode)
    if mode == SSE_S3 and (key_id is not None or ctx_raw is not None):
        raise S3Error("InvalidArgument", "Server Side Encryption with KMS managed key requires "
                      "HTTP header x-amz-server-side-encryption : aws:kms", ArgumentName=H.SSE)
    if key_id is not None and not key_id.strip():
        raise S3Error("InvalidArgument", "KMS key id must not be empty", ArgumentName=H.KEY_ID)
    context = _context(ctx_raw) if ctx_raw is not None else None
    return SSERequest(mode=mode, key_id=key_id.strip() if key_id else None, context=context,
                      context_b64=ctx_raw, bucket_key=bucket_key)


def refuse_sse_on_read(headers: Mapping[str, str]) -> None:
    """GET/HEAD with SSE (not SSE-C) headers is a 400 on S3."""
    for name in (H.SSE, H.KEY_ID, H.CONTEXT):
        if name in headers:
            raise S3Error("InvalidArgument", "x-amz-server-side-encryption header is not supported "
                          "for this operation.", ArgumentName=name)
