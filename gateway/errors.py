"""Protocol-neutral request errors, and the one renderer per face.

Authentication (``gateway.auth``), payload verification (``gateway.auth.payload``, ``chunked``)
and the faces' body parsers raise a ``GatewayError`` that names *what* went wrong (a ``Kind``),
never how a protocol spells it. The face that received the request renders it once, at the
edge, through its own table::

    Kind --S3_CODES-->    S3 code -> (status, default message) from gateway.s3.errors.ERRORS
         --JSON_TYPES-->  (__type, status, message)   KMS, CloudTrail (AWS JSON 1.1)
         --QUERY_CODES--> (Code, status, message)     IAM, STS (AWS Query, <ErrorResponse>)

The other rooms' errors reach the wire through one table each, here too (the S3 face raises
them as ``S3Error``; the KMS JSON face renders a ``KMSError`` as its own ``__type``)::

    StorageError --STORAGE_CODES--> S3 code                    storage_to_s3(exc, bucket, key)
    KMSError     --KMS_S3_CODES-->  S3 code, status (SSE-KMS)  kms_to_s3(exc)
                 --kms_json_entry-> (__type, status, message)  the KMS JSON face
    SSEError     --SSE_CODES-->     S3 code, message           sse_to_s3(exc)

Every Kind has an entry in every table (tests/unit/test_gateway_errors.py); every StorageError,
KMSError and SSE error class maps to an S3 code and status (tests/unit/test_error_tables.py). A JSON/Query entry
whose message is None shows the error's own message (a parse detail the client needs); the others
use AWS's fixed wording for that face (e.g. "The security token included in the request is
invalid." for an unknown access key, as KMS and STS answer it).

The renderers cannot fail: any text (``str`` with lone surrogates from undecodable header bytes,
``bytes``, control characters) is reduced to XML 1.0 / JSON safe characters and bounded before
it is written, and element names that are not XML names are dropped. A failure to render would
otherwise become aiohttp's plain-text 500.
"""
from __future__ import annotations

import base64
import enum
import json
import re
from typing import Any, Mapping
from xml.sax.saxutils import escape

from aiohttp import web

from gateway.s3.errors import S3Error
from gateway.sse.record import ChecksumSealError
from gateway.sse.stream import SSEError, StreamAuthenticationError, StreamMetadataError
from kms import errors as ke
from storage import errors as se

__all__ = ["STORAGE_CODES", "KMS_S3_CODES", "SSE_CODES", "storage_to_s3", "kms_to_s3",
           "sse_to_s3", "kms_json_entry", "Kind", "GatewayError", "AuthError", "RequestError", "S3_CODES", "JSON_TYPES",
           "QUERY_CODES", "JSON_CONTENT_TYPE", "face_of", "to_s3", "safe_text",
           "render_s3_xml", "render_json", "render_query_xml", "s3_response", "json_response",
           "query_response", "query_entry", "json_error_response", "query_error_response",
           "MAX_MESSAGE", "MAX_FIELD"]

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_MESSAGE = 2048        # characters of a message on the wire
MAX_FIELD = 4096          # characters of one detail field (a canonical request can be long)
MAX_FIELDS = 16


