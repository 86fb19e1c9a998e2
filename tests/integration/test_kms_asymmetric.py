"""Asymmetric and HMAC keys through the KMS library on a real data dir: every key spec, Sign /
Verify checked outside Coffer with ``cryptography``, RSA-OAEP, ECDH, HMAC, data key pairs,
GenerateRandom, the error paths, the audit trail, and the known-answer vectors of
kms/crypto/asym.py."""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from kms.audit import MemorySink
from kms.crypto import asym
from kms.errors import (CustomKeyStoreNotFoundException, DisabledException,
                        InvalidCiphertextException, InvalidKeyUsageException,
                        KMSInvalidMacException, KMSInvalidSignatureException,
                        KMSInvalidStateException, UnsupportedOperationException,
                        ValidationException)
from kms.model import Caller
from tests.crypto_outside import verify_outside
from tests.kms_policies import KMS_ADMIN
from kms.service import KMS

ACCT = "111122223333"
ALICE = Caller(f"arn:aws:iam::{ACCT}:user/alice", ACCT, request_id="req-1",
               identity_policies=KMS_ADMIN)
VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "kms_asym.json").read_text())
RSA_SIGNING = [f"{f}_SHA_{n}" for f in ("RSASSA_PSS", "RSASSA_PKCS1_V1_5") for n in (256, 384, 512)]
EC_SIGNING = {"ECC_NIST_P256": "ECDSA_SHA_256", "ECC_NIST_P384": "ECDSA_SHA_384",
              "ECC_NIST_P521": "ECDSA_SHA_512", "ECC_SECG_P256K1": "ECDSA_SHA_256",
              "ECC_NIST_EDWARDS25519": "ED25519_SHA_512"}
MSG = b"the quick brown fox"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    sink = MemorySink()
    k = KMS.open(tmp_path_factory.mktemp("asym"), audit=sink)
    yield k, sink
    k.close()


@pytest.fixture(scope="module")
def kms(env):
    return env[0]


@pytest.fixture(scope="module")
def sink(env):
    return env[1]


@pytest.fixture(scope="module")
def rsa4096(kms):
    # RSA 4096 key generation takes seconds: once per module.
    return new_key(kms, "RSA_4096", "ENCRYPT_DECRYPT")


def new_key(kms, spec, usage):
    return kms.create_key(ALICE, key_spec=spec, key_usage=usage)["KeyMetadata"]




# -- known-answer vectors of the crypto room -----------------------------------------------------

@pytest.mark.parametrize("v", VECTORS["hmac"], ids=lambda v: v["algorithm"])
def test_hmac_vectors(v):
    key, msg, mac = (bytes.fromhex(v[n]) for n in ("key", "message", "mac"))
    assert asym.hmac_generate(key, v["algorithm"], msg) == mac
    asym.hmac_verify(key, v["algorithm"], msg, mac)
    with pytest.raises(asym.CryptoError):
        asym.hmac_verify(key, v["algorithm"], msg, mac[:-1] + bytes([mac[-1] ^ 1]))


@pytest.mark.parametrize("v", VECTORS["ed25519"], ids=lambda v: v["name"])
def test_ed25519_vectors(v):
    der = bytes.fromhex(v["private_pkcs8"])
    msg, sig = bytes.fromhex(v["message"]), bytes.fromhex(v["signature"])
    assert asym.sign(der, "ED25519_SHA_512", msg) == sig
    assert asym.public_der(der)[-32:].hex() == v["public_raw"]
    asym.verify(der, "ED25519_SHA_512", msg, sig)
    with pytest.raises(asym.CryptoError):
        asym.verify(der, "ED25519_SHA_512", msg + b"x", sig)


@pytest.mark.parametrize("spec,alg,n", [
    ("RSA_2048", "RSAES_OAEP_SHA_1", 214), ("RSA_2048", "RSAES_OAEP_SHA_256", 190),
    ("RSA_3072", "RSAES_OAEP_SHA_1", 342), ("RSA_3072", "RSAES_OAEP_SHA_256", 318),
    ("RSA_4096", "RSAES_OAEP_SHA_1", 470), ("RSA_4096", "RSAES_OAEP_SHA_256", 446)])
