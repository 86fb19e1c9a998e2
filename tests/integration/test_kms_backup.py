"""KMS backup and restore on a real data dir (kms/backup.py, format coffer-kms-backup/1):
backup -> wipe kms/ -> restore -> old ciphertexts decrypt; a flipped byte anywhere or a wrong
passphrase is refused with one opaque error and writes nothing; a non-empty KMS is never
overwritten; the snapshot is consistent while the KMS is being written; HSM-held keys are
listed, not exported; the CLI exits 2 without a traceback or the passphrase in its output."""
from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kms.audit import MemorySink
from kms.backup import BackupError, create_backup, read_backup, restore_backup
from kms.crypto.backup import BackupCryptoError, PassphraseProtector, TokenProtector
from kms.crypto.pkcs11 import Token, TokenConfig
from kms.model import Caller
from kms.rootkeys import HSMSettings
from kms.service import KMS

ACCT = "111122223333"
ALICE = Caller(f"arn:aws:iam::{ACCT}:root", ACCT, request_id="req-1")  # authz is not the subject
CTX = {"aws:s3:arn": "arn:aws:s3:::bucket/object"}
PASS = "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[2]


def _populate(data_dir: Path) -> dict:
    """Keys of several kinds, ciphertexts under two versions of one key, a signature."""
    with KMS.open(data_dir, audit=MemorySink()) as kms:
        sym = kms.create_key(ALICE, description="backed up")["KeyMetadata"]["KeyId"]
        kms.create_alias(ALICE, "alias/backed-up", sym)
        v1 = kms.encrypt(ALICE, sym, b"before rotation", encryption_context=CTX)
        kms.rotate_key_on_demand(ALICE, sym)
        v2 = kms.encrypt(ALICE, "alias/backed-up", b"after rotation")["CiphertextBlob"]
        dk = kms.generate_data_key(ALICE, sym, key_spec="AES_256", encryption_context=CTX)
        rsa = kms.create_key(ALICE, key_spec="RSA_2048",
                             key_usage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        sig = kms.sign(ALICE, rsa, b"message", "RSASSA_PSS_SHA_256")["Signature"]
        hmac_key = kms.create_key(ALICE, key_spec="HMAC_256",
                                  key_usage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
        mac = kms.generate_mac(ALICE, b"m", hmac_key, "HMAC_SHA_256")["Mac"]
    return {"sym": sym, "v1": v1["CiphertextBlob"], "v2": v2, "dk": dk, "rsa": rsa,
            "sig": sig, "hmac": hmac_key, "mac": mac}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_backup_wipe_restore_decrypts_old_ciphertexts(tmp_path):
    data = tmp_path / "data"
    old = _populate(data)
    out = tmp_path / "kms.backup"
    summary = create_backup(data, out, PassphraseProtector(PASS))
    assert _mode(out) == 0o600
    assert summary.manifest["counts"]["keys"] == 3
    assert summary.manifest["counts"]["keyVersions"] == 4
    assert summary.manifest["root"]["provider"] == "file"
    assert summary.hsm_keys == []
    raw = out.read_bytes()
    assert raw.startswith(b"COFFERKB\x01\x01")
    # Neither the database nor the root key travel in clear.
    root_key = (data / "kms" / "root.key").read_bytes()
    assert root_key[17:] not in raw and b"SQLite format 3" not in raw

    shutil.rmtree(data / "kms")
    restored = restore_backup(data, out, PassphraseProtector(PASS))
    assert restored.manifest == summary.manifest
    assert _mode(data / "kms") == 0o700
    assert _mode(data / "kms" / "kms.db") == 0o600
    assert _mode(data / "kms" / "root.key") == 0o600
    assert not [p for p in (data / "kms").iterdir() if p.name.startswith(".restore")]
    with KMS.open(data, audit=MemorySink()) as kms:
        assert kms.decrypt(ALICE, old["v1"], encryption_context=CTX)["Plaintext"] == \
            b"before rotation"
        assert kms.decrypt(ALICE, old["v2"])["Plaintext"] == b"after rotation"
        assert kms.decrypt(ALICE, old["dk"]["CiphertextBlob"],
                           encryption_context=CTX)["Plaintext"] == old["dk"]["Plaintext"]
        assert kms.verify(ALICE, old["rsa"], b"message", old["sig"],
                          "RSASSA_PSS_SHA_256")["SignatureValid"]
        assert kms.verify_mac(ALICE, b"m", old["hmac"], "HMAC_SHA_256", old["mac"])["MacValid"]
        # The restored KMS keeps working: new versions, new keys.
        kms.rotate_key_on_demand(ALICE, old["sym"])
        assert kms.decrypt(ALICE, kms.encrypt(ALICE, "alias/backed-up", b"x")
                           ["CiphertextBlob"])["Plaintext"] == b"x"


def _tamper_offsets(size: int) -> list[int]:
    # magic, version, protector, scrypt log2_n, salt, nonce, first ciphertext byte, middle,
    # the tag's last byte.
    return [0, 8, 9, 10, 20, 50, 60, 61, size // 2, size - 1]


def test_tampered_or_wrong_passphrase_is_refused_and_writes_nothing(tmp_path):
    data = tmp_path / "data"
    _populate(data)
    out = tmp_path / "kms.backup"
    create_backup(data, out, PassphraseProtector(PASS))
    raw = out.read_bytes()
    target = tmp_path / "target"
    messages = set()
    for off in _tamper_offsets(len(raw)):
        bad = bytearray(raw)
        bad[off] ^= 0x01
        path = tmp_path / f"bad-{off}"
        path.write_bytes(bytes(bad))
        with pytest.raises(BackupCryptoError) as exc:
            restore_backup(target, path, PassphraseProtector(PASS))
        messages.add(str(exc.value))
    for cut in (0, 9, len(raw) - 1):
        (tmp_path / "short").write_bytes(raw[:cut])
        with pytest.raises(BackupCryptoError) as exc:
            restore_backup(target, tmp_path / "short", PassphraseProtector(PASS))
        messages.add(str(exc.value))
    with pytest.raises(BackupCryptoError) as exc:
        restore_backup(target, out, PassphraseProtector(PASS + "!"))
    messages.add(str(exc.value))
    assert len(messages) == 1          # one opaque error for all of them
    assert not (target / "kms" / "kms.db").exists()
    assert not (target / "kms" / "root.key").exists()


def test_restore_refuses_a_kms_that_holds_data(tmp_path):
    data = tmp_path / "data"
    _populate(data)
    out = tmp_path / "kms.backup"
    create_backup(data, out, PassphraseProtector(PASS))
    before = (data / "kms" / "kms.db").read_bytes(), (data / "kms" / "root.key").read_bytes()
    with pytest.raises(BackupError):
        restore_backup(data, out, PassphraseProtector(PASS))
    assert ((data / "kms" / "kms.db").read_bytes(),
            (data / "kms" / "root.key").read_bytes()) == before
    with pytest.raises(BackupError):
        create_backup(data, out, PassphraseProtector(PASS))      # never overwrites a backup


def test_restore_replaces_a_never_used_kms(tmp_path):
    """A data dir a server started in once has an empty kms.db and its own root.key; both
    give way to the backup's (nothing is wrapped by that root key)."""
    data = tmp_path / "data"
    old = _populate(data)
    out = tmp_path / "kms.backup"
    create_backup(data, out, PassphraseProtector(PASS))
    fresh = tmp_path / "fresh"
    KMS.open(fresh, audit=MemorySink()).close()
    restore_backup(fresh, out, PassphraseProtector(PASS))
    with KMS.open(fresh, audit=MemorySink()) as kms:
        assert kms.decrypt(ALICE, old["v2"])["Plaintext"] == b"after rotation"


def test_backup_is_consistent_while_the_kms_is_written(tmp_path):
    data = tmp_path / "data"
    _populate(data)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with KMS.open(data, audit=MemorySink()) as kms:
                while not stop.is_set():
                    kid = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
                    kms.rotate_key_on_demand(ALICE, kid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    try:
        outs = []
        for i in range(3):
            outs.append(tmp_path / f"live-{i}.backup")
            create_backup(data, outs[-1], PassphraseProtector(PASS))
    finally:
        stop.set()
        t.join()
    assert not errors
    for i, out in enumerate(outs):
        target = tmp_path / f"restored-{i}"
        summary = restore_backup(target, out, PassphraseProtector(PASS))
        con = sqlite3.connect(target / "kms" / "kms.db")
        keys, versions = con.execute("SELECT (SELECT count(*) FROM keys), "
                                     "(SELECT count(*) FROM key_versions)").fetchone()
        con.close()
        assert (keys, versions) == (summary.manifest["counts"]["keys"],
                                    summary.manifest["counts"]["keyVersions"])
        # Every key in the snapshot came with its material: each one still works.
        with KMS.open(target, audit=MemorySink()) as kms:
            for k in kms.list_keys(ALICE, limit=1000)["Keys"]:
                meta = kms.describe_key(ALICE, k["KeyId"])["KeyMetadata"]
                if meta["KeyUsage"] == "ENCRYPT_DECRYPT":
                    kms.encrypt(ALICE, k["KeyId"], b"ok")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    penv = {k: v for k, v in os.environ.items() if k != "COFFER_BACKUP_PASSPHRASE"}
    penv.update(env or {})
    return subprocess.run([sys.executable, "-m", "gateway.cli", "kms", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=penv,
                          stdin=subprocess.DEVNULL)


def test_cli_round_trip_and_opaque_refusal(tmp_path):
    data = tmp_path / "data"
    old = _populate(data)
    out = tmp_path / "cli.backup"
    r = _cli("backup", "--out", str(out), "--data-dir", str(data),
             env={"COFFER_BACKUP_PASSPHRASE": PASS})
    assert r.returncode == 0, r.stderr
    assert PASS not in r.stdout + r.stderr
    # No passphrase anywhere -> refused, nothing written.
    r = _cli("backup", "--out", str(tmp_path / "none"), "--data-dir", str(data))
    assert r.returncode == 1 and "COFFER_BACKUP_PASSPHRASE" in r.stderr
    assert not (tmp_path / "none").exists()
    r = _cli("backup", "--out", str(tmp_path / "weak"), "--data-dir", str(data),
             env={"COFFER_BACKUP_PASSPHRASE": "short"})
    assert r.returncode == 1 and not (tmp_path / "weak").exists()

    target = tmp_path / "target"
    wrong = tmp_path / "wrong-pass"
    wrong.write_text("not the passphrase\n")
    bad = tmp_path / "bad.backup"
    raw = bytearray(out.read_bytes())
    raw[len(raw) // 2] ^= 0x80
    bad.write_bytes(bytes(raw))
    refusals = []
    for args in (("restore", str(out), "--passphrase-file", str(wrong)),
                 ("restore", str(bad), "--passphrase-file", str(tmp_path / "pass"))):
        (tmp_path / "pass").write_text(PASS + "\n")
        r = _cli(*args, "--data-dir", str(target))
        assert r.returncode == 2
        assert "Traceback" not in r.stderr and r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1
        assert PASS not in r.stderr
        refusals.append(r.stderr)
    assert refusals[0] == refusals[1]
    assert not (target / "kms" / "kms.db").exists()

    r = _cli("restore", str(out), "--data-dir", str(data),
             env={"COFFER_BACKUP_PASSPHRASE": PASS})
    assert r.returncode == 2 and "already holds KMS data" in r.stderr

    r = _cli("restore", str(out), "--data-dir", str(target), "--passphrase-file",
             str(tmp_path / "pass"))
    assert r.returncode == 0, r.stderr
    with KMS.open(target, audit=MemorySink()) as kms:
        assert kms.decrypt(ALICE, old["v1"], encryption_context=CTX)["Plaintext"] == \
            b"before rotation"


# -- HSM: custom key store keys are listed, never exported; a PKCS#11 backup key ------------

CLUSTER = "cluster-test0000000b"
ANCHOR = ("-----BEGIN CERTIFICATE-----\n"
          "MIIBszCCAVmgAwIBAgIUVg0vYkPZ0QeTk3wFyaYf5zNw0nYwCgYIKoZIzj0EAwIw\n"
          "-----END CERTIFICATE-----\n")


def test_hsm_keys_listed_and_pkcs11_backup_key(softhsm, tmp_path):
    data = tmp_path / "data"
    with KMS.open(data, audit=MemorySink(), hsm=HSMSettings(module_path=softhsm.module)) as kms:
        sid = kms.create_custom_key_store(ALICE, "backup-test", cloud_hsm_cluster_id=CLUSTER,
                                          trust_anchor_certificate=ANCHOR,
                                          key_store_password=softhsm.pin)["CustomKeyStoreId"]
        kms.connect_custom_key_store(ALICE, sid)
        hsm_key = kms.create_key(ALICE, origin="AWS_CLOUDHSM",
                                 custom_key_store_id=sid)["KeyMetadata"]
        blob = kms.encrypt(ALICE, hsm_key["KeyId"], b"in the token")["CiphertextBlob"]
        soft = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
        soft_blob = kms.encrypt(ALICE, soft, b"in software")["CiphertextBlob"]
    token = Token(TokenConfig(softhsm.module, "coffer-root", softhsm.pin))
    label = "backup-" + os.urandom(4).hex()
    try:
        token.generate_key(label)
        out = tmp_path / "hsm.backup"
        summary = create_backup(data, out, TokenProtector(token, label))
        assert [k["arn"] for k in summary.hsm_keys] == [hsm_key["Arn"]]
        assert summary.manifest["customKeyStores"][0]["clusterId"] == CLUSTER
        assert any("HSM-held" in line and hsm_key["Arn"] in line for line in summary.lines())
        with pytest.raises(BackupCryptoError):
            read_backup(out, PassphraseProtector(PASS))       # it is not a passphrase backup
        other = "backup-" + os.urandom(4).hex()
        token.generate_key(other)
        with pytest.raises(BackupCryptoError):
            read_backup(out, TokenProtector(token, other))
        shutil.rmtree(data / "kms")
        restore_backup(data, out, TokenProtector(token, label))
    finally:
        token.close()
    with KMS.open(data, audit=MemorySink(), hsm=HSMSettings(module_path=softhsm.module)) as kms:
        assert kms.decrypt(ALICE, soft_blob)["Plaintext"] == b"in software"
        kms.connect_custom_key_store(ALICE, sid)
        assert kms.decrypt(ALICE, blob)["Plaintext"] == b"in the token"


def test_pkcs11_root_stays_in_the_token(softhsm, tmp_path):
    """With the pkcs11 root key the backup carries no root key at all: it names the token's
    key, and the restored data dir opens only with that token."""
    from kms.rootkeys import init_hsm
    hsm = HSMSettings(module_path=softhsm.module, token_label="coffer-root", pin=softhsm.pin,
                      key_label="root-" + os.urandom(4).hex(), root_provider="pkcs11")
    init_hsm(hsm)
    data = tmp_path / "data"
    with KMS.open(data, audit=MemorySink(), hsm=hsm) as kms:
        kid = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(ALICE, kid, b"under the token's root")["CiphertextBlob"]
    out = tmp_path / "p11root.backup"
    summary = create_backup(data, out, PassphraseProtector(PASS))
    assert summary.manifest["root"] == {"provider": "pkcs11", "tokenLabel": "coffer-root",
                                        "keyLabel": hsm.key_label}
    assert any("stays in its PKCS#11 token" in line for line in summary.lines())
    _, root, _ = read_backup(out, PassphraseProtector(PASS))
    assert root == b""
    shutil.rmtree(data / "kms")
    restore_backup(data, out, PassphraseProtector(PASS))
    assert not (data / "kms" / "root.key").exists()
    with KMS.open(data, audit=MemorySink(), hsm=HSMSettings(
            module_path=softhsm.module, pin=softhsm.pin)) as kms:
        assert kms.decrypt(ALICE, blob)["Plaintext"] == b"under the token's root"


def test_cli_pkcs11_backup_key(softhsm, tmp_path):
    data = tmp_path / "data"
    old = _populate(data)
    env = softhsm.env("cluster-test0000000a")
    label = "cli-backup-" + os.urandom(4).hex()
    out = tmp_path / "cli-p11.backup"
    r = _cli("backup", "--out", str(out), "--data-dir", str(data), "--pkcs11-key", label,
             env=env)
    assert r.returncode == 0, r.stderr
    assert "created in the token" in r.stderr and softhsm.pin not in r.stdout + r.stderr
    assert out.read_bytes()[9] == 0x02          # protector: pkcs11
    target = tmp_path / "target"
    r = _cli("restore", str(out), "--data-dir", str(target), env=env)   # the header names it
    assert r.returncode == 0, r.stderr
    with KMS.open(target, audit=MemorySink()) as kms:
        assert kms.decrypt(ALICE, old["v2"])["Plaintext"] == b"after rotation"
