"""AWS Signature Version 4: the Authorization-header form and the presigned-query form.

Spec (AWS General Reference, "Signature Version 4 signing process"; S3 API Reference,
"Authenticating Requests (AWS Signature Version 4)")::

    CanonicalRequest = Method \n CanonicalURI \n CanonicalQuery \n
                       (name ":" trimall(value) \n)* for signed headers, sorted \n
                       SignedHeaders \n PayloadHash
    StringToSign     = "AWS4-HMAC-SHA256" \n AmzDate \n Scope \n hex(sha256(CanonicalRequest))
    Scope            = YYYYMMDD / region / service / "aws4_request"
    kDate = HMAC("AWS4" + secret, YYYYMMDD); kRegion = HMAC(kDate, region)
    kService = HMAC(kRegion, service); kSigning = HMAC(kService, "aws4_request")
    Signature = hex(HMAC(kSigning, StringToSign))

CanonicalURI for s3 is the raw path decoded once and re-encoded (every byte but unreserved
and '/'), never normalised (``//`` and ``..`` are meaningful key bytes). Other services
normalise dot segments and encode the path as sent a second time (as botocore signs).

Two rules close what a signature does not cover:

- Every ``x-amz-*`` header present is in SignedHeaders (S3 answers 403 AccessDenied "There were
  headers present in the request which were not signed", with ``HeadersNotSigned``); otherwise a
  presigned PUT plus an unsigned ``x-amz-copy-source`` is a CopyObject. A presigned request may
  carry ``x-amz-content-sha256`` unsigned: its value is the payload line of the canonical
  request, so the signature binds it anyway.
- Non-S3 services (kms, iam, sts, ...) sign the payload: HashedPayload is always the hash of
  the body received (AWS General Reference, "Create a canonical request"), for presigned URLs
  too (botocore presigns an empty body); a sent ``x-amz-content-sha256`` must equal it.

Header values that are not UTF-8 reach here as lone surrogates (aiohttp decodes with
surrogateescape) and are hashed as the bytes that were sent.
"""
from __future__ import annotations

import datetime as _dt
import email.utils
import hashlib
import hmac
import posixpath
import re
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import quote, unquote_to_bytes

from gateway.auth.types import AuthContext, Credential, CredentialLookup, StreamSigning
from gateway.errors import AuthError, Kind