def test_oaep_limits_match_the_encrypt_doc(spec, alg, n):
    assert asym.oaep_max_plaintext(spec, alg) == n


# -- CreateKey / DescribeKey -----------------------------------------------------------------------

@pytest.mark.parametrize("spec,usage,field,algs", [
    ("RSA_2048", "ENCRYPT_DECRYPT", "EncryptionAlgorithms",
     ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]),
    ("RSA_3072", "SIGN_VERIFY", "SigningAlgorithms", RSA_SIGNING),
    ("ECC_NIST_P256", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_256"]),
    ("ECC_NIST_P384", "KEY_AGREEMENT", "KeyAgreementAlgorithms", ["ECDH"]),
    ("ECC_SECG_P256K1", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_256"]),
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "SigningAlgorithms", ["ED25519_SHA_512"]),
    ("HMAC_384", "GENERATE_VERIFY_MAC", "MacAlgorithms", ["HMAC_SHA_384"]),
])
def test_create_and_describe(kms, spec, usage, field, algs):
    md = new_key(kms, spec, usage)
    assert (md["KeySpec"], md["CustomerMasterKeySpec"], md["KeyUsage"]) == (spec, spec, usage)
    assert md[field] == algs
    others = {"EncryptionAlgorithms", "SigningAlgorithms", "KeyAgreementAlgorithms",
              "MacAlgorithms"} - {field}
    assert not others & md.keys()
    assert kms.describe_key(ALICE, md["KeyId"])["KeyMetadata"] == md


@pytest.mark.parametrize("spec,usage", [
    ("RSA_2048", "KEY_AGREEMENT"), ("RSA_2048", "GENERATE_VERIFY_MAC"),
    ("ECC_NIST_P256", "ENCRYPT_DECRYPT"), ("ECC_SECG_P256K1", "KEY_AGREEMENT"),
    ("ECC_NIST_EDWARDS25519", "KEY_AGREEMENT"), ("HMAC_256", "ENCRYPT_DECRYPT"),
    ("HMAC_256", "SIGN_VERIFY"), ("SYMMETRIC_DEFAULT", "SIGN_VERIFY")])
def test_invalid_spec_usage_pairs(kms, spec, usage):
    with pytest.raises(ValidationException, match=f"KeyUsage {usage} is not compatible with "
                                                  f"KeySpec {spec}"):
        new_key(kms, spec, usage)


def test_unsupported_specs_and_no_rotation(kms):
    with pytest.raises(UnsupportedOperationException):
        new_key(kms, "ML_DSA_65", "SIGN_VERIFY")
    with pytest.raises(ValidationException):
        new_key(kms, "RSA_1024", "SIGN_VERIFY")
    for spec, usage in (("ECC_NIST_P256", "SIGN_VERIFY"), ("HMAC_256", "GENERATE_VERIFY_MAC")):
        with pytest.raises(UnsupportedOperationException):
            kms.rotate_key_on_demand(ALICE, new_key(kms, spec, usage)["KeyId"])


