"""Property-based fuzzing of the policy language and the IAM Query operation layer (issue 11).

Each parser is run directly (not over HTTP), seeded and bounded, over 10,000 cases; the only
exception it may raise is its layer's typed error:

- ``kms.iam.policy.parse_policy`` (arbitrary JSON, text and near-valid policies): PolicyError;
  and whatever it accepts, ``kms.iam.evaluate.evaluate`` decides without raising;
- ``kms.keypolicy.validate`` + ``check_lockout``: KMSError (MalformedPolicyDocumentException,
  LimitExceededException);
- ``gateway.iam_api.operations`` (any action, arbitrary form params, root and user callers):
  IAMError.
"""
from __future__ import annotations

import json
import random
import sqlite3
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import identity as identity_mod
from gateway.auth.types import Credential
from gateway.iam_api.operations import OPERATIONS, IAMCall
from kms import keypolicy
from kms.errors import KMSError
from kms.iam.errors import IAMError, PolicyError
from kms.iam.evaluate import AuthzRequest, evaluate
from kms.iam.policy import parse_policy
from kms.model import Caller

pytestmark = pytest.mark.fuzz

FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

ACCT = "111122223333"
OTHER = "444455556666"

# -- generators -------------------------------------------------------------------------------
# Hypothesis draws a seed per case and these builders use ``random.Random(seed)``: composing
# the same documents out of nested strategies (or hypothesis's own Random, which routes every
# call through the engine) costs ~10 ms a case, too slow for 10,000 of them on a busy machine.
# Derandomized, so each run sees the same cases; a failure prints its seed. One draw per case:
# hypothesis's own cost is ~1 ms per draw on a loaded machine.

_CHARS = (string.ascii_letters + string.digits + string.punctuation + " \t\n\x00"
          + "\u00e5\u0130\u0430\u0662\uff41\u200b\U0001f600\ufeff")
_PRINCIPALS = ["*", ACCT, f"arn:aws:iam::{ACCT}:root", f"arn:aws:iam::{ACCT}:user/alice",
               f"arn:aws:iam::{ACCT}:user/*", f"arn:aws:iam::{ACCT}:user/team/bob",
               f"arn:aws:iam::{ACCT}:user/ALICE", f"arn:aws:iam::{ACCT}:user/a?ice",
               f"arn:aws:iam::{ACCT}:role/r", f"arn:aws:iam::{ACCT}:group/g",
               f"arn:aws:sts::{ACCT}:assumed-role/r/s", f"arn:aws:sts::{ACCT}:federated-user/f",
               "arn:aws:iam::1:root", "alice", "", "arn:aws-cn:iam::111122223333:root",
               f"arn:aws:iam::{ACCT}:user/alice\n", f"arn:aws:iam::{ACCT}:user/\u00e5"]
_PRINCIPAL_KINDS = ["AWS", "Service", "Federated", "CanonicalUser", "Users", ""]
_FRAGMENTS = ["*", "s3:GetObject", "kms:*", "iam:Get*", "GetObject", "", "s3:", ":",
              "arn:aws:s3:::b/*", "b/*", "arn:aws:kms:us-east-1:1:key/x", "arn:${aws:username}"]
_OPERATORS = ["StringEquals", "StringLikeIfExists", "ForAnyValue:StringLike",
              "ForAllValues:ArnEquals", "Null", "NullIfExists", "Bool", "IpAddress",
              "NumericLessThan", "DateGreaterThan", "Bogus", "Other:StringEquals", "IfExists",
              "BinaryEquals", ""]
_CONDITION_KEYS = ["aws:SourceIp", "s3:prefix", "nokey", "", "kms:EncryptionContext:a",
                   "aws:CurrentTime"]
_KEYS = ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
         "NotResource", "Condition", "Extra", "Version", "Statement", "Id"]


def _text(r, n: int = 12) -> str:
    return "".join(r.choice(_CHARS) for _ in range(r.randrange(n)))


