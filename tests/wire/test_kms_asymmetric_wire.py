"""Asymmetric and HMAC KMS keys over the AWS KMS JSON API: boto3's kms client and `aws kms`
against a real `coffer serve`. Every signature, MAC, ciphertext and shared secret is checked
outside Coffer with `cryptography` / `hmac` and the DER public key GetPublicKey returns."""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from tests.crypto_outside import verify_outside
from tests.wire.clients import aws_json, error_code
from tests.wire.conftest import make_client

pytestmark = pytest.mark.wire

MSG = b"signed over the wire"
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="session")
def rsa4096_key(server):
    # RSA 4096 key generation is slow: one key for the session.
    return make_client(server, "kms").create_key(KeySpec="RSA_4096",
                                                 KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]


def _fails(code: str, fn, **kw) -> ClientError:
    with pytest.raises(ClientError) as info:
        fn(**kw)
    assert error_code(info.value) == code, info.value.response
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return info.value




@pytest.mark.parametrize("spec,algs", [
    ("RSA_2048", [f"{f}_SHA_{n}" for f in ("RSASSA_PSS", "RSASSA_PKCS1_V1_5")
                  for n in (256, 384, 512)]),
    ("ECC_NIST_P256", ["ECDSA_SHA_256"]), ("ECC_NIST_P384", ["ECDSA_SHA_384"]),
    ("ECC_NIST_P521", ["ECDSA_SHA_512"]), ("ECC_SECG_P256K1", ["ECDSA_SHA_256"]),
    ("ECC_NIST_EDWARDS25519", ["ED25519_SHA_512"])])
def test_sign_verify_every_spec(kms, spec, algs):
    md = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert md["KeySpec"] == spec and md["SigningAlgorithms"] == algs
    assert "EncryptionAlgorithms" not in md
    pub = kms.get_public_key(KeyId=md["KeyId"])
    assert (pub["KeySpec"], pub["KeyUsage"], pub["SigningAlgorithms"]) == (spec, "SIGN_VERIFY",
                                                                           algs)
    for alg in algs:
        out = kms.sign(KeyId=md["KeyId"], Message=MSG, SigningAlgorithm=alg)
        assert out["SigningAlgorithm"] == alg and out["KeyId"] == md["Arn"]
        verify_outside(pub["PublicKey"], alg, MSG, out["Signature"])
        assert kms.verify(KeyId=md["KeyId"], Message=MSG, Signature=out["Signature"],
                          SigningAlgorithm=alg)["SignatureValid"] is True
        if alg != "ED25519_SHA_512":
            digest = hashlib.new(alg[-7:].replace("_", "").lower(), MSG).digest()
            sig = kms.sign(KeyId=md["KeyId"], Message=digest, MessageType="DIGEST",
                           SigningAlgorithm=alg)["Signature"]
            verify_outside(pub["PublicKey"], alg, digest, sig, digest=True)
    _fails("KMSInvalidSignatureException", kms.verify, KeyId=md["KeyId"], Message=b"other",
           Signature=out["Signature"], SigningAlgorithm=algs[0])


