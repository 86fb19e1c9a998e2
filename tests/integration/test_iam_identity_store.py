"""The identity store on a real SQLite file: accounts, users, keys, policies, sealing."""
from __future__ import annotations

import json
import sqlite3
import stat

import pytest

from gateway.identity import IdentityStore
from kms.iam import errors as ie
from kms.iam.evaluate import AuthzRequest, evaluate

A = "111111111111"
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "Home", "Effect": "Allow", "Action": "s3:*",
     "Resource": "arn:aws:s3:::home/${aws:username}/*"}]})


@pytest.fixture
def store(tmp_path):
    s = IdentityStore.open(tmp_path)
    s.ensure_account(A)
    yield s
    s.close()


def test_layout_and_secret_sealing(tmp_path, store):
    store.create_user(A, "alice")
    new = store.create_access_key(A, "alice")
    secret = new.secret_access_key
    assert "secret" not in repr(new) and secret not in repr(new)
    key_file = tmp_path.resolve().with_name(tmp_path.name + ".iam.key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # The sealing key lives beside the data dir, never in it: the data dir alone (a copy, a
    # backup) holds nothing that opens a stored secret.
    key = key_file.read_bytes()
    assert not any(key in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    store.close()
    raw = b"".join((tmp_path / "iam" / n).read_bytes() for n in ("iam.db",)
                   if (tmp_path / "iam" / n).exists())
    wal = tmp_path / "iam" / "iam.db-wal"
    if wal.exists():
        raw += wal.read_bytes()
    assert secret.encode() not in raw
    # Another key file cannot open the sealed secrets.
    key_file.write_bytes(b"\x00" * 32)
    other = IdentityStore.open(tmp_path)
    assert other.lookup(new.key.access_key_id) is None
    other.close()
    # Without the key file the store refuses to start rather than mint a new one.
    key_file.unlink()
    with pytest.raises(ValueError):
        IdentityStore.open(tmp_path)


def test_lookup_and_status(store):
    user = store.create_user(A, "alice", "/eng/")
    new = store.create_access_key(A, "alice")
    cred = store.lookup(new.key.access_key_id)
    assert cred.secret_access_key == new.secret_access_key
    assert cred.principal_arn == user.arn == f"arn:aws:iam::{A}:user/eng/alice"
    assert cred.account_id == A and cred.user_name == "alice"
    store.update_access_key(A, "alice", new.key.access_key_id, "Inactive")
    assert store.lookup(new.key.access_key_id) is None
    assert store.list_access_keys(A, "alice")[0].status == "Inactive"
    with pytest.raises(ie.ValidationError):
        store.update_access_key(A, "alice", new.key.access_key_id, "Paused")
    assert store.lookup("AKIANOTAKEY000000000") is None


def test_accounts(store):
    new = store.create_account()
    assert len(new.account_id) == 12 and new.account_id in store.list_accounts()
    cred = store.lookup(new.root_key.key.access_key_id)
    assert cred.principal_arn == f"arn:aws:iam::{new.account_id}:root"
    assert cred.user_name is None
    with pytest.raises(ie.EntityAlreadyExists):
        store.create_account(new.account_id)
    # Names are per account.
    store.create_user(A, "alice")
    store.create_user(new.account_id, "alice")


def test_user_rules(store):
    store.create_user(A, "alice")
    with pytest.raises(ie.EntityAlreadyExists):
        store.create_user(A, "ALICE")                 # names are case-insensitive
    for bad in ("", "a b", "x" * 65, "slash/no"):
        with pytest.raises(ie.ValidationError):
            store.create_user(A, bad)
    with pytest.raises(ie.ValidationError):
        store.create_user(A, "bob", "no-slash")
    with pytest.raises(ie.NoSuchEntity):
        store.get_user(A, "nobody")
    store.create_access_key(A, "alice")
    store.create_access_key(A, "alice")
    with pytest.raises(ie.LimitExceeded):
        store.create_access_key(A, "alice")
    with pytest.raises(ie.DeleteConflict):
        store.delete_user(A, "alice")


def test_policies_feed_the_evaluator(store):
    user = store.create_user(A, "alice")
    store.put_user_policy(A, "alice", "home", POLICY)
    mp = store.create_policy(A, "kms-use", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}))
    store.attach_user_policy(A, "alice", mp.arn)
    store.attach_user_policy(A, "alice", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    policies = store.identity_policies(user.arn)
    assert [p.name for p in policies] == [
        "home", mp.arn, "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
    assert store.get_policy(mp.arn).attachment_count == 1
    req = AuthzRequest(user.arn, "s3:PutObject", "arn:aws:s3:::home/alice/x", user_name="alice")
    d = evaluate(req, policies, None, resource_account=A)
    assert d.allowed and d.statement == ("home", "Home")
    assert store.identity_policies(f"arn:aws:iam::{A}:root") == []
    with pytest.raises(ie.DeleteConflict):
        store.delete_policy(A, mp.arn)
    with pytest.raises(ie.MalformedPolicyDocument):
        store.put_user_policy(A, "alice", "bad", '{"Statement": []}')
    with pytest.raises(ie.LimitExceeded):
        big = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": f"s3:Get{i}", "Resource": "*"} for i in range(200)]})
        store.put_user_policy(A, "alice", "big", big)
    store.detach_user_policy(A, "alice", mp.arn)
    store.delete_policy(A, mp.arn)
    with pytest.raises(ie.NoSuchEntity):
        store.get_policy(mp.arn)


def test_unknown_format_refused(tmp_path):
    IdentityStore.open(tmp_path).close()
    with sqlite3.connect(tmp_path / "iam" / "iam.db") as db:
        db.execute("UPDATE meta SET v='9' WHERE k='format'")
    with pytest.raises(ValueError):
        IdentityStore.open(tmp_path)


B = "222222222222"


def test_principal_exists_is_the_canonical_arn(store):
    """Save-time principal lookup (issue 11, finding 12): exact stored ARN (case and path)."""
    store.ensure_account(B)
    store.create_user(A, "Alice", "/eng/")
    assert store.principal_exists(f"arn:aws:iam::{A}:user/eng/Alice")
    for arn in (f"arn:aws:iam::{A}:user/eng/alice", f"arn:aws:iam::{A}:user/Alice",
                f"arn:aws:iam::{B}:user/eng/Alice", f"arn:aws:iam::{A}:user/eng/ghost",
                f"arn:aws:iam::{A}:role/Alice", "not an arn"):
        assert not store.principal_exists(arn), arn
    assert store.principal_exists(f"arn:aws:iam::{A}:root")
    assert store.principal_exists(f"arn:aws:sts::{A}:assumed-role/r/s")


def test_rows_keep_the_stored_user_name(store):
    """Finding 2: a name in another case is the same user, and rows name it as stored."""
    store.create_user(A, "alice")
    key = store.create_access_key(A, "ALICE")
    assert key.key.user_name == "alice"
    store.put_user_policy(A, "ALICE", "p", POLICY)
    assert store.list_user_policies(A, "alice") == ["p"]
    cred = store.lookup(key.key.access_key_id)
    assert cred.user_name == "alice" and cred.principal_arn.endswith(":user/alice")
    assert [p.name for p in store.identity_policies(cred.principal_arn)] == ["p"]
    with pytest.raises(ie.EntityAlreadyExists):
        store.create_user(A, "ALICE")


def test_get_policy_is_scoped_to_the_reading_account(store):
    """Finding 10: another account's managed policy reads as missing; AWS-managed ones do not."""
    store.ensure_account(B)
    mp = store.create_policy(B, "theirs", POLICY)
    assert store.get_policy(mp.arn, B).document == POLICY
    with pytest.raises(ie.NoSuchEntity):
        store.get_policy(mp.arn, A)
    with pytest.raises(ie.NoSuchEntity):
        store.delete_policy(A, mp.arn)
    assert store.get_policy("arn:aws:iam::aws:policy/AdministratorAccess", A).arn


@pytest.mark.parametrize("name", ["\u00e5lice", "alice\n", "\u0662", "\uff41", "a" * 129, ""])
def test_names_are_ascii(store, name):
    """Finding 20 [IAM UG, "IAM identifiers"]: ASCII [\\w+=,.@-] only, nothing after."""
    with pytest.raises(ie.ValidationError):
        store.create_user(A, name)
    store.create_user(A, "ok")
    with pytest.raises(ie.ValidationError):
        store.put_user_policy(A, "ok", name, POLICY)
    with pytest.raises(ie.ValidationError):
        store.create_policy(A, name, POLICY)
    store.delete_user(A, "ok")