def _json(r, depth: int = 3):
    """Any JSON value (and a few Python values json.dumps accepts: nan, big ints)."""
    k = r.randrange(10 if depth > 0 else 7)
    if k == 0:
        return None
    if k == 1:
        return r.random() < 0.5
    if k == 2:
        return r.choice([0, -1, 2 ** 70, r.randrange(-10 ** 6, 10 ** 6)])
    if k == 3:
        return r.choice([0.5, float("nan"), float("inf"), -0.0, 1e308])
    if k in (4, 5, 6):
        return r.choice([_text(r), r.choice(_FRAGMENTS), r.choice(_PRINCIPALS)])
    if k in (7, 8):
        return [_json(r, depth - 1) for _ in range(r.randrange(4))]
    return {r.choice([_text(r, 5), r.choice(_KEYS)]): _json(r, depth - 1)
            for _ in range(r.randrange(4))}


def _some(r, pool: list) -> object:
    """A value from ``pool``, a list of them, or any JSON."""
    k = r.randrange(6)
    if k < 3:
        return r.choice(pool)
    if k < 5:
        return [r.choice(pool) for _ in range(r.randrange(4))]
    return _json(r, 2)


def _principal(r) -> object:
    k = r.randrange(6)
    if k == 0:
        return "*"
    if k == 1:
        return _json(r, 2)
    return {r.choice(_PRINCIPAL_KINDS): _some(r, _PRINCIPALS) for _ in range(r.randrange(1, 3))}


def _condition(r) -> object:
    if r.random() < 0.2:
        return _json(r, 2)
    return {r.choice(_OPERATORS): {r.choice(_CONDITION_KEYS): _some(r, _FRAGMENTS + ["10.0.0.0/8",
                                                                                  "true", "1"])
                                   for _ in range(r.randrange(3))}
            for _ in range(r.randrange(1, 3))}