def test_sign_errors(kms):
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    _fails("InvalidKeyUsageException", kms.sign, KeyId=key, Message=MSG,
           SigningAlgorithm="ECDSA_SHA_512")
    _fails("ValidationException", kms.sign, KeyId=key, Message=b"x" * 31,
           MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    _fails("InvalidKeyUsageException", kms.encrypt, KeyId=key, Plaintext=b"x")
    _fails("InvalidKeyUsageException", kms.generate_mac, KeyId=key, Message=MSG,
           MacAlgorithm="HMAC_SHA_256")
    _fails("ValidationException", kms.create_key, KeySpec="ECC_NIST_P256",
           KeyUsage="ENCRYPT_DECRYPT")
    _fails("ValidationException", kms.create_key, KeySpec="HMAC_256")
    _fails("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=key)
    kms.disable_key(KeyId=key)
    _fails("DisabledException", kms.sign, KeyId=key, Message=MSG,
           SigningAlgorithm="ECDSA_SHA_256")


def test_rsa_encryption(kms, rsa4096_key):
    key = rsa4096_key["KeyId"]
    assert rsa4096_key["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    pub = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])
    for alg, h, limit in (("RSAES_OAEP_SHA_1", hashes.SHA1, 470),
                          ("RSAES_OAEP_SHA_256", hashes.SHA256, 446)):
        outside = pub.encrypt(b"o" * limit, padding.OAEP(padding.MGF1(h()), h(), None))
        out = kms.decrypt(CiphertextBlob=outside, KeyId=key, EncryptionAlgorithm=alg)
        assert out["Plaintext"] == b"o" * limit and out["EncryptionAlgorithm"] == alg
        blob = kms.encrypt(KeyId=key, Plaintext=b"i" * limit,
                           EncryptionAlgorithm=alg)["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob, KeyId=key,
                           EncryptionAlgorithm=alg)["Plaintext"] == b"i" * limit
        _fails("ValidationException", kms.encrypt, KeyId=key, Plaintext=b"i" * (limit + 1),
               EncryptionAlgorithm=alg)
    _fails("InvalidKeyUsageException", kms.encrypt, KeyId=key, Plaintext=b"x")
    _fails("ValidationException", kms.encrypt, KeyId=key, Plaintext=b"x",
           EncryptionAlgorithm="RSAES_OAEP_SHA_1", EncryptionContext={"a": "b"})
    _fails("InvalidCiphertextException", kms.decrypt, CiphertextBlob=b"\x00" * 512, KeyId=key,
           EncryptionAlgorithm="RSAES_OAEP_SHA_256")


def test_hmac(kms):
    for bits in (224, 256, 384, 512):
        md = kms.create_key(KeySpec=f"HMAC_{bits}",
                            KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
        alg = f"HMAC_SHA_{bits}"
        assert md["MacAlgorithms"] == [alg]
        mac = kms.generate_mac(KeyId=md["KeyId"], Message=MSG, MacAlgorithm=alg)["Mac"]
        assert len(mac) == bits // 8
        assert kms.verify_mac(KeyId=md["KeyId"], Message=MSG, MacAlgorithm=alg,
                              Mac=mac)["MacValid"] is True
        _fails("KMSInvalidMacException", kms.verify_mac, KeyId=md["KeyId"], Message=MSG,
               MacAlgorithm=alg, Mac=bytes(len(mac)))
    _fails("InvalidKeyUsageException", kms.generate_mac, KeyId=md["KeyId"], Message=MSG,
           MacAlgorithm="HMAC_SHA_256")
    _fails("UnsupportedOperationException", kms.get_public_key, KeyId=md["KeyId"])


def test_mac_is_deterministic_per_message(kms):
    # HMAC keys never leave Coffer; the primitive itself is checked against RFC 4231 vectors
    # (tests/integration, tests/vectors/kms_asym.json). Here: same message, same MAC.
    key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    a = kms.generate_mac(KeyId=key["KeyId"], Message=MSG, MacAlgorithm="HMAC_SHA_256")["Mac"]
    b = kms.generate_mac(KeyId=key["KeyId"], Message=MSG, MacAlgorithm="HMAC_SHA_256")["Mac"]
    c = kms.generate_mac(KeyId=key["KeyId"], Message=MSG + b".",
                         MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert hmac.compare_digest(a, b) and not hmac.compare_digest(a, c)


@pytest.mark.parametrize("spec,curve", [("ECC_NIST_P256", ec.SECP256R1),
                                        ("ECC_NIST_P384", ec.SECP384R1),
                                        ("ECC_NIST_P521", ec.SECP521R1)])
def test_derive_shared_secret(kms, spec, curve):
    md = kms.create_key(KeySpec=spec, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    assert md["KeyAgreementAlgorithms"] == ["ECDH"]
    theirs = serialization.load_der_public_key(kms.get_public_key(KeyId=md["KeyId"])["PublicKey"])
    mine = ec.generate_private_key(curve())
    out = kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH",
                                   PublicKey=mine.public_key().public_bytes(*SPKI))
    assert out["SharedSecret"] == mine.exchange(ec.ECDH(), theirs)
    assert out["KeyAgreementAlgorithm"] == "ECDH"
    _fails("ValidationException", kms.derive_shared_secret, KeyId=md["KeyId"],
           KeyAgreementAlgorithm="ECDH", PublicKey=b"junk")
    _fails("InvalidKeyUsageException", kms.sign, KeyId=md["KeyId"], Message=MSG,
           SigningAlgorithm="ECDSA_SHA_256")


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P384", "ECC_NIST_EDWARDS25519"])
def test_data_key_pairs(kms, spec):
    sym = kms.create_key()["KeyMetadata"]["KeyId"]
    ctx = {"tenant": "t1"}
    out = kms.generate_data_key_pair(KeyId=sym, KeyPairSpec=spec, EncryptionContext=ctx)
    assert out["KeyPairSpec"] == spec
    private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], None)
    assert private.public_key().public_bytes(*SPKI) == out["PublicKey"]
    assert kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"],
                       EncryptionContext=ctx)["Plaintext"] == out["PrivateKeyPlaintext"]
    bare = kms.generate_data_key_pair_without_plaintext(KeyId=sym, KeyPairSpec=spec,
                                                        EncryptionContext=ctx)
    assert "PrivateKeyPlaintext" not in bare
    der = kms.decrypt(CiphertextBlob=bare["PrivateKeyCiphertextBlob"],
                      EncryptionContext=ctx)["Plaintext"]
    assert serialization.load_der_private_key(der, None).public_key().public_bytes(
        *SPKI) == bare["PublicKey"]
    _fails("InvalidCiphertextException", kms.decrypt,
           CiphertextBlob=bare["PrivateKeyCiphertextBlob"])


def test_generate_random(kms):
    assert len(kms.generate_random(NumberOfBytes=1024)["Plaintext"]) == 1024
    _fails("ValidationException", kms.generate_random, NumberOfBytes=1025)
    _fails("CustomKeyStoreNotFoundException", kms.generate_random, NumberOfBytes=8,
           CustomKeyStoreId="cks-1234567890abcdef0")


def test_aws_cli_sign_verify_and_mac(server, tmp_path):
    def aws(*args):
        return aws_json(server, "kms", *args)

    key = aws("create-key", "--key-spec", "ECC_NIST_P256", "--key-usage",
              "SIGN_VERIFY")["KeyMetadata"]
    assert key["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    msg = tmp_path / "msg.bin"
    msg.write_bytes(MSG)
    sig = base64.b64decode(aws("sign", "--key-id", key["KeyId"], "--message",
                               f"fileb://{msg}", "--signing-algorithm",
                               "ECDSA_SHA_256")["Signature"])
    sig_file = tmp_path / "sig.bin"
    sig_file.write_bytes(sig)
    assert aws("verify", "--key-id", key["KeyId"], "--message", f"fileb://{msg}",
               "--signature", f"fileb://{sig_file}", "--signing-algorithm",
               "ECDSA_SHA_256")["SignatureValid"] is True
    pub = base64.b64decode(aws("get-public-key", "--key-id", key["KeyId"])["PublicKey"])
    verify_outside(pub, "ECDSA_SHA_256", MSG, sig)
    mac_key = aws("create-key", "--key-spec", "HMAC_512", "--key-usage",
                  "GENERATE_VERIFY_MAC")["KeyMetadata"]
    mac = aws("generate-mac", "--key-id", mac_key["KeyId"], "--message", f"fileb://{msg}",
              "--mac-algorithm", "HMAC_SHA_512")["Mac"]
    assert len(base64.b64decode(mac)) == 64
    rnd = aws("generate-random", "--number-of-bytes", "16")["Plaintext"]
    assert len(base64.b64decode(rnd)) == 16
