"""AWS Signature Version 2 for S3 (S3 Developer Guide, "Signing and Authenticating REST
Requests", a.k.a. RESTAuthentication).

    Authorization = "AWS" " " AWSAccessKeyId ":" base64(HMAC-SHA1(secret, StringToSign))
    StringToSign  = Method \n Content-MD5 \n Content-Type \n Date \n
                    CanonicalizedAmzHeaders CanonicalizedResource
    CanonicalizedAmzHeaders = (lower(name) ":" ",".join(trim(values)) \n)*  sorted by name,
                              for every x-amz-* header
    CanonicalizedResource   = ["/" bucket] raw-path ["?" sub-resources sorted by name,
                              "k=v" (value decoded) or "k", joined by "&"]

Query form: ``?AWSAccessKeyId=..&Expires=<epoch>&Signature=..``; Expires replaces Date, and
x-amz-* query parameters count as headers (botocore moves them there). The Date line is empty
when x-amz-date is sent.

Every x-amz-* header sent is in CanonicalizedAmzHeaders, so SigV2 binds them all by
construction (no "unsigned headers" case). Content-Type and Content-MD5 are the headers as sent
(empty when absent): a URL signed with none does not admit one. A presigned ``Expires`` lies at
most ``MAX_QUERY_EXPIRES`` ahead (a year; the AWS SDK team, aws/aws-sdk-net#528: "Signature
Version 2 has a max expiration of a year").
"""
from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import datetime as _dt
import re
from typing import Iterator, Mapping

from gateway.auth.sigv4 import MAX_SKEW_SECONDS, decode_query, header_index
from gateway.auth.types import AuthContext, Credential, CredentialLookup
from gateway.errors import AuthError, Kind

__all__ = ["SUBRESOURCES", "MAX_QUERY_EXPIRES", "canonical_resource", "string_to_sign",
           "authenticate_header", "authenticate_query"]

MAX_QUERY_EXPIRES = 365 * 24 * 3600
_EPOCH = re.compile(r"[0-9]{1,12}")

# The resource list of the RESTAuthentication doc, plus what botocore's HmacV1Auth signs.
SUBRESOURCES = frozenset({
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber",
    "policy", "requestPayment", "tagging", "torrent", "uploadId", "uploads", "versionId",
    "versioning", "versions", "website", "restore", "encryption",
    "response-content-type", "response-content-language", "response-expires",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "accelerate", "defaultObjectAcl", "storageClass", "replication", "analytics", "metrics",
    "inventory", "select", "select-type", "object-lock",
})
# Exactly botocore's list: a second candidate when a client left e.g. ``encryption`` out.
_BOTOCORE_SUBRESOURCES = frozenset(SUBRESOURCES - {"encryption"})


def canonical_resource(raw_path: str, raw_query: str, vhost_bucket: str | None,
                       subresources: frozenset[str] = SUBRESOURCES) -> str:
    path = raw_path or "/"
    if vhost_bucket:
        path = "/" + vhost_bucket + path
    subs = []
    for part in raw_query.split("&"):
        k, eq, v = part.partition("=")
        if k in subresources:
            subs.append((k, eq, decode_query("x=" + v)[0][1] if eq else ""))
    if not subs:
        return path
    subs.sort(key=lambda s: s[0])
    return path + "?" + "&".join(k + (("=" + v) if eq else "") for k, eq, v in subs)


def string_to_sign(method: str, content_md5: str, content_type: str, date: str,
                   amz_headers: dict[str, list[str]], resource: str) -> str:
    amz = "".join(f"{n}:{','.join(v.strip() for v in amz_headers[n])}\n"
                  for n in sorted(amz_headers))
    return f"{method.upper()}\n{content_md5}\n{content_type}\n{date}\n{amz}{resource}"