# -- Sign / Verify ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", list(EC_SIGNING))
def test_ecc_sign_verify_outside(kms, spec):
    md = new_key(kms, spec, "SIGN_VERIFY")
    alg = EC_SIGNING[spec]
    pub = kms.get_public_key(ALICE, md["KeyId"])
    assert (pub["KeySpec"], pub["KeyUsage"], pub["SigningAlgorithms"]) == (spec, "SIGN_VERIFY",
                                                                           [alg])
    out = kms.sign(ALICE, md["KeyId"], MSG, alg)
    assert out["SigningAlgorithm"] == alg and out["KeyId"] == md["Arn"]
    verify_outside(pub["PublicKey"], alg, MSG, out["Signature"])
    assert kms.verify(ALICE, md["KeyId"], MSG, out["Signature"], alg)["SignatureValid"] is True
    if alg != "ED25519_SHA_512":
        digest = hashlib.new(alg[-7:].replace("_", "").lower(), MSG).digest()
        sig = kms.sign(ALICE, md["KeyId"], digest, alg, message_type="DIGEST")["Signature"]
        verify_outside(pub["PublicKey"], alg, MSG, sig)
        kms.verify(ALICE, md["KeyId"], digest, sig, alg, message_type="DIGEST")
        with pytest.raises(ValidationException, match="Digest is invalid length"):
            kms.sign(ALICE, md["KeyId"], digest[:-1], alg, message_type="DIGEST")
    else:
        with pytest.raises(ValidationException, match="DIGEST"):
            kms.sign(ALICE, md["KeyId"], bytes(64), alg, message_type="DIGEST")


def test_rsa_sign_every_algorithm_outside(kms):
    md = new_key(kms, "RSA_2048", "SIGN_VERIFY")
    pub = kms.get_public_key(ALICE, md["KeyId"])["PublicKey"]
    assert serialization.load_der_public_key(pub).key_size == 2048
    for alg in RSA_SIGNING:
        sig = kms.sign(ALICE, md["KeyId"], MSG, alg)["Signature"]
        assert len(sig) == 256
        verify_outside(pub, alg, MSG, sig)
        kms.verify(ALICE, md["KeyId"], MSG, sig, alg)
        digest = hashlib.new(alg[-7:].replace("_", "").lower(), MSG).digest()
        dsig = kms.sign(ALICE, md["KeyId"], digest, alg, message_type="DIGEST")["Signature"]
        verify_outside(pub, alg, digest, dsig, digest=True)
        with pytest.raises(KMSInvalidSignatureException):
            kms.verify(ALICE, md["KeyId"], MSG + b"!", sig, alg)


def test_sign_errors(kms):
    md = new_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    key = md["KeyId"]
    sig = kms.sign(ALICE, key, MSG, "ECDSA_SHA_256")["Signature"]
    with pytest.raises(KMSInvalidSignatureException):
        kms.verify(ALICE, key, b"other", sig, "ECDSA_SHA_256")
    with pytest.raises(KMSInvalidSignatureException):
        kms.verify(ALICE, key, MSG, b"\x30\x00", "ECDSA_SHA_256")
    with pytest.raises(InvalidKeyUsageException, match="incompatible with key spec"):
        kms.sign(ALICE, key, MSG, "ECDSA_SHA_384")
    with pytest.raises(InvalidKeyUsageException):
        kms.sign(ALICE, key, MSG, "RSASSA_PSS_SHA_256")
    with pytest.raises(ValidationException, match="enum value set"):
        kms.sign(ALICE, key, MSG, "ECDSA_SHA_1")
    with pytest.raises(ValidationException, match="less than or equal to 4096"):
        kms.sign(ALICE, key, bytes(4097), "ECDSA_SHA_256")
    kms.sign(ALICE, key, bytes(4096), "ECDSA_SHA_256")
    with pytest.raises(ValidationException):
        kms.sign(ALICE, key, MSG, "ECDSA_SHA_256", message_type="HASH")
    sym = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
    with pytest.raises(InvalidKeyUsageException):
        kms.sign(ALICE, sym, MSG, "ECDSA_SHA_256")
    with pytest.raises(InvalidKeyUsageException):
        kms.encrypt(ALICE, key, b"x")
    with pytest.raises(UnsupportedOperationException):
        kms.get_public_key(ALICE, sym)
    kms.disable_key(ALICE, key)
    with pytest.raises(DisabledException):
        kms.sign(ALICE, key, MSG, "ECDSA_SHA_256")
    with pytest.raises(DisabledException):
        kms.get_public_key(ALICE, key)
    kms.enable_key(ALICE, key)
    kms.schedule_key_deletion(ALICE, key, pending_window_in_days=7)
    with pytest.raises(KMSInvalidStateException, match="pending deletion"):
        kms.verify(ALICE, key, MSG, sig, "ECDSA_SHA_256")


