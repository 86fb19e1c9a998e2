"""Property-based fuzzing of the KMS library's operations with parameter values of any type
(issue 11, Tests): the KMS JSON face passes each decoded JSON value straight to the library's
keyword arguments, so ``kms.encrypt(caller, key_id={"a": [1]}, ...)`` is reachable by any
client. Over 10,000 seeded cases, every operation the JSON face serves is called with a mix of
wrong-typed and near-valid values (real key ids, ARNs, aliases, blobs, grant tokens, policies)
on a real SQLite KMS in a temp dir; only ``KMSError`` subclasses may come out (each is the AWS
``__type`` the face renders), never another exception and never KMSInternalException (either
would be a 500; the first finds were bytes in the audit record and lone surrogates reaching
SQLite).

Destructive operations (deletion, disabling, policy changes, grant removal, imports) are only
ever pointed at throwaway keys, so the other operations keep reaching past the key lookup.
"""
from __future__ import annotations

import inspect
import json
import random

import pytest
from hypothesis import given

from gateway.kms_api.handler import OPERATIONS
from kms.audit import MemorySink
from kms.audit.sinks import AuditWriteError
from kms.errors import KMSError, KMSInternalException
from kms.model import Caller
from kms.service import KMS
from tests.kms_fuzz_values import FUZZ, SEEDS, value

pytestmark = pytest.mark.fuzz

ACCT, OTHER = "111122223333", "444455556666"
CALLERS = (Caller(f"arn:aws:iam::{ACCT}:root", ACCT),
           Caller(f"arn:aws:iam::{ACCT}:user/nobody", ACCT),
           Caller(f"arn:aws:iam::{OTHER}:user/x", OTHER))
DESTRUCTIVE = {"schedule_key_deletion", "cancel_key_deletion", "disable_key",
               "put_key_policy", "delete_alias", "update_alias", "revoke_grant",
               "retire_grant", "delete_imported_key_material", "import_key_material",
               "update_primary_region", "replicate_key", "disable_key_rotation",
               "untag_resource", "tag_resource", "update_key_description", "enable_key",
               "rotate_key_on_demand", "enable_key_rotation", "create_alias"}
METHODS = sorted(m for m in OPERATIONS.values() if hasattr(KMS, m))