def _sign(secret: str, text: str) -> str:
    # Header bytes that were not UTF-8 arrive as lone surrogates: sign the bytes as sent.
    mac = hmac.new(secret.encode("utf-8"), text.encode("utf-8", "surrogateescape"),
                   hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


def _verify(cred: Credential, candidates: Iterator[str], provided: str) -> None:
    first = None
    seen: set[str] = set()
    for sts in candidates:
        if sts in seen:
            continue
        seen.add(sts)
        first = sts if first is None else first
        if hmac.compare_digest(_sign(cred.secret_access_key, sts).encode(),
                               provided.encode("utf-8", "surrogateescape")):
            return
    raise AuthError(Kind.SIGNATURE_MISMATCH, AWSAccessKeyId=cred.access_key_id,
                    StringToSign=first or "", SignatureProvided=provided)


def _unique(*values: str | None) -> list[str]:
    out: list[str] = []
    for v in values:
        if v is not None and v not in out:
            out.append(v)
    return out


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bucket_paths(raw_path: str, vhost_bucket: str | None) -> tuple[str, ...]:
    """The paths a signer may have signed for ``raw_path``. A path-style bucket request sent
    to ``/bucket`` is signed by botocore's HmacV1Auth as ``/bucket/`` (its auth_path; the
    RESTAuthentication doc's own bucket examples end in "/"): both name the same bucket."""
    if vhost_bucket is None and raw_path.count("/") == 1 and len(raw_path) > 1:
        return raw_path, raw_path + "/"
    return (raw_path,)


def authenticate_header(method: str, raw_path: str, raw_query: str,
                        headers: Mapping[str, str], lookup: CredentialLookup, *,
                        now: float, region: str, vhost_bucket: str | None = None) -> AuthContext:
    """Verify ``Authorization: AWS AKID:signature``.

    Raises AuthError: INVALID_AUTH_ARGUMENT (malformed header), MISSING_DATE,
    UNKNOWN_ACCESS_KEY, TIME_SKEWED, SIGNATURE_MISMATCH.
    """
    index = header_index(headers)
    value = index["authorization"][0].strip()
    akid, colon, provided = value[4:].strip().rpartition(":")
    if not colon or not akid or not provided:
        raise AuthError(Kind.INVALID_AUTH_ARGUMENT, "AWS authorization header is invalid.  "
                        "Expected AwsAccessKeyId:signature", ArgumentName="Authorization",
                        ArgumentValue=value)
    date_text = (index.get("x-amz-date") or index.get("date") or [None])[0]
    ts = None
    if date_text is not None:
        try:
            ts = email.utils.parsedate_to_datetime(date_text.strip()).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            ts = None
    if ts is None:
        raise AuthError(Kind.MISSING_DATE, "AWS authentication requires a valid Date or "
                        "x-amz-date header")
    cred = lookup(akid)
    if cred is None:
        raise AuthError(Kind.UNKNOWN_ACCESS_KEY, AWSAccessKeyId=akid)
    if abs(now - ts) > MAX_SKEW_SECONDS:
        raise AuthError(Kind.TIME_SKEWED, RequestTime=date_text, ServerTime=_iso(now),
                        MaxAllowedSkewMilliseconds=str(MAX_SKEW_SECONDS * 1000))

    md5 = (index.get("content-md5") or [""])[0].strip()
    ctype = (index.get("content-type") or [""])[0].strip()
    amz = {n: v for n, v in index.items() if n.startswith("x-amz-")}
    http_date = (index.get("date") or [""])[0].strip()
    # The doc: with x-amz-date the Date line is empty; some signers keep Date anyway.
    dates = _unique("", http_date) if "x-amz-date" in index else [http_date]

    def candidates() -> Iterator[str]:
        for path in _bucket_paths(raw_path, vhost_bucket):
            for subs in (SUBRESOURCES, _BOTOCORE_SUBRESOURCES):
                resource = canonical_resource(path, raw_query, vhost_bucket, subs)
                for d in dates:
                    yield string_to_sign(method, md5, ctype, d, amz, resource)

    _verify(cred, candidates(), provided)
    return AuthContext(credential=cred, method="sigv2-header", service="s3", region=region,
                       payload_hash=_payload_hash(index))


def authenticate_query(method: str, raw_path: str, raw_query: str,
                       headers: Mapping[str, str], lookup: CredentialLookup, *,
                       now: float, region: str, vhost_bucket: str | None = None) -> AuthContext:
    """Verify ``?AWSAccessKeyId=..&Expires=..&Signature=..``.

    Raises AuthError: MISSING_QUERY_AUTH (malformed Expires), UNKNOWN_ACCESS_KEY, EXPIRED,
    EXPIRES_TOO_FAR, SIGNATURE_MISMATCH.
    """
    params: dict[str, str] = {}
    amz: dict[str, list[str]] = {}
    for k, v in decode_query(raw_query):
        params.setdefault(k, v)
        if k.lower().startswith("x-amz-"):
            amz.setdefault(k.lower(), []).append(v)
    akid = params.get("AWSAccessKeyId", "")
    # A raw '+' of the base64 signature decodes as a space; put it back.
    provided = params.get("Signature", "").replace(" ", "+")
    expires_text = params.get("Expires", "")
    if not _EPOCH.fullmatch(expires_text):
        raise AuthError(Kind.MISSING_QUERY_AUTH, "Query-string authentication requires the "
                        "Signature, Expires and AWSAccessKeyId parameters")
    cred = lookup(akid)
    if cred is None:
        raise AuthError(Kind.UNKNOWN_ACCESS_KEY, AWSAccessKeyId=akid)
    expires = int(expires_text)
    if now > expires:
        raise AuthError(Kind.EXPIRED, "Request has expired", Expires=_iso(expires),
                        ServerTime=_iso(now))
    if expires - now > MAX_QUERY_EXPIRES:
        raise AuthError(Kind.EXPIRES_TOO_FAR, "Request has an expiry more than a year ahead",
                        Expires=_iso(expires), ServerTime=_iso(now))

    index = header_index(headers)
    for name, values in index.items():
        if name.startswith("x-amz-"):
            amz.setdefault(name, []).extend(values)
    # The headers as sent, never a query copy of them (botocore also writes content-type /
    # content-md5 into the query): a value the client does not send must not be signed for it.
    ctype = (index.get("content-type") or [""])[0].strip()
    md5 = (index.get("content-md5") or [""])[0].strip()

    def candidates() -> Iterator[str]:
        for path in _bucket_paths(raw_path, vhost_bucket):
            for subs in (SUBRESOURCES, _BOTOCORE_SUBRESOURCES):
                resource = canonical_resource(path, raw_query, vhost_bucket, subs)
                yield string_to_sign(method, md5, ctype, expires_text, amz, resource)

    _verify(cred, candidates(), provided)
    return AuthContext(credential=cred, method="sigv2-query", service="s3", region=region,
                       payload_hash=_payload_hash(index))


def _payload_hash(index: dict[str, list[str]]) -> str:
    value = (index.get("x-amz-content-sha256") or [""])[0].strip()
    if len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    return "UNSIGNED-PAYLOAD"
