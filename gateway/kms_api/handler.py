"""The AWS KMS JSON 1.1 face: ``POST /``, ``X-Amz-Target: TrentService.<Operation>``.

Requests are SigV4-signed for service ``kms``; the body (a small JSON document) is read first so
its hash can complete the canonical request (botocore signs KMS bodies without sending
``x-amz-content-sha256``; one sent must equal it). Parameters arrive in AWS's CamelCase and become the keyword arguments
of the ``kms`` library's snake_case operations; blobs are base64 both ways. Failures are
``{"__type": ..., "message": ...}`` with the error's HTTP status.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import logging
import re
from typing import Any, Callable

from aiohttp import web

from gateway.context import request_id_of
from gateway.errors import AuthError, GatewayError, Kind, kms_json_entry
from gateway.json_protocol import (CONTENT_TYPE, json_auth_error, json_error, parse_json_body,
                                   read_signed_body, target_operation)
from gateway.principal_info import PrincipalError, principal_for
from kms import errors as ke
from kms.service import KMS

__all__ = ["handle_kms", "OPERATIONS", "MAX_BODY"]

log = logging.getLogger("coffer.kms_api")

MAX_BODY = 1024 * 1024
_TARGET_PREFIX = "TrentService."
_BLOB_PARAMS = {"Plaintext", "CiphertextBlob", "Message", "Signature", "Mac", "PublicKey",
                "EncryptedKeyMaterial", "ImportToken", "Recipient"}

# The AWS KMS operations (botocore's kms 2014-11-01 model). An operation is served when the
# ``kms`` library has its snake_case method; any other target is UnknownOperationException, as
# AWS answers an unknown target.
_AWS_OPERATIONS = (
    "CancelKeyDeletion", "ConnectCustomKeyStore", "CreateAlias", "CreateCustomKeyStore",
    "CreateGrant", "CreateKey", "Decrypt", "DeleteAlias", "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial", "DeriveSharedSecret", "DescribeCustomKeyStores",
    "DescribeKey", "DisableKey", "DisableKeyRotation", "DisconnectCustomKeyStore", "EnableKey",
    "EnableKeyRotation", "Encrypt", "GenerateDataKey", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "GenerateDataKeyWithoutPlaintext", "GenerateMac",
    "GenerateRandom", "GetKeyLastUsage", "GetKeyPolicy", "GetKeyRotationStatus",
    "GetParametersForImport", "GetPublicKey", "ImportKeyMaterial", "ListAliases",
    "ListGrants", "ListKeyPolicies", "ListKeyRotations", "ListKeys", "ListResourceTags",
    "ListRetirableGrants", "PutKeyPolicy", "ReEncrypt", "ReplicateKey", "RetireGrant",
    "RevokeGrant", "RotateKeyOnDemand", "ScheduleKeyDeletion", "Sign", "TagResource",
    "UntagResource", "UpdateAlias", "UpdateCustomKeyStore", "UpdateKeyDescription",
    "UpdatePrimaryRegion", "Verify", "VerifyMac",
)
# Operations with a DryRun parameter that change nothing: a dry run performs every check by
# running the operation, then answers DryRunOperationException (412) instead of the result.
_DRY_RUN_SAFE = {"Decrypt", "DeriveSharedSecret", "Encrypt", "GenerateDataKey",
                 "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
                 "GenerateDataKeyWithoutPlaintext", "GenerateMac", "ReEncrypt", "Sign",
                 "Verify", "VerifyMac"}
OPERATIONS: dict[str, str] = {
    op: re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower() for op in _AWS_OPERATIONS
}

_error = json_error


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _out(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _out(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_out(v) for v in value]
    return value


def _kwargs(fn: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    accepted = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        if name in _BLOB_PARAMS and isinstance(value, str):
            try:
                value = base64.b64decode(value, validate=True)
            except binascii.Error as exc:
                raise ke.ValidationException(f"Value at '{name}' is not valid base64") from exc
        snake = _snake(name)
        if snake in accepted and snake != "caller":
            kwargs[snake] = value
        elif name == "DryRun" and not isinstance(value, bool):
            raise ke.ValidationException("DryRun must be a boolean")
    missing = [n for n, p in accepted.items() if n != "caller" and n != "self"
               and p.default is inspect.Parameter.empty and n not in kwargs
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        camel = "".join(w.capitalize() for w in missing[0].split("_"))
        camel = camel[0].lower() + camel[1:]
        raise ke.ValidationException(f"1 validation error detected: Value null at '{camel}' "
                                     "failed to satisfy constraint: Member must not be null")
    return kwargs


async def handle_kms(request: web.Request, kms: KMS, lookup, region: str,
                     pool=None, regions: Callable[[str], bool] | None = None
                     ) -> web.StreamResponse:
    """Authenticate, dispatch and render one KMS JSON request. The credential-scope region
    picks the key namespace (``KMS.in_region``); ``regions`` says which ones are served."""
    if request.method != "POST" or request.path != "/":
        return _error("UnknownOperationException", "", 404)
    try:
        body, ctx = await read_signed_body(request, lookup, region, MAX_BODY)
        if ctx.credential is None:
            raise AuthError(Kind.MISSING_AUTHENTICATION)
    except GatewayError as err:
        return json_auth_error(err)
    if ctx.region != region:
        if regions is not None and not regions(ctx.region):
            return _error("UnrecognizedClientException",
                          f"Credential should be scoped to a valid region, not "
                          f"'{ctx.region}'.")
        kms = kms.in_region(ctx.region)
    op = target_operation(request, _TARGET_PREFIX)
    method = OPERATIONS.get(op)
    if method is None or not hasattr(kms, method):
        return _error("UnknownOperationException", "")
    try:
        params = parse_json_body(body)
    except GatewayError as err:
        return json_auth_error(err)
    try:
        principal = principal_for(request, ctx)
    except PrincipalError as exc:     # fail closed: never a Caller missing an attribute
        if exc.denied:
            return _error("AccessDeniedException", "The principal no longer exists")
        return _error("KMSInternalException", "An internal error occurred", 500)
    caller = principal.caller(request_id=request_id_of(request), requested_region=ctx.region)
    fn = getattr(kms, method)
    dry_run = params.get("DryRun") is True
    if dry_run and op not in _DRY_RUN_SAFE:
        return _error("UnsupportedOperationException", f"DryRun is not supported for {op}")
    try:
        kwargs = _kwargs(fn, params)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(pool, lambda: fn(caller, **kwargs))
    except ke.KMSError as exc:
        type_, status, message = kms_json_entry(exc)
        return _error(type_, message, status)
    except (TypeError, ValueError) as exc:
        log.info("request %s: bad KMS parameters: %s", caller.request_id, type(exc).__name__)
        return _error("ValidationException", "Invalid parameter value")
    except Exception:  # noqa: BLE001 - never a traceback on the wire
        log.exception("request %s: KMS internal error", caller.request_id)
        return _error("KMSInternalException", "An internal error occurred", 500)
    if dry_run:
        return _error("DryRunOperationException",
                      "The request would have succeeded, but the DryRun option is set.", 412)
    return web.Response(body=json.dumps(_out(result or {})).encode(),
                        content_type=CONTENT_TYPE)