class World:
    """The keys, blobs and tokens near-valid values are drawn from."""

    def __init__(self, kms: KMS) -> None:
        root = CALLERS[0]
        mk = lambda **kw: kms.create_key(root, **kw)["KeyMetadata"]   # noqa: E731
        sym, mrk = mk(), mk(multi_region=True)
        rsa = mk(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT")
        ecc = mk(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY")
        hmac = mk(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC")
        agree = mk(key_spec="ECC_NIST_P256", key_usage="KEY_AGREEMENT")
        ext = mk(origin="EXTERNAL")
        kms.create_alias(root, "alias/fuzz", sym["KeyId"])
        self.blob = kms.encrypt(root, sym["KeyId"], b"fuzz", encryption_context={"a": "1"})[
            "CiphertextBlob"]
        grant = kms.create_grant(root, sym["KeyId"], CALLERS[1].principal_arn,
                                 ["Encrypt", "Decrypt", "CreateGrant"],
                                 constraints={"EncryptionContextSubset": {"a": "1"}})
        self.keys = [k["KeyId"] for k in (sym, mrk, rsa, ecc, hmac, agree)] + [
            sym["Arn"], "alias/fuzz", f"arn:aws:kms:us-east-1:{ACCT}:alias/fuzz", "alias/aws/s3",
            f"arn:aws:kms:us-east-1:{OTHER}:key/{sym['KeyId']}", "alias/none", "mrk-0"]
        self.throwaway = [mk()["KeyId"] for _ in range(3)] + [ext["KeyId"]]
        self.token, self.grant_id = grant["GrantToken"], grant["GrantId"]
        self.public_key = kms.get_public_key(root, agree["KeyId"])["PublicKey"]

    def near(self, method: str, param: str) -> tuple:
        """Near-valid values of one parameter."""
        if param in ("key_id", "target_key_id", "destination_key_id", "source_key_id"):
            keys = self.throwaway if method in DESTRUCTIVE else self.keys
            return tuple(keys) + (None, "", "1234abcd-12ab-34cd-56ef-1234567890ab")
        flipped = bytearray(self.blob)
        flipped[-1] ^= 1
        by_name: dict[str, tuple] = {
            "ciphertext_blob": (self.blob, bytes(flipped), self.blob[:20], b"", b"\x01"),
            "encryption_context": ({"a": "1"}, {}, {"A": "1"}, {"a": 1}, {"": "x"}),
            "grant_tokens": ([self.token], [self.token] * 11, [""], []),
            "grant_token": (self.token, "", "eA=="),
            "grant_id": (self.grant_id, "0" * 64, "x"),
            "policy": (json.dumps({"Version": "2012-10-17", "Statement": []}), "{", "",
                       json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                                  "Action": "kms:*", "Resource": "*"}]})),
            "tags": ([{"TagKey": "k", "TagValue": "v"}], [{"TagKey": "aws:x"}], [1], [{}]),
            "tag_keys": (["k"], [1], ["k"] * 60),
            "operations": (["Encrypt"], ["Decrypt", "CreateGrant"], ["Fly"], [], ["Sign"]),
            "constraints": ({"EncryptionContextSubset": {"a": "1"}},
                            {"EncryptionContextEquals": {"a": "1", "b": "2"}},
                            {"EncryptionContextSubset": None}, {"Other": {}}),
            "grantee_principal": (CALLERS[1].principal_arn, ACCT, "s3.amazonaws.com", "*"),
            "retiring_principal": (CALLERS[2].principal_arn, OTHER, "x"),
            "key_spec": ("AES_256", "AES_128", "SYMMETRIC_DEFAULT", "HMAC_256"),
            "key_pair_spec": ("ECC_NIST_P256", "ECC_SECG_P256K1", "SM2", "RSA_1"),
            "key_usage": ("ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC"),
            "origin": ("AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"),
            "encryption_algorithm": ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_256", "SM2PKE"),
            "signing_algorithm": ("ECDSA_SHA_256", "RSASSA_PSS_SHA_256"),
            "mac_algorithm": ("HMAC_SHA_256", "HMAC_SHA_512"),
            "key_agreement_algorithm": ("ECDH",),
            "public_key": (self.public_key, self.public_key[:-1], b"\x30"),
            "message_type": ("RAW", "DIGEST", "EXTERNAL_MU"),
            "wrapping_algorithm": ("RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_256"),
            "wrapping_key_spec": ("RSA_2048", "RSA_3072"),
            "replica_region": ("us-west-2", "eu-west-1", "xx"),
            "primary_region": ("us-west-2", "us-east-1"),
            "number_of_bytes": (1, 32, 1024, 1025, 0),
            "limit": (1, 1000, 0),
            "pending_window_in_days": (7, 30, 6),
            "rotation_period_in_days": (90, 2560, 89),
            "alias_name": ("alias/fuzz", "alias/new", "alias/aws/x", "alias/"),
            "policy_name": ("default", "other"),
            "marker": ("1", "0", "x"),
        }
        if param in by_name:
            return by_name[param]
        if param in ("plaintext", "message", "signature", "mac", "import_token",
                     "encrypted_key_material"):
            return (b"x", b"x" * 4097, b"")
        return ()


