"""The AWS CloudTrail JSON 1.1 face: ``POST /``,
``X-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents``.

SigV4-signed for service ``cloudtrail``; the body is read first so its hash completes the
canonical request. An account root sees its account's events; an IAM user needs an identity
policy allowing ``cloudtrail:LookupEvents``. Failures are ``{"__type", "message"}``.
"""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.errors import AuthError, GatewayError, Kind
from gateway.json_protocol import (CONTENT_TYPE, json_auth_error, json_error, parse_json_body,
                                   read_signed_body, target_operation)
from gateway.principal_info import Principal, PrincipalError, principal_for
from kms.audit.lookup import LOOKUP_ATTRIBUTES, LookupError_, lookup_events, to_lookup_event

__all__ = ["handle_cloudtrail", "TARGET_PREFIX"]

log = logging.getLogger("coffer.cloudtrail_api")

MAX_BODY = 64 * 1024
TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
_error = json_error


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


def _allowed(principal: Principal) -> bool:
    if principal.user_name is None:
        return True
    from kms.iam.evaluate import AuthzRequest, evaluate
    req = AuthzRequest(
        principal_arn=principal.arn, action="cloudtrail:LookupEvents", resource="*",
        principal_account=principal.account_id, user_name=principal.user_name,
        user_id=principal.user_id,
        context={"aws:SourceIp": principal.source_ip,
                 "aws:SecureTransport": principal.secure_transport})
    return evaluate(req, list(principal.identity_policies), None,
                    resource_account=principal.account_id).allowed


async def handle_cloudtrail(request: web.Request, audit_dir: Path, lookup, region: str,
                            identity=None) -> web.StreamResponse:
    if request.method != "POST" or request.path != "/":
        return _error("UnknownOperationException", "", 404)
    try:
        body, ctx = await read_signed_body(request, lookup, region, MAX_BODY)
        if ctx.credential is None:
            raise AuthError(Kind.MISSING_AUTHENTICATION)
    except GatewayError as err:
        return json_auth_error(err)
    cred = ctx.credential
    op = target_operation(request, TARGET_PREFIX)
    if op != "LookupEvents":
        return _error("UnknownOperationException", f"Unknown operation {op}")
    try:
        params = parse_json_body(body)
    except GatewayError as err:
        return json_auth_error(err)
    try:
        principal = principal_for(request, ctx, identity)
    except PrincipalError as exc:     # fail closed: never evaluate without aws:userid
        if exc.denied:
            return _error("AccessDeniedException", "The principal no longer exists", 400)
        return _error("InternalFailure", "An internal error occurred", 500)
    if not _allowed(principal):
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
    return web.Response(body=json.dumps(out).encode(), content_type=CONTENT_TYPE)