# -- RSA encryption ----------------------------------------------------------------------------------

def test_rsa_encrypt_decrypt_and_limits(kms, rsa4096):
    key = rsa4096["KeyId"]
    pub = serialization.load_der_public_key(kms.get_public_key(ALICE, key)["PublicKey"])
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 4096
    for alg, h, limit in (("RSAES_OAEP_SHA_1", hashes.SHA1, 470),
                          ("RSAES_OAEP_SHA_256", hashes.SHA256, 446)):
        oaep = padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)
        outside = pub.encrypt(b"m" * limit, oaep)
        out = kms.decrypt(ALICE, outside, key_id=key, encryption_algorithm=alg)
        assert out == {"KeyId": rsa4096["Arn"], "Plaintext": b"m" * limit,
                       "EncryptionAlgorithm": alg}
        blob = kms.encrypt(ALICE, key, b"x" * limit, encryption_algorithm=alg)
        assert len(blob["CiphertextBlob"]) == 512 and blob["EncryptionAlgorithm"] == alg
        assert kms.decrypt(ALICE, blob["CiphertextBlob"], key_id=key,
                           encryption_algorithm=alg)["Plaintext"] == b"x" * limit
        with pytest.raises(ValidationException, match="too long"):
            kms.encrypt(ALICE, key, b"x" * (limit + 1), encryption_algorithm=alg)


def test_rsa_encrypt_errors(kms):
    md = new_key(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    key = md["KeyId"]
    with pytest.raises(InvalidKeyUsageException):
        kms.encrypt(ALICE, key, b"x")                       # SYMMETRIC_DEFAULT
    with pytest.raises(ValidationException, match="EncryptionContext"):
        kms.encrypt(ALICE, key, b"x", encryption_algorithm="RSAES_OAEP_SHA_1",
                    encryption_context={"a": "b"})
    blob = kms.encrypt(ALICE, key, b"x", encryption_algorithm="RSAES_OAEP_SHA_1")
    with pytest.raises(ValidationException, match="KeyId"):
        kms.decrypt(ALICE, blob["CiphertextBlob"], encryption_algorithm="RSAES_OAEP_SHA_1")
    with pytest.raises(InvalidCiphertextException):
        kms.decrypt(ALICE, blob["CiphertextBlob"], key_id=key,
                    encryption_algorithm="RSAES_OAEP_SHA_256")
    with pytest.raises(InvalidCiphertextException):
        kms.decrypt(ALICE, bytes(256), key_id=key, encryption_algorithm="RSAES_OAEP_SHA_1")
    with pytest.raises(InvalidKeyUsageException):
        kms.generate_data_key(ALICE, key, key_spec="AES_256")
    with pytest.raises(InvalidKeyUsageException):
        kms.sign(ALICE, key, MSG, "RSASSA_PSS_SHA_256")
    sym = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
    with pytest.raises(InvalidKeyUsageException):
        kms.decrypt(ALICE, blob["CiphertextBlob"], key_id=sym,
                    encryption_algorithm="RSAES_OAEP_SHA_1")
    kms.disable_key(ALICE, key)
    with pytest.raises(DisabledException):
        kms.encrypt(ALICE, key, b"x", encryption_algorithm="RSAES_OAEP_SHA_1")
    with pytest.raises(DisabledException):
        kms.decrypt(ALICE, blob["CiphertextBlob"], key_id=key,
                    encryption_algorithm="RSAES_OAEP_SHA_1")


# -- HMAC ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [224, 256, 384, 512])
def test_hmac_keys(kms, bits):
    md = new_key(kms, f"HMAC_{bits}", "GENERATE_VERIFY_MAC")
    alg = f"HMAC_SHA_{bits}"
    out = kms.generate_mac(ALICE, MSG, md["KeyId"], alg)
    assert out["MacAlgorithm"] == alg and len(out["Mac"]) == bits // 8
    assert kms.verify_mac(ALICE, MSG, md["KeyId"], alg, out["Mac"]) == {
        "KeyId": md["Arn"], "MacValid": True, "MacAlgorithm": alg}
    with pytest.raises(KMSInvalidMacException):
        kms.verify_mac(ALICE, MSG + b"!", md["KeyId"], alg, out["Mac"])
    wrong = "HMAC_SHA_256" if bits != 256 else "HMAC_SHA_512"
    with pytest.raises(InvalidKeyUsageException):
        kms.generate_mac(ALICE, MSG, md["KeyId"], wrong)
    with pytest.raises(InvalidKeyUsageException):
        kms.encrypt(ALICE, md["KeyId"], b"x")
    with pytest.raises(UnsupportedOperationException):
        kms.get_public_key(ALICE, md["KeyId"])


# -- ECDH ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,curve", [("ECC_NIST_P256", ec.SECP256R1),
                                        ("ECC_NIST_P384", ec.SECP384R1),
                                        ("ECC_NIST_P521", ec.SECP521R1)])