class TrailEncodingSink(MemorySink):
    """Encodes each record as the on-disk trail does (UTF-8 JSON lines), so a record the trail
    could not write fails the call here too; keeps nothing (10,000 cases)."""

    def emit(self, event) -> None:
        try:
            json.dumps(event.to_record(), ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise AuditWriteError(f"unserializable audit event: {exc}") from None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    kms = KMS.open(tmp_path_factory.mktemp("kms-fuzz"), audit=TrailEncodingSink())
    try:
        yield kms, World(kms)
    finally:
        kms.close()


def _call(kms: KMS, w: World, seed: int) -> tuple[str, dict]:
    rng = random.Random(seed)
    method = rng.choice(METHODS)
    params = [p for p in inspect.signature(getattr(kms, method)).parameters.values()
              if p.name not in ("self", "caller")]
    kwargs = {}
    for p in params:
        required = p.default is inspect.Parameter.empty
        if required or rng.random() < 0.5:
            kwargs[p.name] = value(rng.getrandbits(64), w.near(method, p.name))
    return method, kwargs


@FUZZ
@given(SEEDS)
def test_operations_only_raise_kms_errors(world, seed):
    kms, w = world
    rng = random.Random(seed)
    caller = CALLERS[rng.choice((0, 0, 0, 1, 2))]
    method, kwargs = _call(kms, w, seed)
    try:
        getattr(kms, method)(caller, **kwargs)
    except KMSInternalException:
        raise           # the JSON face renders it as a 500: a bug, like any other exception
    except KMSError:
        pass


def test_fuzz_reaches_past_validation(tmp_path):
    """The near-valid values make a fair share of calls succeed (the fuzz is not all type
    errors): on a fresh KMS, at least 1 in 15 of 300 cases returns normally."""
    with KMS.open(tmp_path, audit=TrailEncodingSink()) as kms:
        w = World(kms)
        ok = 0
        for seed in range(300):
            method, kwargs = _call(kms, w, seed)
            try:
                getattr(kms, method)(CALLERS[0], **kwargs)
                ok += 1
            except KMSError:
                pass
    assert ok >= 20, ok


def test_cases_the_fuzz_found(tmp_path):
    """Each once answered KMSInternalException (a 500): a bytes value (possible for any caller
    of the library; the JSON face decodes base64 only for blob parameters) or a lone surrogate
    went into the audit record, which the UTF-8 trail cannot write, or into SQLite."""
    with KMS.open(tmp_path, audit=TrailEncodingSink()) as kms:
        w = World(kms)
        root, bad = CALLERS[0], "x\ud800"
        cases = [
            (kms.list_keys, {"limit": b"1"}),
            (kms.list_aliases, {"limit": b"1", "marker": b"m"}),
            (kms.list_grants, {"key_id": w.keys[0], "limit": b"1"}),
            (kms.list_grants, {"key_id": w.keys[0], "grantee_principal": bad}),
            (kms.list_retirable_grants, {"retiring_principal": ACCT, "limit": b"1"}),
            (kms.list_key_policies, {"key_id": w.keys[0], "limit": b"1"}),
            (kms.list_resource_tags, {"key_id": w.keys[0], "limit": b"1"}),
            (kms.describe_custom_key_stores, {"limit": b"1"}),
            (kms.create_grant, {"key_id": w.keys[0], "grantee_principal": ACCT,
                                "operations": [b"Encrypt"]}),
            (kms.create_grant, {"key_id": w.keys[0], "grantee_principal": ACCT,
                                "operations": ["Encrypt"],
                                "constraints": {"EncryptionContextSubset": {"a": b"1"}}}),
            (kms.update_key_description, {"key_id": w.keys[0], "description": bad}),
            (kms.create_key, {"key_usage": bad}),
            (kms.untag_resource, {"key_id": w.throwaway[0], "tag_keys": [bad]}),
            (kms.revoke_grant, {"key_id": w.throwaway[0], "grant_id": bad}),
            (kms.delete_custom_key_store, {"custom_key_store_id": bad}),
            (kms.generate_random, {"number_of_bytes": 8, "custom_key_store_id": bad}),
            (kms.describe_key, {"key_id": bad}),
        ]
        for call, kwargs in cases:
            try:
                call(root, **kwargs)        # UntagResource of a key it lacks: nothing to do
            except KMSError as exc:
                assert exc.type != KMSInternalException.type, (call.__name__, kwargs)
