"""The IAM and STS Query faces: ``POST /`` with a form body ``Action=...&Version=...``.

Requests are SigV4-signed for service ``iam`` (or ``sts``); the small body is read first so its
hash completes the canonical request. Authorization: an account root may call every IAM
operation in its account; an IAM user needs an identity policy allowing ``iam:<Action>`` on the
target (``kms.iam.evaluate``). STS ``GetCallerIdentity`` needs only a valid credential.
Failures are ``<ErrorResponse>`` documents with AWS's code and status; authentication failures
arrive neutral (``gateway.errors``) and are rendered through its Query table.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from urllib.parse import parse_qsl

from aiohttp import web

from gateway.context import context_of, request_id_of
from gateway.errors import (AuthError, GatewayError, Kind, RequestError, query_entry,
                            render_query_xml)
from gateway.iam_api.operations import OPERATIONS, IAMCall
from gateway.iam_api.xml import IAM_NS, STS_NS, render_result
from gateway.identity import IdentityStore
from gateway.json_protocol import read_signed_body
from gateway.principal_info import Principal, PrincipalError, principal_for
from kms.iam import errors as ie
from kms.iam.evaluate import AuthzRequest, evaluate

__all__ = ["handle_iam", "MAX_BODY", "MAX_FORM_FIELDS", "authorize", "parse_form"]

log = logging.getLogger("coffer.iam_api")

MAX_BODY = 1024 * 1024
# More parameters than any IAM action takes, with room for long policy lists.
MAX_FORM_FIELDS = 1000


def _respond(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type="text/xml")


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` Query body -> its parameters (the last of a
    repeated name wins). Raises RequestError MALFORMED_BODY (MalformedQueryString): not UTF-8,
    or more than MAX_FORM_FIELDS parameters."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(Kind.MALFORMED_BODY, "The request body is not valid UTF-8") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise RequestError(Kind.MALFORMED_BODY, "The request body has too many "
                           "parameters") from None
    return dict(pairs)


def authorize(principal: Principal, action: str, resource: str, request: web.Request,
              extra: dict | None = None, shown: str | None = None) -> None:
    """Raise AccessDenied unless ``principal`` may call ``iam:<action>`` on ``resource``.

    ``resource`` is canonical (the stored user's ARN); the message names ``shown`` instead,
    the resource as the caller typed it, so a denial never tells a caller that ``ALICE`` is
    stored as ``alice`` under ``/secret/`` (an existence oracle for names it may not read)."""
    if principal.user_name is None:
        return                          # an account root
    req = AuthzRequest(
        principal_arn=principal.arn, action=f"iam:{action}", resource=resource,
        principal_account=principal.account_id, user_name=principal.user_name,
        user_id=principal.user_id,
        context={"aws:SourceIp": principal.source_ip,
                 "aws:SecureTransport": principal.secure_transport,
                 "aws:RequestedRegion": "us-east-1", **(extra or {})})
    decision = evaluate(req, list(principal.identity_policies), None,
                        resource_account=principal.account_id)
    if not decision.allowed:
        log.info("request %s: iam:%s denied for %s: %s", request_id_of(request), action,
                 principal.arn, decision.explain())
        told = dataclasses.replace(req, resource=shown) if shown is not None else req
        raise ie.AccessDenied(decision.aws_message(told))


async def handle_iam(request: web.Request, identity: IdentityStore, lookup, region: str,
                     service: str = "iam", pool=None, audit=None) -> web.StreamResponse:
    """Authenticate, authorize, dispatch and render one IAM or STS Query request.

    ``audit`` (gateway.audit_trail.AuditTrail) makes the operation's commit wait for its
    durable intent record (``AuditTrail.iam_call``); the outcome is written by the caller."""
    ns = STS_NS if service == "sts" else IAM_NS
    rid = request_id_of(request)

    note: dict = {}
    context_of(request).audit = note   # read by gateway.audit_trail for the CloudTrail record

    def error(code: str, message: str, status: int, sender: bool = True) -> web.Response:
        note["error"] = (code, message)
        return _respond(render_query_xml(code, message, rid, sender=sender, namespace=ns),
                        status)

    try:
        body, ctx = await read_signed_body(request, lookup, region, MAX_BODY)
        if ctx.credential is None:
            raise AuthError(Kind.MISSING_AUTHENTICATION)
        form = parse_form(body)
    except GatewayError as err:
        code, status, message = query_entry(err)
        return error(code, message, status)
    params = {**dict(request.query), **form}
    action = params.get("Action", "")
    cred = ctx.credential
    note.update(action=action, params=params, credential=cred, service=service)
    try:
        principal = principal_for(request, ctx, identity)
    except PrincipalError as exc:     # fail closed: never evaluate without aws:userid
        if exc.denied:
            return error("AccessDenied", "The principal no longer exists", 403)
        return error("ServiceFailure", "An internal error occurred", 500, sender=False)
    if service == "sts":
        if action != "GetCallerIdentity":
            return error("InvalidAction", f"Could not find operation {action} for version "
                         f"{params.get('Version', '2011-06-15')}", 400)
        result = {"UserId": principal.user_id or cred.account_id, "Account": cred.account_id,
                  "Arn": cred.principal_arn}
        return _respond(render_result(action, result, rid, ns))
    op = OPERATIONS.get(action)
    if op is None:
        return error("InvalidAction", f"Could not find operation {action} for version "
                     f"{params.get('Version', '2010-05-08')}", 400)
    call = IAMCall(identity=identity, credential=cred, params=params)

    def run():
        extra = {"iam:PolicyARN": params["PolicyArn"]} if "PolicyArn" in params else None
        authorize(principal, action, op.resource(call), request, extra, op.shown(call))
        if audit is None:
            return op.run(call)
        with audit.iam_call(request, note):
            return op.run(call)

    try:
        result = await asyncio.get_running_loop().run_in_executor(pool, run)
    except ie.IAMError as exc:
        return error(exc.code, exc.message, exc.status, exc.sender)
    except Exception:  # noqa: BLE001 - never a traceback on the wire
        log.exception("request %s: IAM internal error", rid)
        return error("ServiceFailure", "An internal error occurred", 500, sender=False)
    return _respond(render_result(action, result, rid, ns))
