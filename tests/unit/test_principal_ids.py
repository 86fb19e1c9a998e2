"""A user principal saved as its unique id matches only that user (kms.iam, one evaluator for
key policies, bucket policies and grants) [IAM UG, "AWS JSON policy elements: Principal":
a user deleted and re-created under the same name has a new unique id and the policy does not
apply to it; "IAM identifiers", unique IDs]."""
from __future__ import annotations

import json

from kms.iam import AuthzRequest, evaluate, parse_policy
from kms.iam.evaluate import names_principal
from kms.iam.policy import (is_user_arn, resolve_principal_ids, user_principals,
                            with_principal_ids)

ACCT = "111122223333"
BOB = f"arn:aws:iam::{ACCT}:user/team/bob"
ROOT = f"arn:aws:iam::{ACCT}:root"


def _policy(*statements):
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}),
                        kind="resource", name="bucket policy")


def _req(user_id: str | None, arn: str = BOB) -> AuthzRequest:
    return AuthzRequest(principal_arn=arn, action="s3:GetObject", resource="arn:aws:s3:::b/k",
                        principal_account=ACCT, user_name="bob", user_id=user_id)


ALLOW_BOB = {"Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::b/*"}


def test_user_principals_and_resolution():
    p = _policy(ALLOW_BOB, {"Effect": "Deny", "NotPrincipal": {"AWS": [ROOT, BOB]},
                            "Action": "s3:*", "Resource": "*"},
                {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"})
    assert user_principals(p) == (BOB,)
    assert resolve_principal_ids(p, {BOB: "AIDAOLD"}.get) == ((BOB, "AIDAOLD"),)
    # A user the lookup does not know is saved as "": it can never match anyone.
    assert resolve_principal_ids(p, lambda arn: None) == ((BOB, ""),)
    assert resolve_principal_ids(None, {BOB: "AIDAX"}.get, (BOB, None, ROOT)) == \
        ((BOB, "AIDAX"),)
    assert is_user_arn(BOB) and not is_user_arn(ROOT) and not is_user_arn(f"{BOB}*")


def test_a_saved_id_matches_only_its_user():
    saved = with_principal_ids(_policy(ALLOW_BOB), ((BOB, "AIDAOLD"),))
    assert evaluate(_req("AIDAOLD"), [], saved, resource_account=ACCT).allowed
    assert not evaluate(_req("AIDANEW"), [], saved, resource_account=ACCT).allowed
    assert not evaluate(_req(None), [], saved, resource_account=ACCT).allowed
    # A document saved before ids were kept is read by ARN, as it always was.
    legacy = _policy(ALLOW_BOB)
    assert legacy.principal_ids is None
    assert evaluate(_req("AIDANEW"), [], legacy, resource_account=ACCT).allowed


def test_deny_and_not_principal_follow_the_saved_id():
    deny = with_principal_ids(_policy(
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "NotPrincipal": {"AWS": [BOB, ROOT]}, "Action": "s3:GetObject",
         "Resource": "*"}), ((BOB, "AIDAOLD"),))
    ident = [parse_policy(json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*",
                                                     "Resource": "*"}]}))]
    # The user the NotPrincipal listed is exempt; a re-created one is not.
    assert evaluate(_req("AIDAOLD"), ident, deny, resource_account=ACCT).allowed
    assert not evaluate(_req("AIDANEW"), ident, deny, resource_account=ACCT).allowed


def test_names_principal():
    ids = {BOB: "AIDAOLD"}
    assert names_principal(BOB, BOB, "AIDAOLD", ids)
    assert not names_principal(BOB, BOB, "AIDANEW", ids)
    assert names_principal(BOB, BOB, "AIDANEW", None)
    assert names_principal(ROOT, ROOT, None, ids)            # roots are not saved as ids
    assert not names_principal(BOB, "", None, None)
    assert not names_principal(BOB, BOB, "", {BOB: ""})
