"""Policy documents: what parses, what is refused (and with which AWS message); ARNs; the
leaf rule of kms/iam; the secretbox format."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from kms.crypto import secretbox
from kms.iam import errors as ie
from kms.iam.arn import ARN, parse_arn, policy_arn, root_arn, user_arn
from kms.iam.errors import ARNError, PolicyError
from kms.iam.policy import parse_policy

ROOT = Path(__file__).resolve().parents[2]
ALLOW = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}


def doc(*statements, **top):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements), **top})


def test_parses_statements():
    p = parse_policy(doc({"Sid": "A", **ALLOW, "Condition": {
        "ForAnyValue:StringLikeIfExists": {"kms:EncryptionContextKeys": ["a*", "b"]},
        "Bool": {"aws:SecureTransport": True}}}), name="n")
    st = p.statements[0]
    assert p.name == "n" and p.version == "2012-10-17" and st.sid == "A"
    assert st.actions == ("s3:GetObject",) and st.resources == ("*",)
    c1, c2 = st.conditions
    assert (c1.qualifier, c1.operator, c1.if_exists, c1.values) == (
        "ForAnyValue", "StringLike", True, ("a*", "b"))
    assert c2.values == ("true",) and c2.label == "Bool"


def test_single_statement_object_and_default_version():
    p = parse_policy({"Statement": ALLOW})
    assert len(p.statements) == 1 and p.version == "2008-10-17" and not p.variables


def test_resource_policy_principals():
    p = parse_policy(doc({**ALLOW, "Principal": {"AWS": ["111111111111",
                                                         "arn:aws:iam::111111111111:root"],
                                                 "Service": "s3.amazonaws.com"}}),
                     kind="resource")
    pr = p.statements[0].principal
    assert pr.aws == ("111111111111", "arn:aws:iam::111111111111:root")
    assert pr.service == ("s3.amazonaws.com",)
    assert parse_policy(doc({**ALLOW, "Principal": "*"}), kind="resource"
                        ).statements[0].principal.wildcard


REJECTED = [
    ("not-json", "{nope", "identity", "Syntax errors in policy."),
    ("empty", "", "identity", "Syntax errors in policy."),
    ("array", "[]", "identity", "Syntax errors in policy."),
    ("unknown-top", json.dumps({"Statement": [ALLOW], "Foo": 1}), "identity", None),
    ("bad-version", json.dumps({"Version": "2020-01-01", "Statement": [ALLOW]}), "identity",
     "The policy failed legacy parsing"),
    ("no-statement", json.dumps({"Version": "2012-10-17"}), "identity", None),
    ("empty-statement-list", doc(), "identity", None),
    ("bad-effect", doc({**ALLOW, "Effect": "Maybe"}), "identity", None),
    ("missing-effect", doc({"Action": "s3:*", "Resource": "*"}), "identity",
     "Missing required field Effect"),
    ("principal-in-identity", doc({**ALLOW, "Principal": "*"}), "identity",
     "Policy document should not specify a principal."),
    ("principal-missing-in-resource", doc(ALLOW), "resource",
     "Missing required field Principal"),
    ("both-principal-forms", doc({**ALLOW, "Principal": "*", "NotPrincipal": "*"}),
     "resource", None),
    ("bad-principal-kind", doc({**ALLOW, "Principal": {"Users": "x"}}), "resource",
     "Invalid principal in policy"),
    ("bad-aws-principal", doc({**ALLOW, "Principal": {"AWS": "alice"}}), "resource",
     "Invalid principal in policy"),
    ("no-action", doc({"Effect": "Allow", "Resource": "*"}), "identity",
     "Policy statement must contain actions."),
    ("both-actions", doc({**ALLOW, "NotAction": "s3:*"}), "identity", None),
    ("action-no-vendor", doc({**ALLOW, "Action": "GetObject"}), "identity",
     "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
    ("action-not-string", doc({**ALLOW, "Action": 5}), "identity", None),
    ("empty-action-list", doc({**ALLOW, "Action": []}), "identity", None),
    ("no-resource", doc({"Effect": "Allow", "Action": "s3:*"}), "identity",
     "Policy statement must contain resources."),
    ("resource-not-arn", doc({**ALLOW, "Resource": "bucket/key"}), "identity", None),
    ("unknown-statement-key", doc({**ALLOW, "Actions": "s3:*"}), "identity", None),
    ("sid-not-string", doc({**ALLOW, "Sid": 3}), "identity", None),
    ("duplicate-sid", doc({**ALLOW, "Sid": "A"}, {**ALLOW, "Sid": "A"}), "identity", None),
    ("unknown-operator", doc({**ALLOW, "Condition": {"StringSorta": {"aws:x": "y"}}}),
     "identity", None),
    ("bad-qualifier", doc({**ALLOW, "Condition": {"ForSome:StringEquals": {"aws:x": "y"}}}),
     "identity", None),
    ("null-ifexists", doc({**ALLOW, "Condition": {"NullIfExists": {"aws:x": "true"}}}),
     "identity", None),
    ("null-bad-value", doc({**ALLOW, "Condition": {"Null": {"aws:x": "maybe"}}}),
     "identity", None),
    ("condition-not-object", doc({**ALLOW, "Condition": ["x"]}), "identity", None),
    ("condition-key-no-vendor", doc({**ALLOW, "Condition": {"StringEquals": {"x": "y"}}}),
     "identity", None),
    ("condition-value-object", doc({**ALLOW, "Condition": {"StringEquals": {"aws:x": {}}}}),
     "identity", None),
    ("condition-empty-list", doc({**ALLOW, "Condition": {"StringEquals": {"aws:x": []}}}),
     "identity", None),
]


@pytest.mark.parametrize("text,kind,message", [r[1:] for r in REJECTED],
                         ids=[r[0] for r in REJECTED])
def test_rejected(text, kind, message):
    with pytest.raises(PolicyError) as exc:
        parse_policy(text, kind=kind)
    assert exc.value.message
    if message:
        assert exc.value.message == message


def test_arn_roundtrip():
    a = parse_arn("arn:aws:s3:::bucket/key:with:colons")
    assert a == ARN("aws", "s3", "", "", "bucket/key:with:colons")
    assert str(a) == "arn:aws:s3:::bucket/key:with:colons"
    k = parse_arn("arn:aws:kms:us-east-1:111111111111:key/abc")
    assert (k.region, k.account, k.resource_type) == ("us-east-1", "111111111111", "key")
    assert user_arn("111111111111", "alice", "/team/") == \
        "arn:aws:iam::111111111111:user/team/alice"
    assert root_arn("111111111111") == "arn:aws:iam::111111111111:root"
    assert policy_arn("1" * 12, "p") == "arn:aws:iam::111111111111:policy/p"
    for bad in ("", "arn:aws", "urn:aws:s3:::b", "arn::s3:::b"):
        with pytest.raises(ARNError):
            parse_arn(bad)


def test_every_iam_error_has_code_and_status():
    for code, cls in ie.ERRORS.items():
        err = cls("m")
        assert err.code == code and 400 <= err.status < 600 and err.message == "m"
        assert err.sender == (err.status < 500)


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_kms_iam_is_a_leaf():
    files = list((ROOT / "kms" / "iam").rglob("*.py"))
    assert files
    for f in files:
        for mod in _imports(f):
            top = mod.split(".")[0]
            assert top not in ("gateway", "aiohttp", "storage", "cryptography"), f
            if top == "kms":
                assert mod.startswith("kms.iam"), (f, mod)


def test_secretbox_roundtrip_and_tamper():
    key = bytes(range(32))
    token = secretbox.seal(key, b"secret", b"AKIA1", rand=lambda n: b"\x07" * n)
    assert token[0] == secretbox.VERSION and token[1:13] == b"\x07" * 12
    assert len(token) == 1 + 12 + len(b"secret") + 16
    assert secretbox.open_(key, token, b"AKIA1") == b"secret"
    for bad_key, bad_token, aad in ((key, token, b"AKIA2"),
                                    (bytes(32), token, b"AKIA1"),
                                    (key, b"\x02" + token[1:], b"AKIA1"),
                                    (key, token[:-1] + bytes([token[-1] ^ 1]), b"AKIA1"),
                                    (key, token[:20], b"AKIA1")):
        with pytest.raises(secretbox.CryptoError):
            secretbox.open_(bad_key, bad_token, aad)


# -- save-time principal rules (issue 11, finding 12) ------------------------------------
# [IAM UG, "AWS JSON policy elements: Principal": no wildcard inside a principal; an unknown
# user is "Invalid principal in policy"; "NotPrincipal": "Using it with Allow is not
# supported"]

U = "arn:aws:iam::111111111111:user"
SAVE_REJECTED = [
    ("deny-wildcard-user", {**ALLOW, "Effect": "Deny", "Principal": {"AWS": f"{U}/*"}}),
    ("deny-question-mark", {**ALLOW, "Effect": "Deny", "Principal": {"AWS": f"{U}/al?ce"}}),
    ("wildcard-account", {**ALLOW, "Principal": {"AWS": "arn:aws:iam::*:root"}}),
    ("allow-notprincipal", {**ALLOW, "NotPrincipal": {"AWS": "111111111111"}}),
    ("group", {**ALLOW, "Principal": {"AWS": "arn:aws:iam::111111111111:group/g"}}),
    ("policy-arn", {**ALLOW, "Principal": {"AWS": "arn:aws:iam::111111111111:policy/p"}}),
    ("unicode-user", {**ALLOW, "Principal": {"AWS": f"{U}/\u00e5lice"}}),
    ("newline-user", {**ALLOW, "Principal": {"AWS": f"{U}/alice\n"}}),
    ("unknown-user", {**ALLOW, "Principal": {"AWS": f"{U}/ghost"}}),
    ("user-other-case", {**ALLOW, "Principal": {"AWS": f"{U}/ALICE"}}),
    ("user-other-path", {**ALLOW, "Principal": {"AWS": f"{U}/team/alice"}}),
    ("role-unknown", {**ALLOW, "Principal": {"AWS": "arn:aws:iam::111111111111:role/r"}}),
    ("unknown-in-notprincipal", {**ALLOW, "Effect": "Deny",
                                 "NotPrincipal": {"AWS": [f"{U}/ghost", "111111111111"]}}),
]


def test_save_time_action_is_the_whole_string():
    trailing = doc({**ALLOW, "Effect": "Deny", "Action": "s3:GetObject\n"})
    with pytest.raises(PolicyError) as exc:
        parse_policy(trailing, saving=True)
    assert exc.value.message.startswith("Actions/Conditions must be prefaced by a vendor")
    assert parse_policy(trailing).statements[0].actions == ("s3:GetObject\n",)


def _exists(arn: str) -> bool:
    return arn == f"{U}/alice"


@pytest.mark.parametrize("statement", [r[1] for r in SAVE_REJECTED],
                         ids=[r[0] for r in SAVE_REJECTED])
def test_save_time_principal_rules(statement):
    with pytest.raises(PolicyError) as exc:
        parse_policy(doc(statement), kind="resource", principal_exists=_exists)
    assert exc.value.message == "Invalid principal in policy"


def test_save_time_accepts_what_aws_accepts():
    for principal in ("*", {"AWS": "*"}, {"AWS": "111111111111"},
                      {"AWS": ["arn:aws:iam::111111111111:root", f"{U}/alice"]},
                      {"AWS": "arn:aws:sts::111111111111:assumed-role/r/session@x"},
                      {"AWS": "arn:aws-us-gov:iam::111111111111:root"},
                      {"Service": "s3.amazonaws.com"}):
        parse_policy(doc({**ALLOW, "Principal": principal}), kind="resource",
                     principal_exists=_exists)
    p = parse_policy(doc({**ALLOW, "Effect": "Deny", "NotPrincipal": {"AWS": f"{U}/alice"}}),
                     kind="resource", saving=True)
    assert p.statements[0].not_principal


def test_stored_documents_keep_the_read_rules():
    """A document saved before the rules loads whole, so its other statements still apply."""
    legacy = doc({**ALLOW, "NotPrincipal": {"AWS": "111111111111"}},
                 {**ALLOW, "Effect": "Deny", "Principal": {"AWS": f"{U}/*"}})
    assert len(parse_policy(legacy, kind="resource").statements) == 2
    with pytest.raises(PolicyError):
        parse_policy(legacy, kind="resource", saving=True)


@pytest.mark.parametrize("text", [
    '{"Statement":' + "[" * 50_000 + "]" * 50_000 + "}",
    '{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":'
    '{"StringEquals":{"aws:x":' + '{"a":' * 5000 + "1" + "}" * 5000 + "}}}}",
    b'{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"\xff"}}',
    '{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":'
    '{"NumericEquals":{"a:b":' + "9" * 5000 + "}}}}",
], ids=["nested-10k", "nested-condition", "bad-utf8", "int-too-long"])
def test_bad_json_of_any_shape_is_policy_error(text):
    """Finding 16: RecursionError, UnicodeDecodeError and int-conversion limits are all
    "Syntax errors in policy.", never another exception."""
    with pytest.raises(PolicyError) as exc:
        parse_policy(text)
    assert exc.value.message == "Syntax errors in policy."
    assert type(exc.value) is PolicyError
