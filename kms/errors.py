"""KMS errors, one class per AWS ``__type``.

The KMS JSON face renders each as ``{"__type": cls.type, "message": err.message}`` with
``cls.http_status``. The botocore KMS model carries no HTTP status; AWS and the emulators answer
400 for client faults and 5xx for the retryable internal ones (kms-contract.md section 1, (c)).
"""
from __future__ import annotations

from typing import ClassVar

__all__ = [
    "KMSError", "NotFoundException", "DisabledException", "KMSInvalidStateException",
    "InvalidCiphertextException", "IncorrectKeyException", "InvalidKeyUsageException",
    "ValidationException", "AlreadyExistsException", "AccessDeniedException",
    "LimitExceededException", "InvalidAliasNameException", "InvalidArnException",
    "InvalidMarkerException", "TagException", "MalformedPolicyDocumentException",
    "UnsupportedOperationException", "ConflictException", "KeyUnavailableException",
    "InvalidGrantTokenException", "InvalidGrantIdException", "KMSInternalException",
    "DependencyTimeoutException",
    "KMSInvalidSignatureException", "KMSInvalidMacException", "CustomKeyStoreNotFoundException",
    "CustomKeyStoreInvalidStateException", "CustomKeyStoreHasCMKsException",
    "CustomKeyStoreNameInUseException", "CloudHsmClusterNotFoundException",
    "CloudHsmClusterInUseException", "CloudHsmClusterInvalidConfigurationException",
    "CloudHsmClusterNotActiveException", "CloudHsmClusterNotRelatedException",
    "IncorrectTrustAnchorException",
    "ExpiredImportTokenException", "InvalidImportTokenException",
    "IncorrectKeyMaterialException", "all_error_classes",
]


class KMSError(Exception):
    """Root of every KMS failure. ``type`` is the AWS ``__type``; ``message`` is safe to show."""

    type: ClassVar[str] = "KMSInternalException"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str = "") -> None:
        # Messages quote parameter values; one holding a lone surrogate (valid JSON:
        # "\ud800") could not be written to the UTF-8 audit trail, failing the call with a 500.
        message = str(message)
        try:
            message.encode("utf-8")
        except UnicodeEncodeError:
            message = message.encode("utf-8", "backslashreplace").decode()
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{self.type}({self.message!r})"


class _ClientError(KMSError):
    http_status: ClassVar[int] = 400


class NotFoundException(_ClientError):
    type = "NotFoundException"


class DisabledException(_ClientError):
    type = "DisabledException"


class KMSInvalidStateException(_ClientError):
    type = "KMSInvalidStateException"


class InvalidCiphertextException(_ClientError):
    type = "InvalidCiphertextException"


class IncorrectKeyException(_ClientError):
    type = "IncorrectKeyException"


class InvalidKeyUsageException(_ClientError):
    type = "InvalidKeyUsageException"


class ValidationException(_ClientError):
    type = "ValidationException"


class AlreadyExistsException(_ClientError):
    type = "AlreadyExistsException"


class AccessDeniedException(_ClientError):
    type = "AccessDeniedException"


class LimitExceededException(_ClientError):
    type = "LimitExceededException"


class InvalidAliasNameException(_ClientError):
    type = "InvalidAliasNameException"


class InvalidArnException(_ClientError):
    type = "InvalidArnException"


class InvalidMarkerException(_ClientError):
    type = "InvalidMarkerException"


class TagException(_ClientError):
    type = "TagException"


class MalformedPolicyDocumentException(_ClientError):
    type = "MalformedPolicyDocumentException"


class UnsupportedOperationException(_ClientError):
    type = "UnsupportedOperationException"


class ConflictException(_ClientError):
    type = "ConflictException"


class InvalidGrantTokenException(_ClientError):
    type = "InvalidGrantTokenException"


class InvalidGrantIdException(_ClientError):
    type = "InvalidGrantIdException"


class KMSInvalidSignatureException(_ClientError):
    """Verify: the signature did not verify (AWS Verify errors)."""
    type = "KMSInvalidSignatureException"


class KMSInvalidMacException(_ClientError):
    """VerifyMac: the MAC did not verify (AWS VerifyMac errors)."""
    type = "KMSInvalidMacException"


class CustomKeyStoreNotFoundException(_ClientError):
    type = "CustomKeyStoreNotFoundException"


class CustomKeyStoreInvalidStateException(_ClientError):
    type = "CustomKeyStoreInvalidStateException"


class CustomKeyStoreHasCMKsException(_ClientError):
    type = "CustomKeyStoreHasCMKsException"


class CustomKeyStoreNameInUseException(_ClientError):
    type = "CustomKeyStoreNameInUseException"


class CloudHsmClusterNotFoundException(_ClientError):
    """Coffer: no token with that label on the configured PKCS#11 module."""
    type = "CloudHsmClusterNotFoundException"


class CloudHsmClusterInUseException(_ClientError):
    type = "CloudHsmClusterInUseException"


class CloudHsmClusterInvalidConfigurationException(_ClientError):
    type = "CloudHsmClusterInvalidConfigurationException"


class CloudHsmClusterNotActiveException(_ClientError):
    type = "CloudHsmClusterNotActiveException"


class CloudHsmClusterNotRelatedException(_ClientError):
    type = "CloudHsmClusterNotRelatedException"


class IncorrectTrustAnchorException(_ClientError):
    type = "IncorrectTrustAnchorException"


class ExpiredImportTokenException(_ClientError):
    """ImportKeyMaterial: the import token is past its ParametersValidTo."""
    type = "ExpiredImportTokenException"


class InvalidImportTokenException(_ClientError):
    """ImportKeyMaterial: the token is corrupt or was issued for another key."""
    type = "InvalidImportTokenException"


class IncorrectKeyMaterialException(_ClientError):
    """ImportKeyMaterial: invalid material, or not the material imported before."""
    type = "IncorrectKeyMaterialException"


class KeyUnavailableException(KMSError):
    """Retryable: the key's backend (e.g. an HSM) cannot be reached right now."""
    type = "KeyUnavailableException"
    http_status = 500


class KMSInternalException(KMSError):
    type = "KMSInternalException"
    http_status = 500


class DependencyTimeoutException(KMSError):
    type = "DependencyTimeoutException"
    http_status = 503


def all_error_classes() -> list[type[KMSError]]:
    """Every concrete error class (for the renderer's table and its test)."""
    out: list[type[KMSError]] = []
    todo = [KMSError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if not cls.__name__.startswith("_"):
            out.append(cls)
    return out