class Kind(enum.Enum):
    """What went wrong, independent of any protocol."""

    # -- authentication: the request's signature and its parts
    MALFORMED_AUTHORIZATION = "malformed-authorization"   # Authorization header unparseable
    MALFORMED_PRESIGN = "malformed-presign"               # presigned query parameters
    INVALID_AUTH_ARGUMENT = "invalid-auth-argument"       # two schemes, unknown scheme, ...
    MISSING_CONTENT_SHA256 = "missing-content-sha256"
    UNSUPPORTED_SIGNING = "unsupported-signing"           # e.g. ECDSA streaming signatures
    MISSING_DATE = "missing-date"
    MISSING_QUERY_AUTH = "missing-query-auth"             # SigV2 query without its parameters
    MISSING_AUTHENTICATION = "missing-authentication"     # anonymous where a face needs a signer
    UNSIGNED_HEADERS = "unsigned-headers"                 # x-amz-* present but not signed
    UNKNOWN_ACCESS_KEY = "unknown-access-key"
    TIME_SKEWED = "time-skewed"
    EXPIRED = "expired"                                   # presigned URL past its expiry
    NOT_YET_VALID = "not-yet-valid"
    EXPIRES_TOO_FAR = "expires-too-far"                   # presigned expiry beyond the limit
    SIGNATURE_MISMATCH = "signature-mismatch"
    PAYLOAD_HASH_MISMATCH = "payload-hash-mismatch"       # x-amz-content-sha256 vs the body
    # -- authorization
    ACCESS_DENIED = "access-denied"
    # -- the payload: framing, digests, size
    BODY_TOO_LARGE = "body-too-large"                     # an object body over its limit
    MESSAGE_TOO_LARGE = "message-too-large"               # a small API document over its cap
    INCOMPLETE_BODY = "incomplete-body"
    BAD_DIGEST = "bad-digest"                             # a sent digest does not match
    INVALID_DIGEST = "invalid-digest"                     # a sent digest is not well formed
    MALFORMED_TRAILER = "malformed-trailer"
    CHUNK_SIGNATURE_MISMATCH = "chunk-signature-mismatch"
    INVALID_PAYLOAD_REQUEST = "invalid-payload-request"   # payload headers that contradict
    INVALID_PAYLOAD_ARGUMENT = "invalid-payload-argument"  # a payload header value is invalid
    MALFORMED_BODY = "malformed-body"                     # a document the face cannot parse


class GatewayError(Exception):
    """A neutral request error. ``message`` None lets each face use its own wording;
    ``fields`` are details S3 shows as extra ``<Error>`` children (e.g. ``HeadersNotSigned``)."""

    def __init__(self, kind: Kind, message: str | None = None, **fields: Any) -> None:
        self.kind = kind
        self.message = message
        self.fields = {k: str(v) for k, v in fields.items() if v is not None}
        super().__init__(f"{kind.value}: {message or ''}")


class AuthError(GatewayError):
    """Authentication or authorization failed (raised by ``gateway.auth``)."""


class RequestError(GatewayError):
    """The request's payload or document is invalid (framing, digests, size, syntax)."""


# --- the tables ------------------------------------------------------------------------------

S3_CODES: dict[Kind, str] = {
    Kind.MALFORMED_AUTHORIZATION: "AuthorizationHeaderMalformed",
    Kind.MALFORMED_PRESIGN: "AuthorizationQueryParametersError",
    Kind.INVALID_AUTH_ARGUMENT: "InvalidArgument",
    Kind.MISSING_CONTENT_SHA256: "InvalidRequest",
    Kind.UNSUPPORTED_SIGNING: "NotImplemented",
    Kind.MISSING_DATE: "AccessDenied",
    Kind.MISSING_QUERY_AUTH: "AccessDenied",
    Kind.MISSING_AUTHENTICATION: "AccessDenied",
    Kind.UNSIGNED_HEADERS: "AccessDenied",
    Kind.UNKNOWN_ACCESS_KEY: "InvalidAccessKeyId",
    Kind.TIME_SKEWED: "RequestTimeTooSkewed",
    Kind.EXPIRED: "AccessDenied",
    Kind.NOT_YET_VALID: "AccessDenied",
    Kind.EXPIRES_TOO_FAR: "AccessDenied",
    Kind.SIGNATURE_MISMATCH: "SignatureDoesNotMatch",
    Kind.PAYLOAD_HASH_MISMATCH: "XAmzContentSHA256Mismatch",
    Kind.ACCESS_DENIED: "AccessDenied",
    Kind.BODY_TOO_LARGE: "EntityTooLarge",
    Kind.MESSAGE_TOO_LARGE: "MaxMessageLengthExceeded",
    Kind.INCOMPLETE_BODY: "IncompleteBody",
    Kind.BAD_DIGEST: "BadDigest",
    Kind.INVALID_DIGEST: "InvalidDigest",
    Kind.MALFORMED_TRAILER: "MalformedTrailerError",
    Kind.CHUNK_SIGNATURE_MISMATCH: "SignatureDoesNotMatch",
    Kind.INVALID_PAYLOAD_REQUEST: "InvalidRequest",
    Kind.INVALID_PAYLOAD_ARGUMENT: "InvalidArgument",
    Kind.MALFORMED_BODY: "MalformedXML",
}