def test_derive_shared_secret(kms, spec, curve):
    md = new_key(kms, spec, "KEY_AGREEMENT")
    pub = kms.get_public_key(ALICE, md["KeyId"])
    assert pub["KeyAgreementAlgorithms"] == ["ECDH"]
    mine = ec.generate_private_key(curve())
    mine_der = mine.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    out = kms.derive_shared_secret(ALICE, md["KeyId"], "ECDH", mine_der)
    local = mine.exchange(ec.ECDH(), serialization.load_der_public_key(pub["PublicKey"]))
    assert out["SharedSecret"] == local
    assert out["KeyAgreementAlgorithm"] == "ECDH" and out["KeyOrigin"] == "AWS_KMS"
    other = ec.generate_private_key(ec.SECP256K1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValidationException):
        kms.derive_shared_secret(ALICE, md["KeyId"], "ECDH", other)
    with pytest.raises(ValidationException):
        kms.derive_shared_secret(ALICE, md["KeyId"], "ECDH", b"not a key")
    with pytest.raises(InvalidKeyUsageException):
        kms.sign(ALICE, md["KeyId"], MSG, "ECDSA_SHA_256")
    signer = new_key(kms, spec, "SIGN_VERIFY")["KeyId"]
    with pytest.raises(InvalidKeyUsageException):
        kms.derive_shared_secret(ALICE, signer, "ECDH", mine_der)


# -- data key pairs and random ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_P521",
                                  "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"])
def test_generate_data_key_pair(kms, spec):
    sym = kms.create_key(ALICE)["KeyMetadata"]
    ctx = {"purpose": "pair"}
    out = kms.generate_data_key_pair(ALICE, sym["KeyId"], spec, encryption_context=ctx)
    assert out["KeyId"] == sym["Arn"] and out["KeyPairSpec"] == spec
    private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], None)
    assert private.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo) == out["PublicKey"]
    back = kms.decrypt(ALICE, out["PrivateKeyCiphertextBlob"], encryption_context=ctx)
    assert back["Plaintext"] == out["PrivateKeyPlaintext"]
    with pytest.raises(InvalidCiphertextException):
        kms.decrypt(ALICE, out["PrivateKeyCiphertextBlob"])
    bare = kms.generate_data_key_pair_without_plaintext(ALICE, sym["KeyId"], spec)
    assert "PrivateKeyPlaintext" not in bare
    der = kms.decrypt(ALICE, bare["PrivateKeyCiphertextBlob"])["Plaintext"]
    assert serialization.load_der_private_key(der, None).public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo) == bare["PublicKey"]


