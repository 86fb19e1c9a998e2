"""Request authentication: pick the scheme a request uses, verify it, describe the signer.

Schemes (S3 API Reference, "Authenticating Requests"):

    Authorization: AWS4-HMAC-SHA256 ...      -> sigv4-header   (gateway.auth.sigv4)
    Authorization: AWS AKID:sig              -> sigv2-header   (gateway.auth.sigv2)
    ?X-Amz-Algorithm=...                     -> sigv4-query
    ?AWSAccessKeyId=..&Signature=..          -> sigv2-query
    none of these                            -> anonymous

Payload verification (hashes, checksums, aws-chunked) happens later, while the body streams,
in ``gateway.auth.payload``. Every failure is a neutral ``gateway.errors.AuthError``; the face
that received the request renders it.
"""
from __future__ import annotations

import time
from typing import Callable, Mapping

from gateway.auth import sigv2, sigv4
from gateway.auth.types import AuthContext, CredentialLookup
from gateway.errors import AuthError, Kind

__all__ = ["authenticate", "peek_service"]


def _split(raw_path: str) -> tuple[str, str]:
    path, _, query = raw_path.partition("?")
    return path, query


def _query_keys(query: str) -> set[str]:
    return {part.partition("=")[0] for part in query.split("&") if part}


def _authorization(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Authorization")
    if value is None:
        for k, v in headers.items():
            if k.lower() == "authorization":
                return v.strip()
        return None
    return value.strip()


def authenticate(method: str, raw_path: str, headers: Mapping[str, str],
                 lookup: CredentialLookup, *, clock: Callable[[], float] = time.time,
                 server_region: str = "us-east-1", vhost_bucket: str | None = None,
                 body_sha256: str | None = None) -> AuthContext:
    """Verify a request's signature and return who signed it.

    ``raw_path`` is the path and query exactly as received (aiohttp ``request.raw_path``).
    ``vhost_bucket`` names the bucket of a virtual-host-style request (SigV2 signs it).
    ``body_sha256`` is the hex SHA-256 of the whole body: non-S3 services sign it (the KMS,
    IAM and CloudTrail faces read their small bodies first), header and presigned alike.

    The credential-scope region is reported, not enforced. Raises ``AuthError`` (see the kinds
    of ``sigv4.authenticate_header`` / ``authenticate_query`` and ``sigv2``), and
    INVALID_AUTH_ARGUMENT / MALFORMED_AUTHORIZATION for two schemes at once, an unknown scheme
    or an Authorization header that is not UTF-8.
    """
    path, query = _split(raw_path)
    keys = _query_keys(query)
    auth = _authorization(headers)
    has_v4_query = "X-Amz-Algorithm" in keys
    has_v2_query = "AWSAccessKeyId" in keys and "Signature" in keys
    if auth is not None and not _is_utf8(auth):
        # Undecodable bytes (lone surrogates here) can match no signature: a 400, as AWS.
        if auth.startswith(sigv4.ALGORITHM):
            raise AuthError(Kind.MALFORMED_AUTHORIZATION, "The authorization header is "
                            "malformed; it is not valid UTF-8.")
        raise AuthError(Kind.INVALID_AUTH_ARGUMENT, "Unsupported Authorization Type",
                        ArgumentName="Authorization", ArgumentValue=auth)
    if auth is not None and (has_v4_query or has_v2_query):
        raise AuthError(Kind.INVALID_AUTH_ARGUMENT, "Only one auth mechanism allowed; only the "
                        "X-Amz-Algorithm query parameter, Signature query string parameter or "
                        "the Authorization header should be specified",
                        ArgumentName="Authorization", ArgumentValue=auth)
    now = clock()
    if auth is not None:
        if auth.startswith(sigv4.ALGORITHM):
            return sigv4.authenticate_header(method, path, query, headers, lookup, now=now,
                                             body_sha256=body_sha256)
        if auth.startswith("AWS "):
            return sigv2.authenticate_header(method, path, query, headers, lookup, now=now,
                                             region=server_region, vhost_bucket=vhost_bucket)
        raise AuthError(Kind.INVALID_AUTH_ARGUMENT, "Unsupported Authorization Type",
                        ArgumentName="Authorization", ArgumentValue=auth)
    if has_v4_query:
        return sigv4.authenticate_query(method, path, query, headers, lookup, now=now,
                                        body_sha256=body_sha256)
    if has_v2_query:
        return sigv2.authenticate_query(method, path, query, headers, lookup, now=now,
                                        region=server_region, vhost_bucket=vhost_bucket)
    return AuthContext(credential=None, method="anonymous", service="s3", region=server_region)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def peek_service(raw_path: str, headers: Mapping[str, str]) -> str:
    """The credential-scope service a request claims, without verifying anything.

    "s3" for SigV2, anonymous or unparseable requests. For routing only.
    """
    auth = _authorization(headers)
    if auth is not None and auth.startswith(sigv4.ALGORITHM):
        for part in auth[len(sigv4.ALGORITHM):].split(","):
            k, _, v = part.strip().partition("=")
            if k.strip() == "Credential":
                return sigv4.scope_service(v) or "s3"
        return "s3"
    _, query = _split(raw_path)
    if auth is None and "X-Amz-Credential" in _query_keys(query):
        for k, v in sigv4.decode_query(query):
            if k == "X-Amz-Credential":
                return sigv4.scope_service(v) or "s3"
    return "s3"