_BAD_SIG = ("The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.")
_BAD_TOKEN = "The security token included in the request is invalid."

# AWS JSON 1.1 (KMS, CloudTrail). The signature errors are the ones every JSON service shares
# (e.g. KMS API Reference, "Common Errors"); AccessDeniedException is HTTP 400 in KMS.
JSON_TYPES: dict[Kind, tuple[str, int, str | None]] = {
    Kind.MALFORMED_AUTHORIZATION: ("IncompleteSignatureException", 400, None),
    Kind.MALFORMED_PRESIGN: ("IncompleteSignatureException", 400, None),
    Kind.INVALID_AUTH_ARGUMENT: ("IncompleteSignatureException", 400, None),
    Kind.MISSING_CONTENT_SHA256: ("IncompleteSignatureException", 400, None),
    Kind.UNSUPPORTED_SIGNING: ("IncompleteSignatureException", 400, None),
    Kind.MISSING_DATE: ("IncompleteSignatureException", 400, None),
    Kind.MISSING_QUERY_AUTH: ("IncompleteSignatureException", 400, None),
    Kind.MISSING_AUTHENTICATION: ("MissingAuthenticationTokenException", 400,
                                  "Missing Authentication Token"),
    Kind.UNSIGNED_HEADERS: ("AccessDeniedException", 403, None),
    Kind.UNKNOWN_ACCESS_KEY: ("UnrecognizedClientException", 400, _BAD_TOKEN),
    Kind.TIME_SKEWED: ("InvalidSignatureException", 400, "Signature expired"),
    Kind.EXPIRED: ("InvalidSignatureException", 400, "Signature expired"),
    Kind.NOT_YET_VALID: ("InvalidSignatureException", 400, "Signature not yet current"),
    Kind.EXPIRES_TOO_FAR: ("IncompleteSignatureException", 400, None),
    Kind.SIGNATURE_MISMATCH: ("InvalidSignatureException", 400, _BAD_SIG),
    Kind.PAYLOAD_HASH_MISMATCH: ("InvalidSignatureException", 400, _BAD_SIG),
    Kind.ACCESS_DENIED: ("AccessDeniedException", 400, None),
    Kind.BODY_TOO_LARGE: ("ValidationException", 413, "Request body too large"),
    Kind.MESSAGE_TOO_LARGE: ("ValidationException", 413, "Request body too large"),
    Kind.INCOMPLETE_BODY: ("SerializationException", 400, None),
    Kind.BAD_DIGEST: ("ValidationException", 400, None),
    Kind.INVALID_DIGEST: ("ValidationException", 400, None),
    Kind.MALFORMED_TRAILER: ("SerializationException", 400, None),
    Kind.CHUNK_SIGNATURE_MISMATCH: ("InvalidSignatureException", 400, _BAD_SIG),
    Kind.INVALID_PAYLOAD_REQUEST: ("ValidationException", 400, None),
    Kind.INVALID_PAYLOAD_ARGUMENT: ("ValidationException", 400, None),
    Kind.MALFORMED_BODY: ("SerializationException", 400, None),
}