__all__ = [
    "ALGORITHM", "EMPTY_SHA256", "MAX_SKEW_SECONDS", "MAX_PRESIGN_EXPIRES",
    "UNSIGNED_PAYLOAD", "STREAMING_UNSIGNED_TRAILER", "STREAMING_SIGNED",
    "STREAMING_SIGNED_TRAILER", "uri_encode", "canonical_uri", "canonical_query",
    "header_index", "canonical_headers", "signing_key", "string_to_sign", "sign",
    "authenticate_header", "authenticate_query", "scope_service",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW_SECONDS = 15 * 60           # S3: RequestTimeTooSkewed beyond 15 minutes
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # 604800 s, "X-Amz-Expires must be less than a week"

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
_ECDSA = ("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
          "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER")
_PAYLOAD_LITERALS = frozenset({UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED,
                               STREAMING_SIGNED_TRAILER})
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_CONTENT_SHA_MSG = ("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-"
                    "TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-"
                    "PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-"
                    "ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.")
_CRED_SHAPE = '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request"'


# --- canonical pieces ------------------------------------------------------------------------

def uri_encode(data: bytes | str, *, encode_slash: bool) -> str:
    """RFC 3986 encoding as SigV4 wants it: every byte but A-Za-z0-9-._~ (and '/' if kept)."""
    return quote(data, safe="" if encode_slash else "/")


def canonical_uri(raw_path: str, service: str) -> str:
    """The CanonicalURI of a path exactly as received (no query)."""
    if not raw_path:
        raw_path = "/"
    if service == "s3":
        return uri_encode(unquote_to_bytes(_raw_bytes(raw_path)), encode_slash=False)
    # Non-S3 services: dot segments removed, the sent (encoded) path encoded once more.
    norm = posixpath.normpath(raw_path) if raw_path != "/" else "/"
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if raw_path.endswith("/") and norm != "/":
        norm += "/"
    return quote(norm, safe="/~", errors="surrogateescape")


def _split_query(raw_query: str) -> list[tuple[str, str]]:
    """Raw ``k=v&k2`` pairs, still encoded; a pair without '=' has an empty value."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((k, v))
    return pairs


def _decode(component: str) -> bytes:
    # '+' in a query means space (form encoding; Go clients send it), a literal '+' is %2B.
    return unquote_to_bytes(_raw_bytes(component.replace("+", " ")))


def _raw_bytes(text: str) -> bytes:
    # Bytes that were not UTF-8 arrive as lone surrogates; hash what was sent.
    return text.encode("utf-8", "surrogateescape")


def decode_query(raw_query: str) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs of a raw query string, in order."""
    return [(_decode(k).decode("utf-8", "replace"), _decode(v).decode("utf-8", "replace"))
            for k, v in _split_query(raw_query)]


def canonical_query(raw_query: str, *, drop_signature: bool = False) -> str:
    """CanonicalQueryString: decoded once, re-encoded ('/' too), sorted by key then value."""
    enc = []
    for k, v in _split_query(raw_query):
        ek = uri_encode(_decode(k), encode_slash=True)
        if drop_signature and ek == "X-Amz-Signature":
            continue
        enc.append((ek, uri_encode(_decode(v), encode_slash=True)))
    enc.sort()
    return "&".join(f"{k}={v}" for k, v in enc)


def header_index(headers: Mapping[str, str]) -> dict[str, list[str]]:
    """Lower-cased name -> every value sent (multidicts keep repeated headers)."""
    out: dict[str, list[str]] = {}
    for name, value in headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


def canonical_headers(index: dict[str, list[str]], signed: list[str]) -> str:
    """``name:value\\n`` per signed header; values trimmed, inner runs of spaces collapsed."""
    lines = []
    for name in signed:
        values = index.get(name, [])
        lines.append(name + ":" + ",".join(" ".join(v.split()) for v in values) + "\n")
    return "".join(lines)


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode("utf-8"), date.encode("utf-8", "surrogateescape"),
                 hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
    return k


def string_to_sign(amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


# --- shared checks ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Scope:
    access_key: str
    date: str
    region: str
    service: str

    @property
    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def _parse_credential(value: str, malformed: Callable[[str], AuthError]) -> _Scope:
    # The access key id itself never contains '/', so split from the right.
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not parts[0] or not all(parts[1:]):
        raise malformed(f"the Credential is mal-formed; expecting {_CRED_SHAPE}.")
    akid, date, region, service, terminal = parts
    if terminal != "aws4_request":
        raise malformed(f'the Credential is mal-formed; incorrect terminal "{terminal}". '
                        'This endpoint uses "aws4_request".')
    if not re.fullmatch(r"\d{8}", date):
        raise malformed(f"the Credential is mal-formed; incorrect date format \"{date}\". "
                        "This date in the credential must be in the format \"yyyyMMdd\".")
    return _Scope(akid, date, region, service)


def _parse_amz_date(value: str) -> float | None:
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        dt = _dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    return dt.timestamp()


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_payload_literal(value: str) -> None:
    if value in _ECDSA:
        raise AuthError(Kind.UNSUPPORTED_SIGNING, "ECDSA-signed streaming payloads are not "
                        "implemented.", Header="x-amz-content-sha256", AdditionalMessage=value)
    if value not in _PAYLOAD_LITERALS and not _HEX64.fullmatch(value):
        raise AuthError(Kind.INVALID_AUTH_ARGUMENT, _CONTENT_SHA_MSG,
                        ArgumentName="x-amz-content-sha256", ArgumentValue=value)


def _mismatch(akid: str, sts: str, creq: str, provided: str) -> AuthError:
    return AuthError(Kind.SIGNATURE_MISMATCH, AWSAccessKeyId=akid, StringToSign=sts,
                     SignatureProvided=provided, CanonicalRequest=creq)


def _not_signed(names: list[str]) -> AuthError:
    return AuthError(Kind.UNSIGNED_HEADERS, "There were headers present in the request which "
                     "were not signed", HeadersNotSigned=", ".join(names))


def _unsigned(index: dict[str, list[str]], signed: list[str], required: tuple[str, ...],
              exempt: frozenset[str] = frozenset()) -> list[str]:
    """Headers present but not signed: the ``required`` ones, then every ``x-amz-*``."""
    names = [h for h in required if h in index and h not in signed]
    names += [h for h in index if h.startswith("x-amz-") and h not in signed
              and h not in exempt and h not in names]
    return names


def _payload_of_service(service: str, body_sha256: str | None,
                        sent: str | None) -> str:
    """HashedPayload of a non-S3 request: the body's own hash, never a claim about it."""
    if body_sha256 is None:
        raise AuthError(Kind.INVALID_AUTH_ARGUMENT, f"Requests for service {service} must "
                        "sign their payload.", ArgumentName="Credential", ArgumentValue=service)
    if sent is not None and not hmac.compare_digest(sent.strip().lower().encode(
            "utf-8", "surrogateescape"), body_sha256.encode()):
        raise AuthError(Kind.PAYLOAD_HASH_MISMATCH, ClientComputedContentSHA256=sent,
                        S3ComputedContentSHA256=body_sha256)
    return body_sha256


# --- Authorization header --------------------------------------------------------------------

def _parse_authorization(value: str) -> tuple[str, str, str]:
    """-> (Credential, SignedHeaders, Signature); tolerant of ',' with or without spaces."""
    def malformed(msg: str) -> AuthError:
        return AuthError(Kind.MALFORMED_AUTHORIZATION, f"The authorization header is "
                         f"malformed; {msg}")

    rest = value[len(ALGORITHM):]
    if rest[:1] not in (" ", "\t"):
        raise malformed("the authorization header requires three components: Credential, "
                        "SignedHeaders, and Signature.")
    comps: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        k, eq, v = part.partition("=")
        k = k.strip()
        if not eq or k in comps:
            raise malformed(f'the authorization component "{part}" is malformed.')
        comps[k] = v.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not comps.get(n)]
    if missing:
        raise malformed("the authorization header requires three components: Credential, "
                        "SignedHeaders, and Signature.")
    return comps["Credential"], comps["SignedHeaders"], comps["Signature"]


def _request_time(index: dict[str, list[str]]) -> tuple[str, float, str]:
    """-> (ISO8601 basic timestamp for the string-to-sign, epoch seconds, header name used)."""
    if "x-amz-date" in index:
        raw = index["x-amz-date"][0].strip()
        ts = _parse_amz_date(raw)
        if ts is None:
            # AWS also accepts an RFC 1123 x-amz-date.
            ts = _parse_http_date(raw)
            if ts is None:
                raise _no_date()
            raw = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return raw, ts, "x-amz-date"
    if "date" in index:
        ts = _parse_http_date(index["date"][0])
        if ts is not None:
            amz = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            return amz, ts, "date"
    raise _no_date()


def _no_date() -> AuthError:
    return AuthError(Kind.MISSING_DATE, "AWS authentication requires a valid Date or "
                     "x-amz-date header")


def _parse_http_date(value: str) -> float | None:
    try:
        dt = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    try:
        return dt.timestamp()
    except (ValueError, OverflowError):
        return None


def authenticate_header(method: str, raw_path: str, raw_query: str,
                        headers: Mapping[str, str], lookup: CredentialLookup, *,
                        now: float, body_sha256: str | None = None) -> AuthContext:
    """Verify ``Authorization: AWS4-HMAC-SHA256 ...``.

    ``body_sha256`` (hex) is the hash of the whole body, required for non-S3 services.
    Raises AuthError: MALFORMED_AUTHORIZATION, MISSING_CONTENT_SHA256, INVALID_AUTH_ARGUMENT,
    UNSUPPORTED_SIGNING (x-amz-content-sha256), MISSING_DATE, UNSIGNED_HEADERS,
    UNKNOWN_ACCESS_KEY, TIME_SKEWED, PAYLOAD_HASH_MISMATCH, SIGNATURE_MISMATCH.
    """
    index = header_index(headers)
    cred_text, signed_text, provided = _parse_authorization(index["authorization"][0].strip())
    scope = _parse_credential(cred_text, lambda m: AuthError(
        Kind.MALFORMED_AUTHORIZATION, f"The authorization header is malformed; {m}"))
    signed = [h.strip().lower() for h in signed_text.split(";")]
    if any(not h for h in signed):
        raise AuthError(Kind.MALFORMED_AUTHORIZATION, "The authorization header is malformed; "
                        "the SignedHeaders component is malformed.")
    amz_date, ts, date_header = _request_time(index)
    if amz_date[:8] != scope.date:
        raise AuthError(Kind.MALFORMED_AUTHORIZATION, "The authorization header is malformed; "
                        f"Invalid credential date \"{scope.date}\". This date is not the same "
                        "as X-Amz-Date: \"" + amz_date[:8] + "\".")

    content_sha = index.get("x-amz-content-sha256", [None])[0]
    if scope.service != "s3":
        payload_hash = _payload_of_service(scope.service, body_sha256, content_sha)
    elif content_sha is not None:
        content_sha = content_sha.strip()
        _check_payload_literal(content_sha)
        payload_hash = content_sha
    else:
        raise AuthError(Kind.MISSING_CONTENT_SHA256, "Missing required header for this "
                        "request: x-amz-content-sha256")

    unsigned = _unsigned(index, signed, ("host", date_header))
    if unsigned:
        raise _not_signed(unsigned)

    cred = lookup(scope.access_key)
    if cred is None:
        raise AuthError(Kind.UNKNOWN_ACCESS_KEY, AWSAccessKeyId=scope.access_key)
    if abs(now - ts) > MAX_SKEW_SECONDS:
        raise AuthError(Kind.TIME_SKEWED, RequestTime=amz_date, ServerTime=_iso(now),
                        MaxAllowedSkewMilliseconds=str(MAX_SKEW_SECONDS * 1000))

    creq = "\n".join([
        method.upper(), canonical_uri(raw_path, scope.service), canonical_query(raw_query),
        canonical_headers(index, signed), ";".join(signed), payload_hash])
    return _verified(cred, scope, amz_date, creq, provided, payload_hash, "sigv4-header")


def _verified(cred: Credential, scope: _Scope, amz_date: str, creq: str, provided: str,
              payload_hash: str, method: str) -> AuthContext:
    """Compare ``provided`` with the signature of ``creq`` (constant time) -> AuthContext."""
    sts = string_to_sign(amz_date, scope.text, creq)
    key = signing_key(cred.secret_access_key, scope.date, scope.region, scope.service)
    expected = sign(key, sts)
    if not hmac.compare_digest(expected.encode(),
                               provided.lower().encode("utf-8", "surrogateescape")):
        raise _mismatch(scope.access_key, sts, creq, provided)
    stream = None
    if payload_hash in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER):
        stream = StreamSigning(signing_key=key, amz_date=amz_date, scope=scope.text,
                               seed_signature=expected)
    return AuthContext(credential=cred, method=method, service=scope.service,
                       region=scope.region, payload_hash=payload_hash, signing=stream)


