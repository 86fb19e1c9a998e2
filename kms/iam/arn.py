"""Amazon Resource Names: ``arn:partition:service:region:account-id:resource``.

The resource part may itself contain ``:`` and ``/`` (``key/<id>``, ``user/path/name``,
``bucket/key``); only the first five colons split [AWS General Reference, "ARN format"].
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kms.iam.errors import ARNError

__all__ = ["ARN", "parse_arn", "root_arn", "user_arn", "policy_arn", "is_account_id",
           "principal_account"]

_ACCOUNT = re.compile(r"^\d{12}$")


@dataclass(frozen=True, slots=True)
class ARN:
    partition: str
    service: str
    region: str
    account: str
    resource: str

    def __str__(self) -> str:
        return (f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:"
                f"{self.resource}")

    @property
    def resource_type(self) -> str:
        """``user`` of ``user/path/alice``, ``key`` of ``key/1234``; "" for bare resources."""
        for sep in ("/", ":"):
            if sep in self.resource:
                return self.resource.split(sep, 1)[0]
        return ""


def parse_arn(text: str) -> ARN:
    """Split an ARN into its six fields; raises ``ARNError`` when it is not one."""
    parts = text.split(":", 5) if isinstance(text, str) else []
    if len(parts) != 6 or parts[0] != "arn" or not parts[1] or not parts[2]:
        raise ARNError(f"not an ARN: {text!r}")
    return ARN(parts[1], parts[2], parts[3], parts[4], parts[5])


def is_account_id(text: str) -> bool:
    return bool(_ACCOUNT.match(text))


def root_arn(account: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:root"


def user_arn(account: str, name: str, path: str = "/", partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:user{path}{name}"


def policy_arn(account: str, name: str, path: str = "/", partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:policy{path}{name}"


def principal_account(principal: str) -> str | None:
    """The account an AWS principal names: ``123456789012`` or its ARNs; None otherwise."""
    if is_account_id(principal):
        return principal
    try:
        return parse_arn(principal).account or None
    except ARNError:
        return None