# AWS Query (IAM, STS): IAM API Reference, "Common Errors" (IncompleteSignature 400,
# InvalidClientTokenId 403, MissingAuthenticationToken 403, SignatureDoesNotMatch 403 - STS says
# "Signature expired" with that code, as aws-iam-authenticator users see it).
QUERY_CODES: dict[Kind, tuple[str, int, str | None]] = {
    Kind.MALFORMED_AUTHORIZATION: ("IncompleteSignature", 400, None),
    Kind.MALFORMED_PRESIGN: ("IncompleteSignature", 400, None),
    Kind.INVALID_AUTH_ARGUMENT: ("IncompleteSignature", 400, None),
    Kind.MISSING_CONTENT_SHA256: ("IncompleteSignature", 400, None),
    Kind.UNSUPPORTED_SIGNING: ("IncompleteSignature", 400, None),
    Kind.MISSING_DATE: ("IncompleteSignature", 400, None),
    Kind.MISSING_QUERY_AUTH: ("IncompleteSignature", 400, None),
    Kind.MISSING_AUTHENTICATION: ("MissingAuthenticationToken", 403,
                                  "Request is missing Authentication Token"),
    Kind.UNSIGNED_HEADERS: ("AccessDenied", 403, None),
    Kind.UNKNOWN_ACCESS_KEY: ("InvalidClientTokenId", 403, _BAD_TOKEN),
    Kind.TIME_SKEWED: ("SignatureDoesNotMatch", 403, "Signature expired"),
    Kind.EXPIRED: ("SignatureDoesNotMatch", 403, "Signature expired"),
    Kind.NOT_YET_VALID: ("SignatureDoesNotMatch", 403, "Signature not yet current"),
    Kind.EXPIRES_TOO_FAR: ("IncompleteSignature", 400, None),
    Kind.SIGNATURE_MISMATCH: ("SignatureDoesNotMatch", 403, _BAD_SIG),
    Kind.PAYLOAD_HASH_MISMATCH: ("SignatureDoesNotMatch", 403, _BAD_SIG),
    Kind.ACCESS_DENIED: ("AccessDenied", 403, None),
    Kind.BODY_TOO_LARGE: ("ValidationError", 413, "Request body too large"),
    Kind.MESSAGE_TOO_LARGE: ("ValidationError", 413, "Request body too large"),
    Kind.INCOMPLETE_BODY: ("MalformedQueryString", 400, None),
    Kind.BAD_DIGEST: ("InvalidParameterValue", 400, None),
    Kind.INVALID_DIGEST: ("InvalidParameterValue", 400, None),
    Kind.MALFORMED_TRAILER: ("MalformedQueryString", 400, None),
    Kind.CHUNK_SIGNATURE_MISMATCH: ("SignatureDoesNotMatch", 403, _BAD_SIG),
    Kind.INVALID_PAYLOAD_REQUEST: ("InvalidParameterValue", 400, None),
    Kind.INVALID_PAYLOAD_ARGUMENT: ("InvalidParameterValue", 400, None),
    Kind.MALFORMED_BODY: ("MalformedQueryString", 400, None),
}

_JSON_FACES = frozenset({"kms", "cloudtrail"})
_QUERY_FACES = frozenset({"iam", "sts"})


def face_of(service: str) -> str:
    """The wire protocol of a credential-scope service: "json", "query" or "s3"."""
    if service in _JSON_FACES:
        return "json"
    if service in _QUERY_FACES:
        return "query"
    return "s3"


def to_s3(err: GatewayError) -> S3Error:
    """The S3 face's reading of a neutral error: its code, AWS's status, the details."""
    return S3Error(S3_CODES.get(err.kind, "InternalError"), err.message, **err.fields)


def _face_entry(table: Mapping[Kind, tuple[str, int, str | None]], err: GatewayError,
                fallback: tuple[str, int]) -> tuple[str, int, str]:
    entry = table.get(err.kind)
    if entry is None:
        return fallback[0], fallback[1], "An internal error occurred"
    code, status, message = entry
    return code, status, message if message is not None else (err.message or code)


# --- text that cannot break a document -------------------------------------------------------

# XML 1.0 Char production, minus what the JSON faces' clients choke on (lone surrogates).
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,127}")


def safe_text(value: object, limit: int = MAX_MESSAGE) -> str:
    """Any value as bounded text made only of XML 1.0 characters (U+FFFD for the rest).

    Undecodable header bytes reach Python as lone surrogates (aiohttp decodes with
    ``surrogateescape``); they, NUL and the other C0 controls become U+FFFD.
    """
    try:
        if isinstance(value, (bytes, bytearray, memoryview)):
            text = bytes(value).decode("utf-8", "replace")
        else:
            text = value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - a __str__ that raises must not break the error path
        text = "?"
    if len(text) > limit:
        text = text[:limit] + "..."
    return _NOT_XML_CHAR.sub("\ufffd", text)


def _xml(value: object, limit: int = MAX_MESSAGE) -> str:
    return escape(safe_text(value, limit))


def _attr(value: object) -> str:
    return escape(safe_text(value, 256), {'"': "&quot;"})


