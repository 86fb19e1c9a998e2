"""Key identifiers as AWS accepts them, key and alias ARNs, alias name rules.

A ``KeyId`` parameter may be a key id, a key ARN, an alias name (``alias/x``) or an alias ARN.
Bare ids and alias names resolve in the caller's account; naming another account's key takes
an ARN (DG/find-cmk-id-arn).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kms.errors import InvalidAliasNameException, NotFoundException, ValidationException

__all__ = ["KeyRef", "parse_key_ref", "key_arn", "alias_arn", "validate_alias_name",
           "ALIAS_PREFIX", "RESERVED_ALIAS_PREFIX"]

ALIAS_PREFIX = "alias/"
RESERVED_ALIAS_PREFIX = "alias/aws/"
_ALIAS_RE = re.compile(r"alias/[a-zA-Z0-9:/_-]+")
_KEY_ID_RE = re.compile(r"(mrk-)?[0-9a-zA-Z-]{1,64}")
_ARN_RE = re.compile(r"arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):(key/.+|alias/.+)")


@dataclass(frozen=True, slots=True)
class KeyRef:
    kind: str               # "key" or "alias"
    account_id: str | None  # None: the caller's account
    name: str               # key id or alias name (``alias/...``)


def key_arn(region: str, account_id: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:key/{key_id}"


def alias_arn(region: str, account_id: str, alias_name: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:{alias_name}"


def parse_key_ref(value: object, region: str, *, param: str = "keyId") -> KeyRef:
    if not isinstance(value, str) or not value:
        raise ValidationException(
            f"1 validation error detected: Value at '{param}' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1")
    if len(value) > 2048:
        raise ValidationException(
            f"1 validation error detected: Value at '{param}' failed to satisfy constraint: "
            "Member must have length less than or equal to 2048")
    if value.startswith("arn:"):
        m = _ARN_RE.fullmatch(value)
        if not m or m.group(2) != region:
            raise NotFoundException(f"Invalid arn {value}")
        resource = m.group(4)
        if resource.startswith("key/"):
            return KeyRef("key", m.group(3), resource[4:])
        return KeyRef("alias", m.group(3), resource)
    if value.startswith(ALIAS_PREFIX):
        return KeyRef("alias", None, value)
    if not _KEY_ID_RE.fullmatch(value):
        raise NotFoundException(f"Invalid keyId {value}")
    return KeyRef("key", None, value)


def validate_alias_name(name: object, *, allow_reserved: bool = False) -> str:
    """Check AliasName (1-256, ``^alias/[a-zA-Z0-9:/_-]+$``, ``alias/aws/`` reserved)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 256:
        raise ValidationException(
            "1 validation error detected: Value at 'aliasName' failed to satisfy constraint: "
            "Member must have length between 1 and 256")
    if not _ALIAS_RE.fullmatch(name):
        raise InvalidAliasNameException(
            f"Alias name {name!r} must begin with 'alias/' and contain only alphanumeric "
            "characters, forward slashes (/), underscores (_), colons (:) and dashes (-)")
    if name.startswith(RESERVED_ALIAS_PREFIX) and not allow_reserved:
        raise InvalidAliasNameException(
            f"Alias must not begin with '{RESERVED_ALIAS_PREFIX}': {name}")
    return name
