"""The account root's credentials, created on first start and kept in the data dir (0600).

Until IAM users exist (a later issue) the root is the only identity: one account, one key pair.
"""
from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from gateway.auth.types import Credential

__all__ = ["RootIdentity", "load_or_create_root"]

_ROOT_FILE = "root-credentials.json"
_FORMAT = 1
_AKID_ALPHABET = string.ascii_uppercase + "234567"


@dataclass(frozen=True, slots=True)
class RootIdentity:
    credential: Credential
    created: bool          # True when this start made the credentials (print them once)


def _new_access_key() -> str:
    return "AKIA" + "".join(secrets.choice(_AKID_ALPHABET) for _ in range(16))


def _new_secret() -> str:
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


def _new_account_id() -> str:
    return str(secrets.randbelow(9 * 10 ** 11) + 10 ** 11)


def _write_private(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_or_create_root(data_dir: Path, access_key: str | None = None,
                        secret_key: str | None = None) -> RootIdentity:
    """Read the root credentials, creating them on first start.

    ``COFFER_ROOT_ACCESS_KEY`` / ``COFFER_ROOT_SECRET_KEY`` (passed in) replace the stored pair;
    the account id stays the same.
    """
    path = data_dir / _ROOT_FILE
    created = False
    if path.exists():
        doc = json.loads(path.read_text())
        if doc.get("v") != _FORMAT:
            raise ValueError(f"{path}: unknown credentials format {doc.get('v')!r}")
    else:
        doc = {"v": _FORMAT, "account_id": _new_account_id(),
               "access_key_id": _new_access_key(), "secret_access_key": _new_secret()}
        created = access_key is None
    if access_key and secret_key:
        doc["access_key_id"], doc["secret_access_key"] = access_key, secret_key
    if created or access_key or not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(path, doc)
    account = doc["account_id"]
    cred = Credential(access_key_id=doc["access_key_id"],
                      secret_access_key=doc["secret_access_key"], account_id=account,
                      principal_arn=f"arn:aws:iam::{account}:root")
    return RootIdentity(credential=cred, created=created)
