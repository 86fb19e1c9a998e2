"""What the AWS JSON 1.1 faces (KMS, CloudTrail) and the Query face (IAM, STS) share.

These protocols send a small body and sign it without ``x-amz-content-sha256``: the body is read
whole (capped) first, then its hash completes the SigV4 canonical request.
"""
from __future__ import annotations

import hashlib
import json
import time

from aiohttp import web

from gateway import auth
from gateway.auth.types import AuthContext, CredentialLookup
from gateway.s3.errors import S3Error

__all__ = ["CONTENT_TYPE", "json_error", "json_auth_error", "read_signed_body", "TARGET",
           "target_operation"]

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET = "X-Amz-Target"

# Authentication failures (raised as S3-style codes by gateway.auth), as the JSON protocols
# name them.
_JSON_AUTH_ERRORS = {
    "InvalidAccessKeyId": ("UnrecognizedClientException",
                           "The security token included in the request is invalid.", 400),
    "SignatureDoesNotMatch": ("InvalidSignatureException",
                              "The request signature we calculated does not match the "
                              "signature you provided. Check your AWS Secret Access Key and "
                              "signing method. Consult the service documentation for details.",
                              400),
    "RequestTimeTooSkewed": ("InvalidSignatureException", "Signature expired", 400),
    "AccessDenied": ("AccessDeniedException", "Access Denied", 403),
    "MaxMessageLengthExceeded": ("ValidationException", "Request body too large", 413),
}


def json_error(type_: str, message: str, status: int = 400) -> web.Response:
    body = json.dumps({"__type": type_, "message": message})
    return web.Response(status=status, body=body.encode(), content_type=CONTENT_TYPE)


def json_auth_error(err: S3Error) -> web.Response:
    type_, message, status = _JSON_AUTH_ERRORS.get(
        err.code, ("IncompleteSignatureException", err.message, 400))
    return json_error(type_, message, status)


async def read_signed_body(request: web.Request, lookup: CredentialLookup, region: str,
                           max_body: int) -> tuple[bytes, AuthContext]:
    """The whole (small) body and who signed it. Raises S3Error: an authentication code, or
    MaxMessageLengthExceeded when the body is over ``max_body``."""
    body = await request.content.read(max_body + 1)
    if len(body) > max_body:
        raise S3Error("MaxMessageLengthExceeded")
    ctx = auth.authenticate(request.method, request.raw_path, request.headers, lookup,
                            clock=time.time, server_region=region,
                            body_sha256=hashlib.sha256(body).hexdigest())
    return body, ctx


def target_operation(request: web.Request, prefix: str) -> str:
    """``X-Amz-Target: <prefix><Operation>`` -> Operation ("" when it does not match)."""
    target = request.headers.get(TARGET, "")
    return target[len(prefix):] if target.startswith(prefix) else ""
