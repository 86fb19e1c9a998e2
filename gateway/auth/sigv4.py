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
from gateway.s3.errors import S3Error

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
        return uri_encode(unquote_to_bytes(raw_path), encode_slash=False)
    # Non-S3 services: dot segments removed, the sent (encoded) path encoded once more.
    norm = posixpath.normpath(raw_path) if raw_path != "/" else "/"
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if raw_path.endswith("/") and norm != "/":
        norm += "/"
    return quote(norm, safe="/~")


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
    return unquote_to_bytes(component.replace("+", " "))


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
    k = hmac.new(("AWS4" + secret).encode("utf-8"), date.encode("utf-8"), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode("utf-8"), hashlib.sha256).digest()
    return k


def string_to_sign(amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


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


def _parse_credential(value: str, malformed: Callable[[str], S3Error]) -> _Scope:
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
        raise S3Error("NotImplemented", "ECDSA-signed streaming payloads are not implemented.",
                      Header="x-amz-content-sha256", AdditionalMessage=value)
    if value not in _PAYLOAD_LITERALS and not _HEX64.fullmatch(value):
        raise S3Error("InvalidArgument", _CONTENT_SHA_MSG,
                      ArgumentName="x-amz-content-sha256", ArgumentValue=value)


def _mismatch(akid: str, sts: str, creq: str, provided: str) -> S3Error:
    return S3Error("SignatureDoesNotMatch", AWSAccessKeyId=akid, StringToSign=sts,
                   SignatureProvided=provided, CanonicalRequest=creq)


def _not_signed(names: list[str]) -> S3Error:
    return S3Error("AccessDenied", "There were headers present in the request which were not "
                   "signed", HeadersNotSigned=", ".join(names))


# --- Authorization header --------------------------------------------------------------------

def _parse_authorization(value: str) -> tuple[str, str, str]:
    """-> (Credential, SignedHeaders, Signature); tolerant of ',' with or without spaces."""
    def malformed(msg: str) -> S3Error:
        return S3Error("AuthorizationHeaderMalformed", f"The authorization header is malformed; "
                       f"{msg}")

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
                raise S3Error("AccessDenied", "AWS authentication requires a valid Date or "
                              "x-amz-date header")
            raw = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return raw, ts, "x-amz-date"
    if "date" in index:
        ts = _parse_http_date(index["date"][0])
        if ts is not None:
            amz = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            return amz, ts, "date"
    raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


def _parse_http_date(value: str) -> float | None:
    try:
        dt = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt.timestamp()


def authenticate_header(method: str, raw_path: str, raw_query: str,
                        headers: Mapping[str, str], lookup: CredentialLookup, *,
                        now: float, body_sha256: str | None = None) -> AuthContext:
    """Verify ``Authorization: AWS4-HMAC-SHA256 ...``.

    Raises S3Error: AuthorizationHeaderMalformed, InvalidRequest / InvalidArgument /
    NotImplemented (x-amz-content-sha256), AccessDenied (no date, unsigned required headers),
    InvalidAccessKeyId, RequestTimeTooSkewed, SignatureDoesNotMatch.
    """
    index = header_index(headers)
    cred_text, signed_text, provided = _parse_authorization(index["authorization"][0].strip())
    scope = _parse_credential(cred_text, lambda m: S3Error(
        "AuthorizationHeaderMalformed", f"The authorization header is malformed; {m}"))
    signed = [h.strip().lower() for h in signed_text.split(";")]
    if any(not h for h in signed):
        raise S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed; "
                      "the SignedHeaders component is malformed.")
    amz_date, ts, date_header = _request_time(index)
    if amz_date[:8] != scope.date:
        raise S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed; "
                      f"Invalid credential date \"{scope.date}\". This date is not the same as "
                      "X-Amz-Date: \"" + amz_date[:8] + "\".")

    content_sha = index.get("x-amz-content-sha256", [None])[0]
    if content_sha is not None:
        content_sha = content_sha.strip()
        _check_payload_literal(content_sha)
        payload_hash = content_sha
    elif scope.service == "s3":
        raise S3Error("InvalidRequest", "Missing required header for this request: "
                      "x-amz-content-sha256")
    else:
        # kms / iam / sts: the face hashed the (small) body before asking.
        payload_hash = body_sha256 or EMPTY_SHA256

    unsigned = [h for h in ("host", date_header) if h in index and h not in signed]
    if content_sha is not None and "x-amz-content-sha256" not in signed:
        unsigned.append("x-amz-content-sha256")
    if unsigned:
        raise _not_signed(unsigned)

    cred = lookup(scope.access_key)
    if cred is None:
        raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=scope.access_key)
    if abs(now - ts) > MAX_SKEW_SECONDS:
        raise S3Error("RequestTimeTooSkewed", RequestTime=amz_date, ServerTime=_iso(now),
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
    if not hmac.compare_digest(expected.encode(), provided.lower().encode()):
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


def authenticate_query(method: str, raw_path: str, raw_query: str,
                       headers: Mapping[str, str], lookup: CredentialLookup, *,
                       now: float) -> AuthContext:
    """Verify a presigned URL (``X-Amz-Algorithm=AWS4-HMAC-SHA256&...``).

    Raises S3Error: AuthorizationQueryParametersError, AccessDenied ("Request has expired",
    "Request is not valid yet"), InvalidAccessKeyId, SignatureDoesNotMatch.
    """
    params: dict[str, str] = {}
    for k, v in decode_query(raw_query):
        params.setdefault(k, v)

    def malformed(msg: str) -> S3Error:
        return S3Error("AuthorizationQueryParametersError", msg)

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
    if not expires_text.isdigit():
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
    if "host" in index and "host" not in signed:
        raise _not_signed(["host"])
    provided = params["X-Amz-Signature"]

    cred = lookup(scope.access_key)
    if cred is None:
        raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=scope.access_key)
    if now > ts + expires:
        raise S3Error("AccessDenied", "Request has expired", **{
            "X-Amz-Expires": expires_text, "Expires": _iso(ts + expires),
            "ServerTime": _iso(now)})
    if ts - now > MAX_SKEW_SECONDS:
        raise S3Error("AccessDenied", "Request is not valid yet", **{
            "X-Amz-Date": amz_date, "ServerTime": _iso(now)})

    payload_hash = UNSIGNED_PAYLOAD
    if "x-amz-content-sha256" in index:
        payload_hash = index["x-amz-content-sha256"][0].strip()
        _check_payload_literal(payload_hash)
    creq = "\n".join([
        method.upper(), canonical_uri(raw_path, scope.service),
        canonical_query(raw_query, drop_signature=True),
        canonical_headers(index, signed), ";".join(signed), payload_hash])
    return _verified(cred, scope, amz_date, creq, provided, payload_hash, "sigv4-query")


def scope_service(credential: str) -> str | None:
    """The service of a ``AKID/date/region/service/aws4_request`` credential, if well formed."""
    parts = credential.strip().rsplit("/", 4)
    return parts[3] if len(parts) == 5 and parts[3] else None
