"""Typed errors of the identity layer, named by their AWS IAM error codes.

``PolicyError`` is the parser's one failure: it carries AWS's message and no code, because the
same document is rejected as ``MalformedPolicyDocument`` by IAM,
``MalformedPolicyDocumentException`` by KMS and ``MalformedPolicy`` by S3; the caller picks the
code at its edge.

``IAMError`` subclasses are what the identity store and the IAM Query API raise; the face renders
``code``, ``status`` and ``message`` once [IAM API Reference, "Common Errors"].
"""
from __future__ import annotations

__all__ = ["PolicyError", "IAMError", "NoSuchEntity", "EntityAlreadyExists",
           "MalformedPolicyDocument", "LimitExceeded", "DeleteConflict", "ValidationError",
           "InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied", "InvalidInput",
           "ARNError", "ERRORS"]


class PolicyError(ValueError):
    """A policy document failed to parse or validate; ``message`` is AWS's wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ARNError(ValueError):
    """A string is not an ARN."""


class IAMError(Exception):
    code = "ServiceFailure"
    status = 500
    sender = False          # <Type>Sender</Type> for client errors, Receiver otherwise

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


def _error(code: str, status: int) -> type[IAMError]:
    return type(code, (IAMError,), {"code": code, "status": status, "sender": status < 500,
                                    "__doc__": f"IAM ``{code}`` (HTTP {status})."})


NoSuchEntity = _error("NoSuchEntity", 404)
EntityAlreadyExists = _error("EntityAlreadyExists", 409)
MalformedPolicyDocument = _error("MalformedPolicyDocument", 400)
LimitExceeded = _error("LimitExceeded", 409)
DeleteConflict = _error("DeleteConflict", 409)
ValidationError = _error("ValidationError", 400)
InvalidInput = _error("InvalidInput", 400)
InvalidClientTokenId = _error("InvalidClientTokenId", 403)
SignatureDoesNotMatch = _error("SignatureDoesNotMatch", 403)
AccessDenied = _error("AccessDenied", 403)

ERRORS: dict[str, type[IAMError]] = {c.code: c for c in (
    IAMError, NoSuchEntity, EntityAlreadyExists, MalformedPolicyDocument, LimitExceeded,
    DeleteConflict, ValidationError, InvalidInput, InvalidClientTokenId, SignatureDoesNotMatch,
    AccessDenied)}