# --- presigned query -------------------------------------------------------------------------

_QUERY_REQUIRED = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                   "X-Amz-SignedHeaders", "X-Amz-Expires")
# The payload line of a presigned canonical request is x-amz-content-sha256 as sent (or
# UNSIGNED-PAYLOAD): the signature binds it, so it may be sent without being signed.
_QUERY_EXEMPT = frozenset({"x-amz-content-sha256"})
_DIGITS = re.compile(r"[0-9]{1,12}")


def authenticate_query(method: str, raw_path: str, raw_query: str,
                       headers: Mapping[str, str], lookup: CredentialLookup, *,
                       now: float, body_sha256: str | None = None) -> AuthContext:
    """Verify a presigned URL (``X-Amz-Algorithm=AWS4-HMAC-SHA256&...``).

    ``body_sha256`` (hex) is the hash of the whole body, required for non-S3 services.
    Raises AuthError: MALFORMED_PRESIGN, UNSIGNED_HEADERS, UNKNOWN_ACCESS_KEY, EXPIRED,
    NOT_YET_VALID, INVALID_AUTH_ARGUMENT / UNSUPPORTED_SIGNING (x-amz-content-sha256),
    PAYLOAD_HASH_MISMATCH, SIGNATURE_MISMATCH.
    """
    params: dict[str, str] = {}
    for k, v in decode_query(raw_query):
        params.setdefault(k, v)

    def malformed(msg: str) -> AuthError:
        return AuthError(Kind.MALFORMED_PRESIGN, msg)

    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise malformed('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    if any(not params.get(n) for n in _QUERY_REQUIRED):
        raise malformed("Query-string authentication version 4 requires the X-Amz-Algorithm, "
                        "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
                        "and X-Amz-Expires parameters.")
    scope = _parse_credential(params["X-Amz-Credential"], lambda m: malformed(
        f"Error parsing the X-Amz-Credential parameter; {m}"))
    amz_date = params["X-Amz-Date"]
    ts = _parse_amz_date(amz_date)
    if ts is None:
        raise malformed("X-Amz-Date must be in the ISO8601 Long Format "
                        "\"yyyyMMdd'T'HHmmss'Z'\"")
    if amz_date[:8] != scope.date:
        raise malformed("Error parsing the X-Amz-Credential parameter; Invalid credential date "
                        f"\"{scope.date}\". This date is not the same as X-Amz-Date: "
                        f"\"{amz_date[:8]}\".")
    expires_text = params["X-Amz-Expires"]
    if not _DIGITS.fullmatch(expires_text):
        raise malformed("X-Amz-Expires should be a number")
    expires = int(expires_text)
    if expires < 1:
        raise malformed("X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise malformed("X-Amz-Expires must be less than a week (in seconds) that is 604800")
    signed = [h.strip().lower() for h in params["X-Amz-SignedHeaders"].split(";")]
    if any(not h for h in signed):
        raise malformed("Error parsing the X-Amz-SignedHeaders parameter.")
    index = header_index(headers)
    unsigned = _unsigned(index, signed, ("host",), _QUERY_EXEMPT)
    if unsigned:
        raise _not_signed(unsigned)
    provided = params["X-Amz-Signature"]

    cred = lookup(scope.access_key)
    if cred is None:
        raise AuthError(Kind.UNKNOWN_ACCESS_KEY, AWSAccessKeyId=scope.access_key)
    if now > ts + expires:
        raise AuthError(Kind.EXPIRED, "Request has expired", **{
            "X-Amz-Expires": expires_text, "Expires": _iso(ts + expires),
            "ServerTime": _iso(now)})
    if ts - now > MAX_SKEW_SECONDS:
        raise AuthError(Kind.NOT_YET_VALID, "Request is not valid yet", **{
            "X-Amz-Date": amz_date, "ServerTime": _iso(now)})

    sent = index.get("x-amz-content-sha256", [None])[0]
    if scope.service != "s3":
        payload_hash = _payload_of_service(scope.service, body_sha256, sent)
    elif sent is not None:
        payload_hash = sent.strip()
        _check_payload_literal(payload_hash)
    else:
        payload_hash = UNSIGNED_PAYLOAD
    creq = "\n".join([
        method.upper(), canonical_uri(raw_path, scope.service),
        canonical_query(raw_query, drop_signature=True),
        canonical_headers(index, signed), ";".join(signed), payload_hash])
    return _verified(cred, scope, amz_date, creq, provided, payload_hash, "sigv4-query")


def scope_service(credential: str) -> str | None:
    """The service of a ``AKID/date/region/service/aws4_request`` credential, if well formed."""
    parts = credential.strip().rsplit("/", 4)
    return parts[3] if len(parts) == 5 and parts[3] else None