def render_s3_xml(code: str, message: str, fields: Mapping[str, object],
                  request_id: str) -> bytes:
    """S3's ``<Error>`` document (S3 API Reference, "Error responses"), as xmltodict wrote it."""
    parts = [f"<Code>{_xml(code, 128)}</Code>", f"<Message>{_xml(message)}</Message>"]
    for i, (name, value) in enumerate(fields.items()):
        if i >= MAX_FIELDS:
            break
        if isinstance(name, str) and _XML_NAME.fullmatch(name) \
                and name not in ("Code", "Message", "RequestId", "HostId"):
            parts.append(f"<{name}>{_xml(value, MAX_FIELD)}</{name}>")
    rid = safe_text(request_id, 64)
    host_id = base64.b64encode(rid.encode("utf-8")).decode("ascii")
    parts.append(f"<RequestId>{escape(rid)}</RequestId><HostId>{host_id}</HostId>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts)
            + "</Error>").encode("utf-8")


def render_json(type_: str, message: str) -> bytes:
    """``{"__type": ..., "message": ...}`` of the AWS JSON 1.1 protocol."""
    return json.dumps({"__type": safe_text(type_, 128),
                       "message": safe_text(message)}).encode("utf-8")


def render_query_xml(code: str, message: str, request_id: str, *, sender: bool = True,
                     namespace: str = "https://iam.amazonaws.com/doc/2010-05-08/") -> bytes:
    """The Query protocol's ``<ErrorResponse>`` (IAM API Reference, "Common Errors")."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<ErrorResponse xmlns="{_attr(namespace)}"><Error>'
            f"<Type>{'Sender' if sender else 'Receiver'}</Type>"
            f"<Code>{_xml(code, 128)}</Code><Message>{_xml(message)}</Message></Error>"
            f"<RequestId>{_xml(request_id, 64)}</RequestId></ErrorResponse>").encode("utf-8")


# --- responses -------------------------------------------------------------------------------

def s3_response(err: S3Error, request_id: str, *, head: bool = False) -> web.Response:
    """An S3 error response; HEAD and 304 answers carry no body."""
    headers = {str(k): safe_text(v, 1024) for k, v in err.headers.items()}
    if head or err.status == 304:
        return web.Response(status=err.status, headers=headers)
    body = render_s3_xml(err.code, err.message, err.fields, request_id)
    return web.Response(status=err.status, body=body, content_type="application/xml",
                        headers=headers)


def json_error_response(type_: str, message: str, status: int = 400) -> web.Response:
    return web.Response(status=status, body=render_json(type_, message),
                        content_type=JSON_CONTENT_TYPE)


def json_response(err: GatewayError) -> web.Response:
    """A neutral error in the AWS JSON 1.1 protocol (KMS, CloudTrail)."""
    type_, status, message = _face_entry(JSON_TYPES, err, ("InternalFailure", 500))
    return json_error_response(type_, message, status)


def query_error_response(code: str, message: str, status: int, request_id: str, *,
                         sender: bool = True, namespace: str | None = None) -> web.Response:
    kw = {"namespace": namespace} if namespace else {}
    return web.Response(status=status, body=render_query_xml(code, message, request_id,
                                                             sender=sender, **kw),
                        content_type="text/xml")


def query_entry(err: GatewayError) -> tuple[str, int, str]:
    """(Code, status, message) of a neutral error in the Query protocol (IAM, STS)."""
    return _face_entry(QUERY_CODES, err, ("ServiceFailure", 500))


def query_response(err: GatewayError, request_id: str, *,
                   namespace: str | None = None) -> web.Response:
    code, status, message = query_entry(err)
    return query_error_response(code, message, status, request_id, namespace=namespace)


# --- the other rooms' errors -----------------------------------------------------------------

# Storage -> S3 code [S3 API Reference, "Error responses"]; the most specific class first.
STORAGE_CODES: tuple[tuple[type[se.StorageError], str], ...] = (
    (se.NoSuchBucket, "NoSuchBucket"),
    (se.NoSuchKey, "NoSuchKey"),
    (se.NoSuchUpload, "NoSuchUpload"),
    (se.BucketNotEmpty, "BucketNotEmpty"),
    (se.BucketExists, "BucketAlreadyOwnedByYou"),
    (se.InvalidPart, "InvalidPart"),
    (se.InvalidKey, "InvalidArgument"),
    (se.PreconditionFailed, "PreconditionFailed"),
    (se.ConditionalConflict, "ConditionalRequestConflict"),
    (se.StorageError, "InternalError"),
)
_STORAGE_FIELDS = {"NoSuchBucket": "bucket", "BucketNotEmpty": "bucket",
                   "BucketAlreadyOwnedByYou": "bucket", "NoSuchKey": "key",
                   "ConditionalRequestConflict": "key"}


def storage_to_s3(exc: se.StorageError, bucket: str | None = None,
                  key: str | None = None) -> S3Error:
    """The one translation of storage failures to S3 errors (``BucketName`` / ``Key`` as
    AWS names them in ``<Error>``)."""
    code = next(c for cls, c in STORAGE_CODES if isinstance(exc, cls))
    if code == "InvalidArgument":
        # A key storage cannot hold: too long is S3's KeyTooLongError, the rest invalid.
        if key and len(key.encode("utf-8", "surrogatepass")) > 1024:
            return S3Error("KeyTooLongError")
        return S3Error("InvalidArgument", "Invalid object key")
    if isinstance(exc, se.PreconditionFailed):
        return S3Error(code, Condition=exc.condition)
    field_name = _STORAGE_FIELDS.get(code)
    if field_name == "bucket":
        return S3Error(code, BucketName=bucket)
    if field_name == "key":
        return S3Error(code, Key=key)
    return S3Error(code)


# KMS -> S3, for SSE-KMS requests: S3 reports the KMS's key problems as "KMS.<__type>"
# (400), a refusal as its own AccessDenied (403) [S3 UG, "Troubleshooting ... AWS KMS" and
# "Specifying server-side encryption with AWS KMS": KMS.NotFoundException,
# KMS.DisabledException, KMS.KMSInvalidStateException]; the KMS failing is S3's InternalError
# or, when it is only slow, ServiceUnavailable (503, retryable).
_KMS_AS_KMS_CODE = (ke.NotFoundException, ke.DisabledException, ke.KMSInvalidStateException,
                    ke.InvalidCiphertextException, ke.IncorrectKeyException,
                    ke.InvalidKeyUsageException, ke.ValidationException,
                    ke.KeyUnavailableException)
KMS_S3_CODES: dict[type[ke.KMSError], tuple[str, int]] = {
    **{cls: (f"KMS.{cls.type}", 400) for cls in _KMS_AS_KMS_CODE},
    ke.AccessDeniedException: ("AccessDenied", 403),
    ke.DependencyTimeoutException: ("ServiceUnavailable", 503),
}


def kms_to_s3(exc: ke.KMSError) -> S3Error:
    """A KMS failure during an S3 request, as S3 reports it; any other class (the KMS's own
    internal failure, a quota) is InternalError."""
    for cls in type(exc).__mro__:
        entry = KMS_S3_CODES.get(cls)
        if entry is not None:
            code, status = entry
            if code == "AccessDenied":
                return S3Error(code, exc.message or None, status=status)
            if code.startswith("KMS."):
                return S3Error(code, exc.message, status=status)
            return S3Error(code, status=status)
    return S3Error("InternalError")


def kms_json_entry(exc: ke.KMSError) -> tuple[str, int, str]:
    """(__type, status, message) of a KMS error in the AWS JSON 1.1 protocol: the class's
    own ``type`` and ``http_status`` (kms.errors: one class per AWS ``__type``)."""
    return exc.type, exc.http_status, exc.message


# SSE -> S3. A stored object or sealed checksum that fails authentication is the server's
# fault, and opaque: InternalError with one fixed message (DESIGN.md, coffer-sse/1; crypto
# failures say nothing about which byte or key).
_INTEGRITY = "The stored object failed its integrity check."
SSE_CODES: dict[type[SSEError], tuple[str, str]] = {
    StreamAuthenticationError: ("InternalError", _INTEGRITY),
    ChecksumSealError: ("InternalError", _INTEGRITY),
    StreamMetadataError: ("InternalError", _INTEGRITY),
    SSEError: ("InternalError", "We encountered an internal error. Please try again."),
}


def sse_to_s3(exc: SSEError) -> S3Error:
    for cls in type(exc).__mro__:
        entry = SSE_CODES.get(cls)
        if entry is not None:
            return S3Error(entry[0], entry[1])
    return S3Error("InternalError")
