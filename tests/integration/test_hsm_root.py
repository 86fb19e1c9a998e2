"""The pkcs11 root key in a real SoftHSM2 token: created by init-hsm, wraps every key
version, never readable; migrate-root moves a file-rooted data dir into the token in one
transaction and leaves no root.key behind."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kms.crypto.pkcs11 import HSMBadPIN, Token, TokenConfig
from kms.crypto.rootkey import PKCS11RootKey, RootKeyError
from kms.model import Caller
from kms.rootkeys import HSMSettings, init_hsm, migrate_root_to_pkcs11
from kms.service import KMS
from tests.crypto_outside import wrap_import_material

ACCT = "111122223333"
ALICE = Caller(f"arn:aws:iam::{ACCT}:root", ACCT, request_id="req-1")  # authz is not the subject
TOKEN = "coffer-root"


def import_material(kms: KMS, key_id: str, material: bytes, **kw) -> dict:
    params = kms.get_parameters_for_import(ALICE, key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
    return kms.import_key_material(ALICE, key_id, params["ImportToken"],
                                   wrap_import_material(params, material, "RSAES_OAEP_SHA_256"), **kw)
ROOT = Path(__file__).resolve().parents[2]


def settings(softhsm, key_label: str, **kw) -> HSMSettings:
    return HSMSettings(module_path=softhsm.module, token_label=TOKEN, pin=softhsm.pin,
                       key_label=key_label, **kw)


def label(tmp_path: Path) -> str:
    return "root-" + os.urandom(4).hex()


def test_init_hsm_creates_sensitive_non_extractable_key(softhsm, tmp_path):
    s = settings(softhsm, label(tmp_path))
    key_id, created = init_hsm(s)
    assert created and key_id == f"pkcs11:{TOKEN}/{s.key_label}"
    assert init_hsm(s) == (key_id, False)
    with Token(s.token_config()) as token:
        assert token.key_attributes(s.key_label) == {
            "SENSITIVE": True, "EXTRACTABLE": False, "ALWAYS_SENSITIVE": True,
            "NEVER_EXTRACTABLE": True}
        import pkcs11
        # CKA_VALUE read through PKCS#11 is refused by the token.
        with pytest.raises(pkcs11.AttributeSensitive):
            token._run(lambda session: session.get_key(label=s.key_label)[
                pkcs11.Attribute.VALUE])


def test_pkcs11_root_wraps_everything_and_survives_reopen(softhsm, tmp_path):
    s = settings(softhsm, label(tmp_path), root_provider="pkcs11")
    init_hsm(s)
    kms = KMS.open(tmp_path, hsm=s)
    try:
        k = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(ALICE, k, b"secret data")["CiphertextBlob"]
        rsa = kms.create_key(ALICE, key_spec="RSA_2048",
                             key_usage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        sig = kms.sign(ALICE, rsa, b"m", "RSASSA_PSS_SHA_256", message_type="RAW")
    finally:
        kms.close()
    assert not (tmp_path / "kms" / "root.key").exists()
    db = sqlite3.connect(tmp_path / "kms" / "kms.db")
    assert dict(db.execute("SELECT name, value FROM settings")) == {
        "root_provider": "pkcs11", "root_token_label": TOKEN, "root_key_label": s.key_label}
    for (material,) in db.execute("SELECT material FROM key_versions"):
        assert material[0] == 0x02          # coffer-rootwrap/2: wrapped inside the token
    db.close()
    # Reopen without naming the provider: the data dir records it.
    kms = KMS.open(tmp_path, hsm=settings(softhsm, s.key_label))
    try:
        assert kms.decrypt(ALICE, blob)["Plaintext"] == b"secret data"
        assert kms.verify(ALICE, rsa, b"m", sig["Signature"], "RSASSA_PSS_SHA_256",
                          message_type="RAW")["SignatureValid"]
    finally:
        kms.close()
    with pytest.raises(RootKeyError, match="needs"):
        KMS.open(tmp_path)                  # no PKCS#11 settings: refused, never a new root
    with pytest.raises(RootKeyError, match="pkcs11"):
        KMS.open(tmp_path, hsm=settings(softhsm, s.key_label, root_provider="file"))


def test_missing_root_key_and_wrong_pin_are_refused(softhsm, tmp_path):
    with pytest.raises(RootKeyError, match="init-hsm"):
        KMS.open(tmp_path, hsm=settings(softhsm, "never-created", root_provider="pkcs11"))
    with pytest.raises(HSMBadPIN):
        Token(TokenConfig(softhsm.module, TOKEN, "wrong-pin-1"))


def test_root_wrap_is_bound_to_aad_and_key(softhsm, tmp_path):
    s = settings(softhsm, label(tmp_path))
    init_hsm(s)
    with Token(s.token_config()) as token:
        root = PKCS11RootKey.open(token, s.key_label)
        blob = root.wrap(b"k" * 32, b"aad-1")
        assert root.unwrap(blob, b"aad-1") == b"k" * 32
        from kms.crypto.aead import CryptoError
        for bad_blob, aad in ((blob, b"aad-2"), (blob[:-1] + bytes([blob[-1] ^ 1]), b"aad-1")):
            with pytest.raises(CryptoError):
                root.unwrap(bad_blob, aad)


def test_migrate_root_roundtrip(softhsm, tmp_path):
    kms = KMS.open(tmp_path)                # file root key
    try:
        sym = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
        kms.rotate_key_on_demand(ALICE, sym)
        old_blob = kms.encrypt(ALICE, sym, b"v2 data")["CiphertextBlob"]
        hmac_key = kms.create_key(ALICE, key_spec="HMAC_256",
                                  key_usage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
        mac = kms.generate_mac(ALICE, b"msg", hmac_key, "HMAC_SHA_256")["Mac"]
        ext = kms.create_key(ALICE, origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        import_material(kms, ext, os.urandom(32), expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE")
        ext_blob = kms.encrypt(ALICE, ext, b"imported")["CiphertextBlob"]
        pending = kms.create_key(ALICE, origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        kms.get_parameters_for_import(ALICE, pending, "RSAES_OAEP_SHA_256", "RSA_2048")
    finally:
        kms.close()
    root_file = tmp_path / "kms" / "root.key"
    old_root = root_file.read_bytes()
    s = settings(softhsm, label(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "kms", "migrate-root", "--to", "pkcs11",
         "--data-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **softhsm.env(TOKEN, COFFER_PKCS11_KEY_LABEL=s.key_label)})
    assert proc.returncode == 0, proc.stderr
    assert "records rewrapped" in proc.stdout and softhsm.pin not in proc.stdout + proc.stderr
    assert not root_file.exists()
    # No copy of the old root key anywhere in the data dir.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert old_root[1:] not in path.read_bytes(), path
    kms = KMS.open(tmp_path, hsm=settings(softhsm, s.key_label))
    try:
        assert kms.decrypt(ALICE, old_blob)["Plaintext"] == b"v2 data"
        assert kms.verify_mac(ALICE, b"msg", hmac_key, "HMAC_SHA_256", mac)["MacValid"]
        assert kms.decrypt(ALICE, ext_blob)["Plaintext"] == b"imported"
        assert kms.encrypt(ALICE, sym, b"after")["CiphertextBlob"]
    finally:
        kms.close()
    again = migrate_root_to_pkcs11
    with pytest.raises(RootKeyError, match="already"):
        again(tmp_path, settings(softhsm, s.key_label))


def test_migrate_root_rolls_back_on_failure(softhsm, tmp_path, monkeypatch):
    kms = KMS.open(tmp_path)
    try:
        k = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(ALICE, k, b"x")["CiphertextBlob"]
    finally:
        kms.close()
    # A record that does not unwrap aborts the whole migration: nothing changes.
    db = sqlite3.connect(tmp_path / "kms" / "kms.db")
    db.execute("INSERT INTO key_versions SELECT key_id, 2, creation_date, 'ON_DEMAND', "
               "backend, X'01' FROM key_versions")
    db.commit()
    db.close()
    with pytest.raises(Exception):
        migrate_root_to_pkcs11(tmp_path, settings(softhsm, label(tmp_path)))
    assert (tmp_path / "kms" / "root.key").exists()
    db = sqlite3.connect(tmp_path / "kms" / "kms.db")
    db.execute("DELETE FROM key_versions WHERE version=2")
    db.commit()
    db.close()
    kms = KMS.open(tmp_path)
    try:
        assert kms.decrypt(ALICE, blob)["Plaintext"] == b"x"
    finally:
        kms.close()