def test_data_key_pair_errors_and_random(kms):
    sym = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
    with pytest.raises(ValidationException):
        kms.generate_data_key_pair(ALICE, sym, "RSA_1024")
    with pytest.raises(UnsupportedOperationException):
        kms.generate_data_key_pair(ALICE, sym, "SM2")
    signer = new_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")["KeyId"]
    with pytest.raises(InvalidKeyUsageException):
        kms.generate_data_key_pair(ALICE, signer, "ECC_NIST_P256")
    kms.disable_key(ALICE, sym)
    with pytest.raises(DisabledException):
        kms.generate_data_key_pair(ALICE, sym, "ECC_NIST_P256")
    assert len(kms.generate_random(ALICE, number_of_bytes=1024)["Plaintext"]) == 1024
    for bad in (0, 1025, None, True):
        with pytest.raises(ValidationException):
            kms.generate_random(ALICE, number_of_bytes=bad)
    with pytest.raises(CustomKeyStoreNotFoundException):
        kms.generate_random(ALICE, number_of_bytes=8, custom_key_store_id="cks-1234567890abcdef0")


def test_injected_rand_drives_hmac_keys_and_random(tmp_path):
    seq = iter(range(1, 10_000))

    def rand(n: int) -> bytes:
        return bytes([next(seq) % 256]) * n
    with KMS.open(tmp_path, rand=rand, audit=MemorySink()) as k:
        assert k.generate_random(ALICE, number_of_bytes=4)["Plaintext"] in {
            bytes([i]) * 4 for i in range(256)}


# -- audit and storage --------------------------------------------------------------------------------------

def test_audit_records_carry_no_secrets(kms, sink):
    md = new_key(kms, "HMAC_256", "GENERATE_VERIFY_MAC")
    secret_msg = b"audit-me-not-0123456789"
    mac = kms.generate_mac(ALICE, secret_msg, md["KeyId"], "HMAC_SHA_256")["Mac"]
    kms.verify_mac(ALICE, secret_msg, md["KeyId"], "HMAC_SHA_256", mac)
    signer = new_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")["KeyId"]
    sig = kms.sign(ALICE, signer, secret_msg, "ECDSA_SHA_256")["Signature"]
    with pytest.raises(KMSInvalidSignatureException):
        kms.verify(ALICE, signer, b"x", sig, "ECDSA_SHA_256")
    sym = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
    pair = kms.generate_data_key_pair(ALICE, sym, "ECC_NIST_P256")
    text = json.dumps(sink.records)
    import base64
    for secret in (secret_msg, mac, sig, pair["PrivateKeyPlaintext"]):
        assert secret.hex() not in text and base64.b64encode(secret).decode() not in text
    assert secret_msg.decode() not in text
    names = [r["eventName"] for r in sink.records]
    for op in ("GenerateMac", "VerifyMac", "Sign", "Verify", "GenerateDataKeyPair",
               "GetPublicKey", "DeriveSharedSecret", "GenerateRandom"):
        assert op in names, op
    sign = [r for r in sink.records if r["eventName"] == "Sign"][-1]
    assert sign["requestParameters"] == {"keyId": signer, "signingAlgorithm": "ECDSA_SHA_256",
                                         "messageType": "RAW"}
    assert sign["responseElements"] is None and sign["resources"][0]["ARN"].endswith(signer)
    failed = [r for r in sink.records if r["eventName"] == "Verify"][-1]
    assert failed["errorCode"] == "KMSInvalidSignatureException"


def test_private_material_is_wrapped_on_disk(tmp_path):
    with KMS.open(tmp_path, audit=MemorySink()) as k:
        md = k.create_key(ALICE, key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY")[
            "KeyMetadata"]
        k.sign(ALICE, md["KeyId"], MSG, "ECDSA_SHA_256")
        record = k._store.get_version(md["KeyId"], 1).material
        private = k._backend.unwrap_private(
            __import__("kms.backends", fromlist=["MaterialRef"]).MaterialRef(md["Arn"], 1,
                                                                               record))
    assert serialization.load_der_private_key(private, None)
    db = b"".join(p.read_bytes() for p in (tmp_path / "kms").glob("kms.db*"))
    assert private not in db and private[-32:] not in db
    assert hmac.compare_digest(record[:1], b"\x01")
