"""Validation of operation parameters: AWS's shapes, ranges and messages (botocore KMS model).

Every function raises the KMSError AWS answers with for that parameter, or returns the value
normalised. No state; used by ``kms.service``.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from kms import keypolicy
from kms.authz import default_key_policy
from kms.errors import (InvalidMarkerException, MalformedPolicyDocumentException, TagException,
                        ValidationException)
from kms.model import Caller, DataKeySpec

__all__ = ["length_error", "s", "n", "strs", "pairs", "text", "iso", "enum", "limit", "marker",
           "data_key_size", "policy", "tags", "MAX_POLICY"]

MAX_POLICY = keypolicy.MAX_POLICY


def length_error(param: str, bound: str, n: int) -> ValidationException:
    return ValidationException(
        f"1 validation error detected: Value at '{param}' failed to satisfy constraint: "
        f"Member must have length {bound} {n}")


def s(value: object) -> str | None:
    """A parameter as it may appear in the audit record: strings only, and only encodable
    ones (a lone surrogate from a JSON ``"\\ud800"`` is written as that escape; the trail is
    UTF-8, and a record that cannot be written fails the call)."""
    if not isinstance(value, str):
        return None
    return value if _unicode(value) else value.encode("utf-8", "backslashreplace").decode()


def n(value: object) -> int | None:
    """An integer parameter as it may appear in the audit record (bools are not integers)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def strs(value: object) -> list[str] | None:
    """A list-of-strings parameter for the audit record: other members are left out (the
    record never carries bytes, and a parameter of the wrong type is the error it causes)."""
    return [s(v) for v in value if isinstance(v, str)] if isinstance(value, list) else None


def pairs(value: object) -> dict[str, Any] | None:
    """A map parameter (grant constraints, a context) for the audit record: string keys, and
    values that are strings or such maps themselves."""
    if not isinstance(value, Mapping):
        return None
    return {s(k): s(v) if isinstance(v, str) else pairs(v) for k, v in value.items()
            if isinstance(k, str)}


def text(value: object, param: str) -> str:
    """A free-text parameter that will be stored (a description, a tag, a policy): a string
    that is valid Unicode. JSON can carry lone surrogates (``"\\ud800"``) that no UTF-8 store
    accepts; AWS answers a ValidationException for malformed input."""
    if not isinstance(value, str):
        raise ValidationException(f"1 validation error detected: Value at '{param}' failed to "
                                  "satisfy constraint: Member must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationException(f"1 validation error detected: Value at '{param}' failed to "
                                  "satisfy constraint: Member must be valid Unicode") from None
    return value


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def enum(cls: type, value: object, param: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{param}' failed to satisfy "
            f"constraint: Member must satisfy enum value set: {[m.value for m in cls]}"
        ) from None


def limit(limit: object) -> int:
    if limit is None:
        return 100
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise ValidationException(
            "1 validation error detected: Value at 'limit' failed to satisfy constraint: "
            "Member must have value between 1 and 1000")
    return limit


def marker(marker: object) -> str | None:
    if marker is None:
        return None
    if not isinstance(marker, str) or not 1 <= len(marker) <= 1024:
        raise InvalidMarkerException("The marker is invalid.")
    return marker


def data_key_size(key_spec: object, number_of_bytes: object) -> int:
    if (key_spec is None) == (number_of_bytes is None):
        raise ValidationException("Please specify either number of bytes or key spec.")
    if key_spec is not None:
        return 32 if enum(DataKeySpec, key_spec, "keySpec") is DataKeySpec.AES_256 else 16
    if (not isinstance(number_of_bytes, int) or isinstance(number_of_bytes, bool)
            or not 1 <= number_of_bytes <= 1024):
        raise ValidationException(
            "1 validation error detected: Value at 'numberOfBytes' failed to satisfy "
            "constraint: Member must have value between 1 and 1024")
    return number_of_bytes


def policy(policy: object, account_id: str, caller: Caller | None = None,
           bypass_lockout_check: bool = False,
           principal_exists: Callable[[str], bool] | None = None) -> str:
    """The policy to store: AWS's default when None, else validated (``kms.keypolicy``, its
    user principals looked up with ``principal_exists``) and, given the ``caller`` and no
    bypass, put through the lockout safety check."""
    if policy is None:
        return default_key_policy(account_id)
    if isinstance(policy, str) and not _unicode(policy):
        raise MalformedPolicyDocumentException("The policy is not valid Unicode.")
    doc = keypolicy.validate(policy, principal_exists)
    if caller is not None and not bypass_lockout_check:
        keypolicy.check_lockout(doc, caller)
    return policy  # type: ignore[return-value]


def _unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def tags(tags: Sequence[Mapping[str, str]] | None) -> tuple[tuple[str, str], ...]:
    if tags is None:
        return ()
    out: dict[str, str] = {}
    for tag in tags:
        if not isinstance(tag, Mapping):
            raise TagException("Each tag is {TagKey, TagValue}.")
        k, v = tag.get("TagKey"), tag.get("TagValue")
        if not isinstance(k, str) or not 1 <= len(k) <= 128:
            raise TagException("TagKey must be 1 to 128 characters.")
        if not isinstance(v, str) or len(v) > 256:
            raise TagException("TagValue must be 0 to 256 characters.")
        if not (_unicode(k) and _unicode(v)):
            raise TagException("Tag keys and values must be valid Unicode.")
        if k.startswith("aws:"):
            raise TagException("Tag keys beginning with 'aws:' are reserved.")
        if k in out:
            raise TagException(f"Duplicate tag key {k}.")
        out[k] = v
    if len(out) > 50:
        raise TagException("A key can have at most 50 tags.")
    return tuple(out.items())
