"""The AWS CloudTrail JSON 1.1 face: ``POST /``,
``X-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents``.

SigV4-signed for service ``cloudtrail``; the body is read first so its hash completes the
canonical request. An account root sees its account's events; an IAM user needs an identity
policy allowing ``cloudtrail:LookupEvents``. Failures are ``{"__type", "message"}``.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway import auth
from gateway.s3.errors import S3Error
from kms.audit.lookup import LOOKUP_ATTRIBUTES, LookupError_, lookup_events, to_lookup_event

__all__ = ["handle_cloudtrail", "TARGET_PREFIX"]

log = logging.getLogger("coffer.cloudtrail_api")

MAX_BODY = 64 * 1024
TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
_CONTENT_TYPE = "application/x-amz-json-1.1"
_AUTH_ERRORS = {
    "InvalidAccessKeyId": ("UnrecognizedClientException",
                           "The security token included in the request is invalid."),
    "SignatureDoesNotMatch": ("InvalidSignatureException",
                              "The request signature we calculated does not match the "
                              "signature you provided."),
    "RequestTimeTooSkewed": ("InvalidSignatureException", "Signature expired"),
}


def _error(type_: str, message: str, status: int = 400) -> web.Response:
    return web.Response(status=status, body=json.dumps({"__type": type_, "message": message})
                        .encode(), content_type=_CONTENT_TYPE)


def _time(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ValueError(name)


def _allowed(identity, cred, request: web.Request) -> bool:
    if cred.user_name is None:
        return True
    from kms.iam.evaluate import AuthzRequest, evaluate
    req = AuthzRequest(
        principal_arn=cred.principal_arn, action="cloudtrail:LookupEvents", resource="*",
        principal_account=cred.account_id, user_name=cred.user_name, user_id=None,
        context={"aws:SourceIp": request.remote or "", "aws:SecureTransport": request.secure})
    return evaluate(req, identity.identity_policies(cred.principal_arn), None,
                    resource_account=cred.account_id).allowed


async def handle_cloudtrail(request: web.Request, audit_dir: Path, lookup, region: str,
                            identity=None) -> web.StreamResponse:
    if request.method != "POST" or request.path != "/":
        return _error("UnknownOperationException", "", 404)
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return _error("ValidationException", "Request body too large", 413)
    try:
        ctx = auth.authenticate(request.method, request.raw_path, request.headers, lookup,
                                clock=time.time, server_region=region,
                                body_sha256=hashlib.sha256(body).hexdigest())
    except S3Error as err:
        type_, message = _AUTH_ERRORS.get(err.code, ("IncompleteSignatureException",
                                                     err.message))
        return _error(type_, message)
    cred = ctx.credential
    if cred is None:
        return _error("MissingAuthenticationTokenException", "Missing Authentication Token")
    target = request.headers.get("X-Amz-Target", "")
    op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
    if op != "LookupEvents":
        return _error("UnknownOperationException", f"Unknown operation {op or target}")
    try:
        params = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error("SerializationException", "Malformed JSON body")
    if not isinstance(params, dict):
        return _error("SerializationException", "Malformed JSON body")
    if identity is not None and not _allowed(identity, cred, request):
        return _error("AccessDeniedException", f"User: {cred.principal_arn} is not authorized "
                      "to perform: cloudtrail:LookupEvents", 400)
    attrs = params.get("LookupAttributes") or []
    if not isinstance(attrs, list) or len(attrs) > 1:
        return _error("InvalidLookupAttributesException",
                      "You can specify at most one lookup attribute.")
    pairs = []
    for a in attrs:
        if (not isinstance(a, dict) or a.get("AttributeKey") not in LOOKUP_ATTRIBUTES
                or not isinstance(a.get("AttributeValue"), str)):
            return _error("InvalidLookupAttributesException",
                          "Lookup attribute keys must be one of "
                          + ", ".join(LOOKUP_ATTRIBUTES))
        pairs.append((a["AttributeKey"], a["AttributeValue"]))
    try:
        start = _time(params.get("StartTime"), "StartTime")
        end = _time(params.get("EndTime"), "EndTime")
    except ValueError:
        return _error("InvalidTimeRangeException", "Invalid StartTime or EndTime")
    if start is not None and end is not None and start > end:
        return _error("InvalidTimeRangeException", "StartTime must be before EndTime")
    max_results = params.get("MaxResults", 50)
    if not isinstance(max_results, int) or isinstance(max_results, bool) \
            or not 1 <= max_results <= 50:
        return _error("InvalidMaxResultsException", "MaxResults must be between 1 and 50")
    token = params.get("NextToken")
    try:
        page, next_token = await asyncio.to_thread(
            lookup_events, audit_dir, attributes=pairs, start=start, end=end,
            account=cred.account_id, max_results=max_results, next_token=token)
    except LookupError_ as exc:
        kind = ("InvalidNextTokenException" if "NextToken" in str(exc)
                else "InvalidLookupAttributesException")
        return _error(kind, str(exc))
    out: dict[str, Any] = {"Events": [to_lookup_event(r) for r in page]}
    if next_token:
        out["NextToken"] = next_token
    return web.Response(body=json.dumps(out).encode(), content_type=_CONTENT_TYPE)
