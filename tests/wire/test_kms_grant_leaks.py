"""Grant delegation and grant listing across principals and accounts, through boto3 against a
real ``coffer serve`` (issue 11 findings 4 and 10).

- A grantee that holds ``CreateGrant`` through a grant may create only grants that are equally
  or more restrictive: a subset of its operations, and encryption-context constraints at least
  as strict as its own [DG/create-grant-overview#grant-creategrant: "the child grant can add
  pairs to an EncryptionContextSubset constraint in the parent grant, but it cannot remove
  them. The child grant can change an EncryptionContextSubset constraint to an
  EncryptionContextEquals constraint, but not the reverse"]. Otherwise AccessDeniedException.
- ListRetirableGrants: "You must specify a principal in your Amazon Web Services account"; the
  authorized resource is that principal [API ListRetirableGrants, "Cross-account use"], so a
  caller naming another account's principal is denied and learns nothing of its grants.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.wire.clients import error_code
from tests.wire.conftest import make_client, new_account

AD = "AccessDeniedException"


class _User:
    def __init__(self, iam: Any, server: Any, statements: list | None = None) -> None:
        self.name = f"g-{uuid.uuid4().hex[:10]}"
        self.arn = iam.create_user(UserName=self.name)["User"]["Arn"]
        if statements:
            iam.put_user_policy(UserName=self.name, PolicyName="p", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": statements}))
        key = iam.create_access_key(UserName=self.name)["AccessKey"]
        self.kms = make_client(server, "kms", key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def root(server):
    return make_client(server, "kms")


@pytest.fixture(scope="module")
def iam(server):
    return make_client(server, "iam")


@pytest.fixture(scope="module")
def other(server):
    """A second account: (its root's kms client, its iam client)."""
    _, key, secret = new_account(server)
    return make_client(server, "kms", key, secret), make_client(server, "iam", key, secret)


def _ctx_grant(root, key_arn: str, grantee: str, constraints: dict) -> None:
    root.create_grant(KeyId=key_arn, GranteePrincipal=grantee,
                      Operations=["CreateGrant", "Decrypt", "Encrypt"],
                      Constraints=constraints)


def test_child_grant_cannot_drop_the_parents_constraint(server, root, iam):
    key_arn = root.create_key()["KeyMetadata"]["Arn"]
    alice, mallory = _User(iam, server), _User(iam, server)
    _ctx_grant(root, key_arn, alice.arn, {"EncryptionContextSubset": {"tenant": "a"}})
    secret_b = root.encrypt(KeyId=key_arn, Plaintext=b"tenant b data",
                            EncryptionContext={"tenant": "b"})["CiphertextBlob"]
    # Alice herself cannot read tenant b's data ...
    with pytest.raises(ClientError) as exc:
        alice.kms.decrypt(CiphertextBlob=secret_b, EncryptionContext={"tenant": "b"})
    assert error_code(exc) == AD
    # ... nor pass on more than she holds: no constraint, a smaller one, or a different one.
    for weaker in (None, {"EncryptionContextSubset": {}},
                   {"EncryptionContextSubset": {"tenant": "b"}},
                   {"EncryptionContextSubset": {"other": "x"}}):
        kw = {"Constraints": weaker} if weaker is not None else {}
        with pytest.raises(ClientError) as exc:
            alice.kms.create_grant(KeyId=key_arn, GranteePrincipal=mallory.arn,
                                   Operations=["Decrypt"], **kw)
        assert error_code(exc) == AD, weaker
    with pytest.raises(ClientError) as exc:
        mallory.kms.decrypt(CiphertextBlob=secret_b, EncryptionContext={"tenant": "b"})
    assert error_code(exc) == AD
    assert all(g["GranteePrincipal"] != mallory.arn
               for g in root.list_grants(KeyId=key_arn)["Grants"])


def test_child_grant_may_narrow_the_parents_constraint(server, root, iam):
    key_arn = root.create_key()["KeyMetadata"]["Arn"]
    alice, bob = _User(iam, server), _User(iam, server)
    _ctx_grant(root, key_arn, alice.arn, {"EncryptionContextSubset": {"tenant": "a"}})
    # Adding pairs to the subset, or turning it into an Equals that holds it, is allowed.
    for stricter in ({"EncryptionContextSubset": {"tenant": "a"}},
                     {"EncryptionContextSubset": {"tenant": "a", "app": "x"}},
                     {"EncryptionContextEquals": {"tenant": "a", "app": "x"}}):
        alice.kms.create_grant(KeyId=key_arn, GranteePrincipal=bob.arn,
                               Operations=["Encrypt"], Constraints=stricter)
    bob.kms.encrypt(KeyId=key_arn, Plaintext=b"x", EncryptionContext={"tenant": "a", "app": "x"})
    with pytest.raises(ClientError) as exc:
        bob.kms.encrypt(KeyId=key_arn, Plaintext=b"x", EncryptionContext={"tenant": "b"})
    assert error_code(exc) == AD


def test_equals_parent_only_passes_on_the_same_equals(server, root, iam):
    key_arn = root.create_key()["KeyMetadata"]["Arn"]
    alice, bob = _User(iam, server), _User(iam, server)
    _ctx_grant(root, key_arn, alice.arn, {"EncryptionContextEquals": {"tenant": "a"}})
    # "but not the reverse": an Equals parent cannot become a Subset child.
    for looser in ({"EncryptionContextSubset": {"tenant": "a"}},
                   {"EncryptionContextEquals": {"tenant": "a", "more": "x"}}):
        with pytest.raises(ClientError) as exc:
            alice.kms.create_grant(KeyId=key_arn, GranteePrincipal=bob.arn,
                                   Operations=["Encrypt"], Constraints=looser)
        assert error_code(exc) == AD, looser
    alice.kms.create_grant(KeyId=key_arn, GranteePrincipal=bob.arn, Operations=["Encrypt"],
                           Constraints={"EncryptionContextEquals": {"tenant": "a"}})
    bob.kms.encrypt(KeyId=key_arn, Plaintext=b"x", EncryptionContext={"tenant": "a"})


def test_list_retirable_grants_of_another_accounts_principal_is_denied(server, root, iam,
                                                                       other):
    x_kms, x_iam = other
    key_arn = root.create_key()["KeyMetadata"]["Arn"]
    grantee, retirer = _User(iam, server), _User(iam, server)
    gid = root.create_grant(KeyId=key_arn, GranteePrincipal=grantee.arn,
                            RetiringPrincipal=retirer.arn, Operations=["Decrypt"],
                            Constraints={"EncryptionContextSubset": {"tenant": "a"}})["GrantId"]
    # The owning account sees it ...
    assert [g["GrantId"] for g in root.list_retirable_grants(
        RetiringPrincipal=retirer.arn)["Grants"]] == [gid]
    # ... another account's root, or a user there allowed kms:ListRetirableGrants, does not.
    spy = _User(x_iam, server, [{"Effect": "Allow", "Action": "kms:ListRetirableGrants",
                                  "Resource": "*"}])
    for client in (x_kms, spy.kms):
        with pytest.raises(ClientError) as exc:
            client.list_retirable_grants(RetiringPrincipal=retirer.arn)
        assert error_code(exc) == AD
        assert key_arn not in json.dumps(exc.value.response)


def test_list_retirable_grants_includes_other_accounts_keys_for_own_principal(server, root,
                                                                              iam, other):
    """The grants returned include grants for KMS keys in other accounts, as AWS."""
    x_kms, x_iam = other
    x_key = x_kms.create_key()["KeyMetadata"]["Arn"]
    retirer = _User(iam, server, [{"Effect": "Allow", "Action": "kms:ListRetirableGrants",
                                   "Resource": "*"}])
    gid = x_kms.create_grant(KeyId=x_key, GranteePrincipal=retirer.arn,
                             RetiringPrincipal=retirer.arn, Operations=["Encrypt"])["GrantId"]
    listed = retirer.kms.list_retirable_grants(RetiringPrincipal=retirer.arn)["Grants"]
    assert [(g["GrantId"], g["KeyId"]) for g in listed] == [(gid, x_key)]
    retirer.kms.retire_grant(KeyId=x_key, GrantId=gid)
    assert x_kms.list_grants(KeyId=x_key)["Grants"] == []


def test_other_accounts_principal_cannot_retire_or_revoke(server, root, iam, other):
    x_kms, x_iam = other
    key_arn = root.create_key()["KeyMetadata"]["Arn"]
    grantee = _User(iam, server)
    made = root.create_grant(KeyId=key_arn, GranteePrincipal=grantee.arn,
                             Operations=["Encrypt"])
    spy = _User(x_iam, server, [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}])
    for client in (x_kms, spy.kms):
        with pytest.raises(ClientError) as exc:
            client.retire_grant(GrantToken=made["GrantToken"])
        assert error_code(exc) == AD
        with pytest.raises(ClientError) as exc:
            client.retire_grant(KeyId=key_arn, GrantId=made["GrantId"])
        assert error_code(exc) == AD
        with pytest.raises(ClientError) as exc:
            client.revoke_grant(KeyId=key_arn, GrantId=made["GrantId"])
        assert error_code(exc) == AD
    assert len(root.list_grants(KeyId=key_arn)["Grants"]) == 1