_VALID_CONDITIONS = [
    {"StringEquals": {"aws:username": "alice"}},
    {"StringLike": {"s3:prefix": ["home/*", "${aws:username}/*"]}},
    {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.1"]}},
    {"NotIpAddress": {"aws:SourceIp": "not-an-ip"}},
    {"Bool": {"aws:SecureTransport": "false"}},
    {"NumericLessThan": {"s3:max-keys": "10"}},
    {"NumericEquals": {"s3:max-keys": "ten"}},
    {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
    {"DateLessThan": {"aws:CurrentTime": "yesterday"}},
    {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["a", "b"]}},
    {"ForAnyValue:StringLike": {"kms:EncryptionContext:a": "*"}},
    {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}},
    {"ArnEquals": {"aws:PrincipalArn": "not-an-arn"}},
    {"Null": {"s3:x-amz-server-side-encryption": "true"}},
    {"BinaryEquals": {"aws:x": "not base64!"}},
    {"StringEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
]


def _valid_statement(r) -> dict:
    st: dict = {"Effect": r.choice(["Allow", "Deny"]),
                r.choice(["Action", "NotAction"]): r.choice(
                    ["*", "s3:GetObject", "kms:*", ["s3:Get*", "kms:Encrypt"], "iam:*"]),
                r.choice(["Resource", "NotResource"]): r.choice(
                    ["*", "arn:aws:s3:::b/*", ["arn:aws:s3:::b", "arn:aws:s3:::b/${aws:username}"],
                     "arn:aws:kms:*:*:key/*"])}
    k = r.randrange(4)
    if k == 1:
        st["Principal"] = r.choice(["*", {"AWS": r.choice(_PRINCIPALS)},
                                    {"AWS": r.sample(_PRINCIPALS, 2)},
                                    {"Service": "s3.amazonaws.com"}])
    elif k == 2:
        st["Effect"] = "Deny"
        st["NotPrincipal"] = {"AWS": r.sample(_PRINCIPALS, r.randrange(1, 3))}
    if r.random() < 0.5:
        st["Condition"] = {}
        for c in r.sample(_VALID_CONDITIONS, r.randrange(1, 3)):
            st["Condition"].update(c)
    if r.random() < 0.3:
        st["Sid"] = r.choice(["a", "b", "Sid1"])
    return st


def _statement(r) -> dict:
    """A valid statement with 0-2 mutations: an element replaced, dropped or added."""
    st = _valid_statement(r)
    makers = {"Sid": lambda: r.choice(["a", "", 1]),
              "Effect": lambda: r.choice(["allow", None, ["Allow"], "Deny"]),
              "Principal": lambda: _principal(r), "NotPrincipal": lambda: _principal(r),
              "Action": lambda: _some(r, _FRAGMENTS), "NotAction": lambda: _some(r, _FRAGMENTS),
              "Resource": lambda: _some(r, _FRAGMENTS),
              "NotResource": lambda: _some(r, _FRAGMENTS),
              "Condition": lambda: _condition(r), "Extra": lambda: _json(r, 1)}
    for _ in range(r.choice([0, 0, 1, 1, 2])):
        name = r.choice(list(makers))
        if name in st and r.random() < 0.3:
            del st[name]
        else:
            st[name] = makers[name]()
    return st


def near_valid(r) -> dict:
    """Usually one to three (mutated) statements under a good Version; sometimes worse."""
    doc: dict = {"Statement": (_statement(r) if r.random() < 0.4 else
                               [_statement(r) for _ in range(r.choice([0, 1, 1, 2, 3]))])}
    if r.random() < 0.9:
        doc["Version"] = r.choice(["2012-10-17", "2012-10-17", "2008-10-17", "2020-01-01", 1])
    if r.random() < 0.1:
        doc["Id"] = _json(r, 1)
    if r.random() < 0.05:
        doc[_text(r, 4)] = _json(r, 1)
    return doc


def _nested(r) -> str:
    depth = r.choice([10, 999, 1001, 5000, 30_000])
    opener, closer = r.choice([("[", "]"), ('{"a":', "}")])
    body = opener * depth + "1" + closer * depth
    return ('{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":'
            '{"StringEquals":{"a:b":' + body + "}}}}") if r.random() < 0.5 else body


def document(r) -> object:
    """One input for the parser: a mapping, text or bytes, near-valid or arbitrary."""
    k = r.randrange(10)
    if k < 3:
        return near_valid(r)
    if k < 6:
        return json.dumps(near_valid(r))
    if k == 6:
        return json.dumps(_json(r))
    if k == 7:
        return r.choice([lambda: _text(r, 40),
                         lambda: bytes(r.randrange(256) for _ in range(r.randrange(40))),
                         lambda: json.dumps(near_valid(r)).encode() + b"\xff\xfe"])()
    if k == 8:
        return _nested(r)
    return r.choice([_json(r), '{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*",'
                               '"Condition":{"NumericEquals":{"a:b":' + "9" * 5000 + "}}}}"])


_RANDOM = st.integers(0, 2 ** 64).map(random.Random)


def _exists(arn: str) -> bool:
    return arn.endswith((":user/alice", ":user/team/bob"))


_CALLERS = [f"arn:aws:iam::{ACCT}:user/alice", f"arn:aws:iam::{ACCT}:root",
            f"arn:aws:iam::{OTHER}:user/ALICE", ""]
_ACTIONS = ["s3:GetObject", "kms:Encrypt", "iam:GetUser"]
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
_CONTEXTS = [{}, {"aws:SourceIp": "10.1.2.3", "s3:prefix": "home/alice/x",
                  "kms:EncryptionContext:a": "x", "kms:EncryptionContextKeys": ["a"],
                  "aws:SecureTransport": True, "s3:max-keys": 5},
             {"aws:SourceIp": "bogus", "s3:prefix": ["a", 1], "aws:username": "alice",
              "kms:ViaService": None}]

@FUZZ
@given(r=_RANDOM)
def test_parse_policy_raises_only_policy_error(r):
    kind, saving, lookup = r.choice(["identity", "resource"]), r.random() < 0.5, r.random() < 0.5
    doc = document(r)
    try:
        policy = parse_policy(doc, kind=kind, saving=saving,
                              principal_exists=_exists if lookup else None)
    except PolicyError as exc:
        assert isinstance(exc.message, str) and exc.message
        return
    for s in policy.statements:
        assert s.effect in ("Allow", "Deny")
        if saving or lookup:
            assert not (s.not_principal and s.effect == "Allow")
            assert all(p == "*" or ("*" not in p and "?" not in p)
                       for p in (s.principal.aws if s.principal else ()))
    # Whatever parses can be evaluated (a stored policy is evaluated on every request).
    request = AuthzRequest(principal_arn=r.choice(_CALLERS), action=r.choice(_ACTIONS),
                           resource=r.choice(["arn:aws:s3:::b/x", "*", KEY_ARN]),
                           context=r.choice(_CONTEXTS))
    identity, resource = ([policy], None) if kind == "identity" else ([], policy)
    decision = evaluate(request, identity, resource, resource_account=ACCT,
                        resource_policy_required=r.random() < 0.3, clock=lambda: 1.7e9)
    assert isinstance(decision.allowed, bool) and decision.explain()


_CALLER = Caller(f"arn:aws:iam::{ACCT}:user/alice", ACCT)


@FUZZ
@given(r=_RANDOM)
def test_key_policy_validation_raises_only_kms_errors(r):
    bypass = r.random() < 0.3
    doc = r.choice([lambda: json.dumps(near_valid(r)), lambda: json.dumps(near_valid(r)),
                    lambda: _text(r), lambda: json.dumps(_json(r)), lambda: _nested(r),
                    lambda: _json(r)])()
    try:
        policy = keypolicy.validate(doc, _exists)
        if not bypass:
            keypolicy.check_lockout(policy, _CALLER)
    except KMSError as exc:
        assert exc.type in ("MalformedPolicyDocumentException", "LimitExceededException")


# -- the IAM Query operation layer ------------------------------------------------------------

def _store() -> identity_mod.IdentityStore:
    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    conn.executescript(identity_mod._SCHEMA)
    store = identity_mod.IdentityStore(conn, b"k" * 32)
    for acct in (ACCT, OTHER):
        store.ensure_account(acct)
    store.create_user(ACCT, "alice")
    store.create_user(ACCT, "bob", "/team/")
    store.create_policy(OTHER, "theirs", '{"Statement":{"Effect":"Allow","Action":"s3:*",'
                                         '"Resource":"*"}}')
    return store


_STORE = _store()
_ROOT = Credential("AKIAROOT", "s", ACCT, f"arn:aws:iam::{ACCT}:root")
_USER = Credential("AKIAUSER", "s", ACCT, f"arn:aws:iam::{ACCT}:user/alice", "alice")
_PARAMS = ["UserName", "Path", "PathPrefix", "AccessKeyId", "Status", "PolicyName",
           "PolicyDocument", "PolicyArn", "VersionId", "Description", "Marker", "MaxItems"]
_VALUES = ["alice", "ALICE", "bob", "Bob", "nobody", "", "/", "/team/", "Active", "Inactive",
           "v1", "v2", "AKIAUNKNOWN", "p", f"arn:aws:iam::{ACCT}:policy/p",
           f"arn:aws:iam::{OTHER}:policy/theirs", "arn:aws:iam::aws:policy/AdministratorAccess",
           "arn:", "not an arn", "\u00e5lice", "alice\n", "a" * 65, "/a/\n", "/a//",
           '{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}']


def form(r) -> dict[str, str]:
    """Form params as parse_qsl yields them: str keys and values (no lone surrogates)."""
    out = {}
    for _ in range(r.randrange(7)):
        key = r.choice(_PARAMS) if r.random() < 0.85 else _text(r, 8)
        k = r.randrange(4)
        out[key] = (r.choice(_VALUES) if k < 2 else _text(r, 70) if k == 2
                    else json.dumps(near_valid(r)))
    return out


@FUZZ
@given(r=_RANDOM)
def test_iam_operations_raise_only_iam_errors(r):
    action, cred = r.choice(sorted(OPERATIONS)), r.choice([_ROOT, _USER])
    params = form(r)
    op = OPERATIONS[action]
    call = IAMCall(identity=_STORE, credential=cred, params={"Action": action, **params})
    try:
        resource = op.resource(call)
        assert isinstance(resource, str)
        result = op.run(call)
    except IAMError as exc:
        assert exc.code and 400 <= exc.status < 500, (exc.code, exc.message)
        return
    assert result is None or isinstance(result, dict)
    # Nothing of another account's is ever returned.
    assert f"arn:aws:iam::{OTHER}:policy/theirs" not in json.dumps(result, default=str)
