"""The principal record on a real IdentityStore (issue 11, "fail closed"): a user removed
between its key lookup and the principal's build is refused, never evaluated without its
aws:userid (which would skip a Deny conditioned on it); a broken store fails the request."""
from __future__ import annotations

import json
import sqlite3

import pytest

from gateway.auth.types import AuthContext
from gateway.identity import IdentityStore
from gateway.principal_info import PrincipalError, build_principal

A = "111111111111"
DENY_ALICE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
    {"Effect": "Deny", "Action": "s3:*", "Resource": "*",
     "Condition": {"StringEquals": {"aws:userid": "PLACEHOLDER"}}}]})


@pytest.fixture
def store(tmp_path):
    s = IdentityStore.open(tmp_path)
    s.ensure_account(A)
    yield s
    s.close()


def _auth(store, key_id: str) -> AuthContext:
    cred = store.lookup(key_id)
    assert cred is not None
    return AuthContext(credential=cred, method="sigv4-header", service="s3",
                       region="us-east-1")


def _build(store, auth):
    return build_principal(auth, source_ip="127.0.0.1", secure_transport=False,
                           user_agent="t", store=store)


def test_principal_carries_user_id_and_policies(store):
    user = store.create_user(A, "alice")
    store.put_user_policy(A, "alice", "p", DENY_ALICE.replace("PLACEHOLDER", user.user_id))
    key = store.create_access_key(A, "alice")
    p = _build(store, _auth(store, key.key.access_key_id))
    assert p.user_id == user.user_id and p.user_name == "alice"
    assert [pol.name for pol in p.identity_policies] == ["p"]
    caller = p.caller(request_id="R1", via_service="s3.us-east-1.amazonaws.com")
    assert (caller.user_id, caller.identity_policies) == (user.user_id, p.identity_policies)


def test_user_removed_mid_request_is_refused(store, tmp_path):
    user = store.create_user(A, "alice")
    store.put_user_policy(A, "alice", "p", DENY_ALICE.replace("PLACEHOLDER", user.user_id))
    key = store.create_access_key(A, "alice")
    auth = _auth(store, key.key.access_key_id)           # the key was valid when looked up
    with sqlite3.connect(tmp_path / "iam" / "iam.db") as db:   # ... then the user went away
        db.execute("DELETE FROM users WHERE user_name='alice'")
    with pytest.raises(PrincipalError) as exc:
        _build(store, auth)
    assert exc.value.denied


def test_a_closed_store_fails_the_request(store):
    store.create_user(A, "alice")
    key = store.create_access_key(A, "alice")
    auth = _auth(store, key.key.access_key_id)
    store.close()
    with pytest.raises(PrincipalError) as exc:
        _build(store, auth)
    assert not exc.value.denied
