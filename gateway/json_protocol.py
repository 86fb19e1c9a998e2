"""What the AWS JSON 1.1 faces (KMS, CloudTrail) and the Query face (IAM, STS) share.

These protocols send a small body and sign it: the body is read whole (up to a cap, over as
many TCP segments as it takes) first, then its hash completes the SigV4 canonical request as
HashedPayload (AWS General Reference, "Create a canonical request for Signature Version 4").
Failures are neutral ``gateway.errors`` errors; each face renders them in its own protocol.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from aiohttp import web

from gateway import auth
from gateway.auth.types import AuthContext, CredentialLookup
from gateway.errors import (JSON_CONTENT_TYPE, GatewayError, Kind, RequestError,
                            json_error_response, json_response)

__all__ = ["CONTENT_TYPE", "MAX_JSON_DEPTH", "json_error", "json_auth_error", "read_whole_body",
           "read_signed_body", "parse_json_body", "TARGET", "target_operation"]

CONTENT_TYPE = JSON_CONTENT_TYPE
TARGET = "X-Amz-Target"
# No AWS JSON 1.1 request document nests anywhere near this deep (a KMS key policy travels as a
# string); a deeper one is refused before anything walks it recursively.
MAX_JSON_DEPTH = 64
_READ_SIZE = 64 * 1024

json_error = json_error_response


def json_auth_error(err: GatewayError) -> web.Response:
    """A neutral error as the JSON protocols answer it (``{"__type", "message"}``)."""
    return json_response(err)


async def read_whole_body(request: web.Request, max_body: int) -> bytes:
    """Every byte of the body, however many segments it arrives in. Raises RequestError
    MESSAGE_TOO_LARGE past ``max_body`` (judged on Content-Length first, then on the bytes)."""
    declared = request.content_length
    if declared is not None and declared > max_body:
        raise RequestError(Kind.MESSAGE_TOO_LARGE)
    parts: list[bytes] = []
    size = 0
    while True:
        piece = await request.content.read(_READ_SIZE)
        if not piece:
            break
        size += len(piece)
        if size > max_body:
            raise RequestError(Kind.MESSAGE_TOO_LARGE)
        parts.append(piece)
    return b"".join(parts)


async def read_signed_body(request: web.Request, lookup: CredentialLookup, region: str,
                           max_body: int) -> tuple[bytes, AuthContext]:
    """The whole (small) body and who signed it. Raises AuthError (any authentication kind)
    or RequestError MESSAGE_TOO_LARGE."""
    body = await read_whole_body(request, max_body)
    ctx = auth.authenticate(request.method, request.raw_path, request.headers, lookup,
                            clock=time.time, server_region=region,
                            body_sha256=hashlib.sha256(body).hexdigest())
    return body, ctx


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return True


def parse_json_body(body: bytes) -> dict[str, Any]:
    """A JSON 1.1 request document -> its top-level object ({} for an empty body).

    Raises RequestError MALFORMED_BODY (the faces' SerializationException) for anything else:
    bad syntax or encoding, NaN / Infinity, nesting deeper than MAX_JSON_DEPTH (where
    ``json`` itself would give up with RecursionError), a top level that is not an object.
    """
    if not body:
        return {}
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise RequestError(Kind.MALFORMED_BODY, "Malformed JSON body") from None
    if not isinstance(value, dict):
        raise RequestError(Kind.MALFORMED_BODY, "Malformed JSON body")
    if not _depth_ok(value, MAX_JSON_DEPTH):
        raise RequestError(Kind.MALFORMED_BODY, "JSON body nested too deeply")
    return value


def target_operation(request: web.Request, prefix: str) -> str:
    """``X-Amz-Target: <prefix><Operation>`` -> Operation ("" when it does not match)."""
    target = request.headers.get(TARGET, "")
    return target[len(prefix):] if target.startswith(prefix) else ""
