"""The KeyStore contract. SQLite is the default (``kms.store.sqlite``); PostgreSQL comes later."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kms.model import Alias, Key, KeyVersion, RotationType

__all__ = ["KeyStore", "KeyCheck", "KeyChanges"]

KeyCheck = Callable[[Key], None]
"""Runs inside the transaction on the freshly read key; raises a KMSError to abort it."""
KeyChanges = Callable[[Key], Mapping[str, Any]]
"""Like KeyCheck, and returns the columns to change (key_state, deletion_date, ...)."""


class KeyStore(Protocol):
    """Keys, versions and aliases. Every mutation is one transaction; the ``check`` callbacks
    run inside it so state rules are applied to the row being changed, not to a stale read.

    Lookups return None when absent. Mutations raise ``NotFoundException`` for a missing key or
    alias, ``AlreadyExistsException`` for a taken alias name, ``LimitExceededException`` for
    the alias and rotation quotas, and whatever ``check`` raises. Safe to call from many
    threads.

    ``before_commit`` (set by the KMS) is called inside every write transaction just before
    it commits; if it raises, the transaction rolls back and the error propagates. The KMS
    writes its audit intent record there (``kms.calls``), so no change commits off the record.
    """

    before_commit: Callable[[], None] | None

    def create_key(self, key: Key, version: KeyVersion | None,
                   alias: str | None = None) -> None: ...

    def get_key(self, key_id: str) -> Key | None: ...

    def list_keys(self, account_id: str, limit: int, after: str | None) -> list[Key]: ...

    def update_key(self, key_id: str, changes: KeyChanges) -> Key: ...

    def add_version(self, key_id: str, check: KeyCheck, make_record: Callable[[int], bytes],
                    now: float, rotation_type: RotationType, max_rotations: int,
                    changes: KeyChanges | None = None) -> KeyVersion: ...

    def get_version(self, key_id: str, version: int) -> KeyVersion | None: ...

    def list_versions(self, key_id: str) -> list[KeyVersion]: ...

    def get_alias(self, account_id: str, alias_name: str) -> Alias | None: ...

    def list_aliases(self, account_id: str, key_id: str | None, limit: int,
                     after: str | None) -> list[Alias]: ...

    def create_alias(self, account_id: str, alias_name: str, target_key_id: str, now: float,
                     check: KeyCheck, max_per_key: int) -> Alias: ...

    def update_alias(self, account_id: str, alias_name: str, target_key_id: str, now: float,
                     check: KeyCheck) -> Alias: ...

    def delete_alias(self, account_id: str, alias_name: str) -> Alias: ...

    def due_deletions(self, now: float) -> list[Key]: ...

    def delete_key(self, key_id: str, check: KeyCheck) -> list[KeyVersion]: ...

    # Automatic rotation and imported material (kms.lifecycle).

    def due_rotations(self, now: float) -> list[Key]: ...

    def due_expirations(self, now: float) -> list[Key]: ...

    def put_import_token(self, token_id: str, key_id: str, wrapping_algorithm: str,
                         wrapping_key_spec: str, private_key: bytes, valid_to: float,
                         now: float, check: KeyCheck) -> None: ...

    def get_import_token(self, token_id: str) -> tuple[str, str, str, bytes, float] | None: ...

    def replace_material(self, key_id: str, changes: KeyChanges,
                         make_version: Callable[[Key], KeyVersion | None]
                         ) -> list[KeyVersion]: ...

    def close(self) -> None: ...
