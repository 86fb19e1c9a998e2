"""Key policies and grants keep the unique id of each IAM user they name (real SQLite,
schema v6): a user re-created under the same name matches neither, across a reopen; a policy
saved again names the new user; GetKeyPolicy returns the document as saved."""
from __future__ import annotations

import json
import sqlite3

import pytest

from kms.audit import MemorySink
from kms.errors import AccessDeniedException
from kms.model import Caller
from kms.service import KMS
from kms.store.sqlite import SCHEMA_VERSION

ACCT = "111122223333"
ROOT = Caller(f"arn:aws:iam::{ACCT}:root", ACCT)
BOB_ARN = f"arn:aws:iam::{ACCT}:user/bob"


def _bob(user_id: str) -> Caller:
    return Caller(BOB_ARN, ACCT, user_name="bob", user_id=user_id)


class _Users:
    """The gateway's identity store, reduced to what the KMS asks of it."""

    def __init__(self) -> None:
        self.ids = {BOB_ARN: "AIDAOLDBOB"}

    def exists(self, arn: str) -> bool:
        return arn in self.ids

    def user_id(self, arn: str) -> str | None:
        return self.ids.get(arn)


def _open(path, users: _Users) -> KMS:
    kms = KMS.open(path, audit=MemorySink())
    kms.principal_exists = users.exists
    kms.principal_id = users.user_id
    return kms


POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": ROOT.principal_arn},
     "Action": "kms:*", "Resource": "*"},
    {"Sid": "bob", "Effect": "Allow", "Principal": {"AWS": BOB_ARN},
     "Action": ["kms:Encrypt"], "Resource": "*"}]})


def test_key_policy_and_grant_follow_the_saved_user_id(tmp_path):
    users = _Users()
    with _open(tmp_path, users) as kms:
        named = kms.create_key(ROOT, policy=POLICY)["KeyMetadata"]["KeyId"]
        granted = kms.create_key(ROOT)["KeyMetadata"]["KeyId"]
        grant = kms.create_grant(ROOT, granted, BOB_ARN, ["Encrypt"],
                                 retiring_principal=BOB_ARN)
        kms.encrypt(_bob("AIDAOLDBOB"), named, b"x")
        kms.encrypt(_bob("AIDAOLDBOB"), granted, b"x")
    users.ids[BOB_ARN] = "AIDANEWBOB"                       # deleted and re-created
    with _open(tmp_path, users) as kms:
        new = _bob("AIDANEWBOB")
        for key in (named, granted):
            with pytest.raises(AccessDeniedException):
                kms.encrypt(new, key, b"x")
        with pytest.raises(AccessDeniedException):        # nor the grant's retiring principal
            kms.retire_grant(new, key_id=granted, grant_id=grant["GrantId"])
        assert kms.get_key_policy(ROOT, named)["Policy"] == POLICY
        kms.put_key_policy(ROOT, named, POLICY)              # saved again: the new bob
        kms.encrypt(new, named, b"x")
        with pytest.raises(AccessDeniedException):
            kms.encrypt(_bob("AIDAOLDBOB"), named, b"x")
        # A grant made now, under the same Name, is a new grant for the new user.
        kms.create_grant(ROOT, granted, BOB_ARN, ["Encrypt"])
        kms.encrypt(new, granted, b"x")
    con = sqlite3.connect(tmp_path / "kms" / "kms.db")
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        rows = con.execute("SELECT arn, user_id FROM policy_principals WHERE key_id=?",
                           (named,)).fetchall()
        assert sorted(rows) == [("", ""), (BOB_ARN, "AIDANEWBOB")]
    finally:
        con.close()


def test_without_a_user_lookup_principals_match_by_arn(tmp_path):
    """The KMS library on its own (no identity store) keeps the old reading, and a policy
    saved that way drops any ids an earlier save kept."""
    users = _Users()
    with _open(tmp_path, users) as kms:
        key = kms.create_key(ROOT, policy=POLICY)["KeyMetadata"]["KeyId"]
        kms.principal_id = None
        kms.put_key_policy(ROOT, key, POLICY)
        kms.encrypt(_bob("AIDAANYONE"), key, b"x")


def test_deleting_a_key_drops_its_saved_ids(tmp_path):
    users = _Users()
    clock = [1_700_000_000.0]
    kms = KMS.open(tmp_path, audit=MemorySink(), clock=lambda: clock[0])
    kms.principal_exists, kms.principal_id = users.exists, users.user_id
    with kms:
        key = kms.create_key(ROOT, policy=POLICY)["KeyMetadata"]["KeyId"]
        kms.schedule_key_deletion(ROOT, key, pending_window_in_days=7)
        clock[0] += 8 * 86400
        kms.apply_due_deletions()
    con = sqlite3.connect(tmp_path / "kms" / "kms.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM policy_principals").fetchone()[0] == 0
    finally:
        con.close()
