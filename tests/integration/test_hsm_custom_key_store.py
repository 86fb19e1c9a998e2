"""CloudHSM-style custom key stores against a real SoftHSM2 token: keys generated and used
only inside the token, the connection state machine, Unavailable keys, deletion destroying the
token object, concurrent use from threads, and a lost session being reopened."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from kms.audit import MemorySink
from kms.backends.pkcs11 import decode_ref
from kms.crypto.pkcs11 import Token, TokenConfig
from kms.errors import (CloudHsmClusterInUseException, CloudHsmClusterNotFoundException,
                        CustomKeyStoreHasCMKsException, CustomKeyStoreInvalidStateException,
                        CustomKeyStoreNameInUseException, CustomKeyStoreNotFoundException,
                        IncorrectTrustAnchorException, InvalidCiphertextException,
                        KMSInvalidStateException, UnsupportedOperationException,
                        ValidationException)
from kms.model import Caller
from kms.rootkeys import HSMSettings
from kms.service import KMS

ACCT, OTHER = "111122223333", "444455556666"
ALICE = Caller(f"arn:aws:iam::{ACCT}:root", ACCT, request_id="req-1")  # authz is not the subject
MALLORY = Caller(f"arn:aws:iam::{OTHER}:user/mallory", OTHER)
CLUSTER = "cluster-test0000000a"
# Any PEM certificate will do as a trust anchor (recorded, as AWS records it).
ANCHOR = ("-----BEGIN CERTIFICATE-----\n"
          "MIIBszCCAVmgAwIBAgIUVg0vYkPZ0QeTk3wFyaYf5zNw0nYwCgYIKoZIzj0EAwIw\n"
          "-----END CERTIFICATE-----\n")


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def kms(softhsm, tmp_path, clock):
    k = KMS.open(tmp_path, clock=clock, audit=MemorySink(),
                 hsm=HSMSettings(module_path=softhsm.module))
    yield k
    k.close()


@pytest.fixture
def store(kms, softhsm):
    sid = kms.create_custom_key_store(ALICE, "s1", cloud_hsm_cluster_id=CLUSTER,
                                      trust_anchor_certificate=ANCHOR,
                                      key_store_password=softhsm.pin)["CustomKeyStoreId"]
    kms.connect_custom_key_store(ALICE, sid)
    return sid


def describe(kms, sid):
    return kms.describe_custom_key_stores(ALICE, custom_key_store_id=sid)["CustomKeyStores"][0]


def hsm_key(kms, sid) -> dict:
    return kms.create_key(ALICE, origin="AWS_CLOUDHSM",
                          custom_key_store_id=sid)["KeyMetadata"]


def test_create_describe_connect(kms, softhsm, store):
    cks = describe(kms, store)
    assert cks["ConnectionState"] == "CONNECTED" and cks["CloudHsmClusterId"] == CLUSTER
    assert cks["CustomKeyStoreName"] == "s1" and cks["TrustAnchorCertificate"] == ANCHOR
    assert cks["CustomKeyStoreType"] == "AWS_CLOUDHSM" and store.startswith("cks-")
    assert "ConnectionErrorCode" not in cks
    with pytest.raises(CustomKeyStoreNameInUseException):
        kms.create_custom_key_store(ALICE, "s1", cloud_hsm_cluster_id="cluster-test0000000b",
                                    trust_anchor_certificate=ANCHOR,
                                    key_store_password=softhsm.pin)
    with pytest.raises(CloudHsmClusterInUseException):
        kms.create_custom_key_store(ALICE, "s2", cloud_hsm_cluster_id=CLUSTER,
                                    trust_anchor_certificate=ANCHOR,
                                    key_store_password=softhsm.pin)
    with pytest.raises(CloudHsmClusterNotFoundException):
        kms.create_custom_key_store(ALICE, "s3", cloud_hsm_cluster_id="no-such-token",
                                    trust_anchor_certificate=ANCHOR,
                                    key_store_password=softhsm.pin)
    with pytest.raises(IncorrectTrustAnchorException):
        kms.create_custom_key_store(ALICE, "s4", cloud_hsm_cluster_id="cluster-test0000000b",
                                    trust_anchor_certificate="not a certificate",
                                    key_store_password=softhsm.pin)
    with pytest.raises(ValidationException):
        kms.create_custom_key_store(ALICE, "s5", cloud_hsm_cluster_id="cluster-test0000000b",
                                    trust_anchor_certificate=ANCHOR, key_store_password="short")
    with pytest.raises(CustomKeyStoreNotFoundException):
        kms.describe_custom_key_stores(MALLORY, custom_key_store_id=store)
    assert kms.describe_custom_key_stores(MALLORY)["CustomKeyStores"] == []


def test_pin_is_never_stored_or_audited(kms, softhsm, store, tmp_path):
    kms.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert softhsm.pin.encode() not in path.read_bytes(), path


def test_key_lives_only_in_the_token(kms, softhsm, store, tmp_path):
    md = hsm_key(kms, store)
    assert md["Origin"] == "AWS_CLOUDHSM" and md["KeyState"] == "Enabled"
    assert md["CustomKeyStoreId"] == store and md["CloudHsmClusterId"] == CLUSTER
    k = md["KeyId"]
    blob = kms.encrypt(ALICE, k, b"top secret", encryption_context={"a": "b"})["CiphertextBlob"]
    assert kms.decrypt(ALICE, blob, encryption_context={"a": "b"})["Plaintext"] == b"top secret"
    with pytest.raises(InvalidCiphertextException):
        kms.decrypt(ALICE, blob, encryption_context={"a": "c"})
    dk = kms.generate_data_key(ALICE, k, key_spec="AES_256")
    assert kms.decrypt(ALICE, dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
    soft = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
    moved = kms.re_encrypt(ALICE, blob, soft, source_encryption_context={"a": "b"})
    back = kms.re_encrypt(ALICE, moved["CiphertextBlob"], k)
    assert kms.decrypt(ALICE, back["CiphertextBlob"])["Plaintext"] == b"top secret"
    # The store holds only a reference: token label + object label (the key ARN).
    db = sqlite3.connect(tmp_path / "kms" / "kms.db")
    (record, backend), = db.execute(
        "SELECT material, backend FROM key_versions WHERE key_id=?", (k,)).fetchall()
    db.close()
    assert decode_ref(record) == (CLUSTER, md["Arn"]) and backend == "pkcs11"
    with Token(TokenConfig(softhsm.module, CLUSTER, softhsm.pin)) as token:
        assert token.key_attributes(md["Arn"]) == {
            "SENSITIVE": True, "EXTRACTABLE": False, "ALWAYS_SENSITIVE": True,
            "NEVER_EXTRACTABLE": True}
        import pkcs11
        with pytest.raises(pkcs11.AttributeSensitive):       # CKA_VALUE read refused
            token._run(lambda s: s.get_key(label=md["Arn"])[pkcs11.Attribute.VALUE])
        with pytest.raises(pkcs11.KeyUnextractable):          # and it cannot be wrapped out
            def wrap_out(s):
                wrapper = s.generate_key(pkcs11.KeyType.AES, 256, store=False,
                                         template={pkcs11.Attribute.WRAP: True})
                return wrapper.wrap_key(s.get_key(label=md["Arn"]))
            token._run(wrap_out)
    # Everything in the data dir is not enough: without the token object nothing decrypts.
    copy = tmp_path.parent / (tmp_path.name + "-copy")
    import shutil
    kms.close()
    shutil.copytree(tmp_path, copy)
    with Token(TokenConfig(softhsm.module, CLUSTER, softhsm.pin)) as token:
        token.destroy_key(md["Arn"])
    other = KMS.open(copy, audit=MemorySink(), hsm=HSMSettings(module_path=softhsm.module))
    try:
        with pytest.raises(Exception):
            other.decrypt(ALICE, blob, encryption_context={"a": "b"})
    finally:
        other.close()


def test_aws_restrictions(kms, store):
    k = hsm_key(kms, store)["KeyId"]
    for kw in ({"key_spec": "RSA_2048", "key_usage": "ENCRYPT_DECRYPT"},
               {"key_spec": "HMAC_256", "key_usage": "GENERATE_VERIFY_MAC"},
               {"multi_region": True}):
        with pytest.raises(UnsupportedOperationException):
            kms.create_key(ALICE, origin="AWS_CLOUDHSM", custom_key_store_id=store, **kw)
    with pytest.raises(UnsupportedOperationException):
        kms.create_key(ALICE, origin="AWS_KMS", custom_key_store_id=store)
    with pytest.raises(UnsupportedOperationException):
        kms.enable_key_rotation(ALICE, k)
    with pytest.raises(UnsupportedOperationException):
        kms.rotate_key_on_demand(ALICE, k)
    with pytest.raises(UnsupportedOperationException):
        kms.get_parameters_for_import(ALICE, k, "RSAES_OAEP_SHA_256", "RSA_2048")
    with pytest.raises(CustomKeyStoreNotFoundException):
        kms.create_key(ALICE, origin="AWS_CLOUDHSM", custom_key_store_id="cks-0123456789abcdef0")
    assert len(kms.generate_random(ALICE, number_of_bytes=64,
                                   custom_key_store_id=store)["Plaintext"]) == 64


def test_disconnect_makes_keys_unavailable(kms, store):
    k = hsm_key(kms, store)["KeyId"]
    blob = kms.encrypt(ALICE, k, b"x")["CiphertextBlob"]
    kms.disable_key(ALICE, k)
    kms.enable_key(ALICE, k)
    kms.disconnect_custom_key_store(ALICE, store)
    assert describe(kms, store)["ConnectionState"] == "DISCONNECTED"
    assert kms.describe_key(ALICE, k)["KeyMetadata"]["KeyState"] == "Unavailable"
    for op in (lambda: kms.encrypt(ALICE, k, b"x"), lambda: kms.decrypt(ALICE, blob),
               lambda: kms.generate_data_key(ALICE, k, key_spec="AES_256")):
        with pytest.raises(KMSInvalidStateException, match="unavailable"):
            op()
    with pytest.raises(CustomKeyStoreInvalidStateException):
        kms.create_key(ALICE, origin="AWS_CLOUDHSM", custom_key_store_id=store)
    with pytest.raises(CustomKeyStoreInvalidStateException):
        kms.generate_random(ALICE, number_of_bytes=8, custom_key_store_id=store)
    kms.connect_custom_key_store(ALICE, store)
    assert kms.describe_key(ALICE, k)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(ALICE, blob)["Plaintext"] == b"x"


def test_failed_connection_codes(kms, softhsm):
    sid = kms.create_custom_key_store(ALICE, "bad", cloud_hsm_cluster_id="cluster-test0000000b",
                                      trust_anchor_certificate=ANCHOR,
                                      key_store_password="wrong-pin-7")["CustomKeyStoreId"]
    kms.connect_custom_key_store(ALICE, sid)
    cks = describe(kms, sid)
    assert cks["ConnectionState"] == "FAILED"
    assert cks["ConnectionErrorCode"] == "INVALID_CREDENTIALS"
    with pytest.raises(CustomKeyStoreInvalidStateException):
        kms.connect_custom_key_store(ALICE, sid)        # FAILED: disconnect first, as AWS
    with pytest.raises(CustomKeyStoreInvalidStateException):
        kms.update_custom_key_store(ALICE, sid, key_store_password=softhsm.pin)
    kms.disconnect_custom_key_store(ALICE, sid)
    kms.update_custom_key_store(ALICE, sid, key_store_password=softhsm.pin,
                                new_custom_key_store_name="good")
    kms.connect_custom_key_store(ALICE, sid)
    cks = describe(kms, sid)
    assert cks["ConnectionState"] == "CONNECTED" and cks["CustomKeyStoreName"] == "good"


def test_delete_store_refused_with_keys_and_key_deletion_destroys_token_object(
        kms, softhsm, store, clock):
    md = hsm_key(kms, store)
    with pytest.raises(CustomKeyStoreHasCMKsException):
        kms.delete_custom_key_store(ALICE, store)
    kms.schedule_key_deletion(ALICE, md["KeyId"], pending_window_in_days=7)
    clock.t += 8 * 86400
    kms.disconnect_custom_key_store(ALICE, store)
    assert kms.apply_due_deletions() == []         # waits while disconnected
    kms.connect_custom_key_store(ALICE, store)
    assert kms.apply_due_deletions() == [md["Arn"]]
    with Token(TokenConfig(softhsm.module, CLUSTER, softhsm.pin)) as token:
        assert not token.has_key(md["Arn"])
    with pytest.raises(CustomKeyStoreInvalidStateException):
        kms.delete_custom_key_store(ALICE, store)  # still connected
    kms.disconnect_custom_key_store(ALICE, store)
    kms.delete_custom_key_store(ALICE, store)
    assert kms.describe_custom_key_stores(ALICE)["CustomKeyStores"] == []


def test_concurrent_use_from_threads(kms, store):
    k = hsm_key(kms, store)["KeyId"]
    soft = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(100):
                key = k if j % 2 else soft
                data = f"{i}-{j}".encode()
                blob = kms.encrypt(ALICE, key, data)["CiphertextBlob"]
                assert kms.decrypt(ALICE, blob)["Plaintext"] == data
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_lost_session_is_reopened(kms, store):
    k = hsm_key(kms, store)["KeyId"]
    blob = kms.encrypt(ALICE, k, b"before")["CiphertextBlob"]
    token = kms._cks_backends[store].token
    # Pull the session out from under the pool, as a token reset or removal would.
    token._slot.session.close()
    assert kms.decrypt(ALICE, blob)["Plaintext"] == b"before"
    assert kms.decrypt(ALICE, kms.encrypt(ALICE, k, b"after")["CiphertextBlob"])[
        "Plaintext"] == b"after"


def test_restart_reconnects_connected_stores(softhsm, tmp_path):
    hsm = HSMSettings(module_path=softhsm.module)
    kms = KMS.open(tmp_path, audit=MemorySink(), hsm=hsm)
    try:
        sid = kms.create_custom_key_store(ALICE, "r", cloud_hsm_cluster_id="cluster-test0000000b",
                                          trust_anchor_certificate=ANCHOR,
                                          key_store_password=softhsm.pin)["CustomKeyStoreId"]
        kms.connect_custom_key_store(ALICE, sid)
        k = hsm_key(kms, sid)["KeyId"]
        blob = kms.encrypt(ALICE, k, b"r")["CiphertextBlob"]
    finally:
        kms.close()
    kms = KMS.open(tmp_path, audit=MemorySink(), hsm=hsm)
    try:
        assert kms.decrypt(ALICE, blob)["Plaintext"] == b"r"
        kms.schedule_key_deletion(ALICE, k, pending_window_in_days=7)
        kms.apply_due_deletions(now=kms._clock() + 8 * 86400)
        kms.disconnect_custom_key_store(ALICE, sid)
        kms.delete_custom_key_store(ALICE, sid)
    finally:
        kms.close()
