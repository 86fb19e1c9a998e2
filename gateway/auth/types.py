"""Records shared by the authentication modules and the rest of the gateway."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

__all__ = ["Credential", "CredentialLookup", "StreamSigning", "AuthContext", "AuthMethod"]


@dataclass(frozen=True, slots=True)
class Credential:
    """An access key and the principal it belongs to."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    account_id: str
    principal_arn: str
    user_name: str | None = None


# Returns None when the access key id is unknown (-> InvalidAccessKeyId).
CredentialLookup = Callable[[str], "Credential | None"]

AuthMethod = Literal["sigv4-header", "sigv4-query", "sigv2-header", "sigv2-query", "anonymous"]


@dataclass(frozen=True, slots=True)
class StreamSigning:
    """What a signed aws-chunked body needs to verify each chunk (SigV4 streaming)."""

    signing_key: bytes = field(repr=False)
    amz_date: str          # the request's x-amz-date, e.g. 20130524T000000Z
    scope: str             # 20130524/us-east-1/s3/aws4_request
    seed_signature: str    # hex signature of the request itself


@dataclass(frozen=True, slots=True)
class AuthContext:
    """Who signed a request, and how its payload must be verified."""

    credential: Credential | None          # None only for anonymous requests
    method: AuthMethod
    service: str                           # credential-scope service: "s3", "kms", "iam", ...
    region: str                            # credential-scope region (SigV2: the server's region)
    # x-amz-content-sha256 as sent: 64 lowercase hex, "UNSIGNED-PAYLOAD", "STREAMING-...",
    # or "UNSIGNED-PAYLOAD" for SigV2 / presigned requests that carry none.
    payload_hash: str = "UNSIGNED-PAYLOAD"
    signing: StreamSigning | None = None   # set for STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]
