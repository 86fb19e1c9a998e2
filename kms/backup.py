"""KMS backup and restore: ``coffer kms backup --out FILE`` / ``coffer kms restore FILE``.

What a backup holds, and what it never does (the key-export policy, README "Backup and
restore"): the KMS database as it is on disk, so every key version's material is still wrapped
by the root key; plus the root key itself when it is the file provider's ``root.key``, sealed
with everything else under the backup key. A PKCS#11 root key and the keys of custom key
stores (Origin AWS_CLOUDHSM) are non-extractable token objects: the backup names them (labels,
key ids) and restoring needs the same token. No plaintext key material, data key, PIN or
passphrase is ever written by this module.

Format ``coffer-kms-backup/1``: the header and the AEAD are ``kms.crypto.backup``'s (magic
"COFFERKB", version byte, scrypt parameters and salt or the PKCS#11 labels and wrapped backup
key, nonce; AES-256-GCM with AAD = header). Inside it, the payload::

    payload  = uint32_be len(manifest) ‖ manifest     UTF-8 JSON object, below
               ‖ uint16_be len(root) ‖ root           the coffer-rootkey/1 file (49 bytes), or
                                                      empty for a pkcs11 root key
               ‖ uint64_be len(db) ‖ db               a SQLite database: the kms.db snapshot
    manifest = {"format": "coffer-kms-backup/1", "created": ISO 8601, "schemaVersion": int,
                "root": {"provider": "file", "keyId": "file:<hex>"}
                      | {"provider": "pkcs11", "tokenLabel": str, "keyLabel": str},
                "counts": {"keys", "keyVersions", "aliases", "grants", "customKeyStores",
                           "importTokens": int},
                "hsmKeys": [{"keyId", "arn", "customKeyStoreId", "keyState"}],
                "customKeyStores": [{"customKeyStoreId", "name", "clusterId"}]}

Anything after ``db``, a manifest of another format, or a root key whose id is not the one the
database's wrapped records name, is refused.

The snapshot is SQLite's online backup API into an in-memory database (``Connection.backup``:
one read transaction, so it is consistent while a server writes in WAL mode), serialized; no
temporary file holds it. Restoring writes into ``<data-dir>/kms`` (0700): ``root.key`` and
``kms.db`` (0600) are staged in a private directory, checked (integrity_check, schema version,
every software key version unwraps under the restored root key), fsynced, then renamed in.
Restore only into a data dir whose KMS is empty (no kms.db, or one without any key, alias,
grant, custom key store or import token); stop the server first.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kms.backends.software import material_aad, private_aad
from kms.crypto.aead import CryptoError
from kms.crypto.backup import BackupCryptoError, BackupProtector
from kms.crypto.rootkey import FileRootKey, RootKeyError, secure_delete
from kms.model import KeySpec, Origin
from kms.store.sqlite import SCHEMA_VERSION

__all__ = ["FORMAT", "BackupError", "BackupSummary", "create_backup", "restore_backup",
           "read_backup"]

FORMAT = "coffer-kms-backup/1"
_U16, _U32, _U64 = struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">Q")
_ROOT_FILE_SIZE = 49          # coffer-rootkey/1: 0x01 ‖ id (16) ‖ key (32)
_ROOTWRAP_V1 = 0x01           # coffer-rootwrap/1 blobs start 0x01 ‖ root id (16)
_DATA_TABLES = ("keys", "aliases", "grants", "custom_key_stores", "import_tokens")


class BackupError(Exception):
    """A backup or restore that cannot proceed for a stated, non-cryptographic reason (no KMS
    in the data dir, a non-empty target, a file that exists)."""


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """The manifest of a backup (what ``coffer kms backup`` and ``restore`` print)."""

    manifest: dict[str, Any]
    size: int = 0

    @property
    def hsm_keys(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("hsmKeys", []))

    def lines(self) -> list[str]:
        m = self.manifest
        c = m["counts"]
        root = m["root"]
        where = (f"root key {root['keyId']} (file provider; sealed in the backup)"
                 if root["provider"] == "file" else
                 f"root key {root['tokenLabel']}/{root['keyLabel']} stays in its PKCS#11 "
                 "token (restore needs that token)")
        out = [f"{FORMAT}, created {m['created']}, schema v{m['schemaVersion']}",
               f"{c['keys']} keys, {c['keyVersions']} key versions, {c['aliases']} aliases, "
               f"{c['grants']} grants, {c['customKeyStores']} custom key stores", where]
        for k in m.get("hsmKeys", []):
            out.append(f"HSM-held (not in the backup; lives in custom key store "
                       f"{k['customKeyStoreId']}): {k['arn']} [{k['keyState']}]")
        return out


def _now_iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _snapshot(db_path: Path) -> bytes:
    if not db_path.is_file():
        raise BackupError(f"no KMS database at {db_path}")
    src = sqlite3.connect(db_path, timeout=30)
    dst = sqlite3.connect(":memory:")
    try:
        src.backup(dst)
        return _rollback_mode(dst.serialize())
    except sqlite3.Error as exc:
        raise BackupError(f"cannot snapshot {db_path}: {exc}") from None
    finally:
        dst.close()
        src.close()


def _rollback_mode(image: bytes) -> bytes:
    # Header bytes 18-19 (file format write/read version) are 2 for a WAL database, and an
    # in-memory database refuses such an image; 1 is the rollback journal
    # (sqlite.org/fileformat.html section 1.3.3). The key store turns WAL back on when it opens.
    if len(image) >= 20 and image[18:20] == b"\x02\x02":
        image = image[:18] + b"\x01\x01" + image[20:]
    return image


def _memory_db(data: bytes) -> sqlite3.Connection:
    con = sqlite3.connect(":memory:")
    try:
        con.deserialize(_rollback_mode(data))
        ok = con.execute("PRAGMA integrity_check").fetchone()
        if not ok or ok[0] != "ok":
            raise BackupError("the backed-up database fails SQLite's integrity check")
    except (sqlite3.Error, BackupError) as exc:
        con.close()
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"the backed-up database is not readable: {exc}") from None
    return con


def _setting(con: sqlite3.Connection, name: str) -> str | None:
    try:
        row = con.execute("SELECT value FROM settings WHERE name=?", (name,)).fetchone()
    except sqlite3.OperationalError:     # schema v1-v2 had no settings table
        return None
    return row[0] if row else None


def _count(con: sqlite3.Connection, table: str) -> int:
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:     # a table that an older schema version lacks
        return 0


def _software_versions(con: sqlite3.Connection) -> list[tuple[str, str, int, bytes]]:
    """(arn, key_spec, version, material) of every key version wrapped by the root key (not
    the references of HSM-held versions)."""
    return [(arn, spec, v, bytes(m)) for arn, spec, v, m in con.execute(
        "SELECT k.arn, k.key_spec, v.version, v.material FROM key_versions v "
        "JOIN keys k ON k.key_id = v.key_id WHERE k.origin != ?", (Origin.AWS_CLOUDHSM.value,))]


def _manifest(con: sqlite3.Connection, root: dict[str, str], now: float) -> dict[str, Any]:
    hsm = [{"keyId": r[0], "arn": r[1], "customKeyStoreId": r[2], "keyState": r[3]}
           for r in con.execute("SELECT key_id, arn, custom_key_store_id, key_state FROM keys "
                                "WHERE origin = ? ORDER BY key_id",
                                (Origin.AWS_CLOUDHSM.value,))]
    stores = []
    if _count(con, "custom_key_stores"):
        stores = [{"customKeyStoreId": r[0], "name": r[1], "clusterId": r[2]}
                  for r in con.execute("SELECT custom_key_store_id, name, cluster_id FROM "
                                       "custom_key_stores ORDER BY custom_key_store_id")]
    return {"format": FORMAT, "created": _now_iso(now),
            "schemaVersion": con.execute("PRAGMA user_version").fetchone()[0], "root": root,
            "counts": {"keys": _count(con, "keys"), "keyVersions": _count(con, "key_versions"),
                       "aliases": _count(con, "aliases"), "grants": _count(con, "grants"),
                       "customKeyStores": _count(con, "custom_key_stores"),
                       "importTokens": _count(con, "import_tokens")},
            "hsmKeys": hsm, "customKeyStores": stores}


def _root_section(con: sqlite3.Connection, kms_dir: Path) -> tuple[dict[str, str], bytes]:
    provider = _setting(con, "root_provider") or "file"
    if provider == "pkcs11":
        return ({"provider": "pkcs11", "tokenLabel": _setting(con, "root_token_label") or "",
                 "keyLabel": _setting(con, "root_key_label") or ""}, b"")
    try:
        root = (kms_dir / "root.key").read_bytes()
    except OSError as exc:
        raise BackupError(f"cannot read the root key {kms_dir / 'root.key'}: "
                          f"{exc.strerror}") from None
    if len(root) != _ROOT_FILE_SIZE or root[0] != 0x01:
        raise BackupError(f"{kms_dir / 'root.key'}: unknown or corrupt root key format")
    _check_root_id(con, root)
    return {"provider": "file", "keyId": "file:" + root[1:17].hex()}, root


def _check_root_id(con: sqlite3.Connection, root: bytes) -> None:
    # A snapshot taken while `migrate-root` ran, or a root.key swapped by hand, would pair the
    # database with a root key that cannot unwrap it: refuse rather than write a useless backup.
    for _, _, _, material in _software_versions(con):
        if material[:1] == bytes([_ROOTWRAP_V1]) and material[1:17] != root[1:17]:
            raise BackupError("the root key does not match the key material in the database "
                              "(was the root key migrated meanwhile?)")


def _pack(manifest: dict[str, Any], root: bytes, db: bytes) -> bytes:
    m = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return _U32.pack(len(m)) + m + _U16.pack(len(root)) + root + _U64.pack(len(db)) + db


def _unpack(payload: bytes) -> tuple[dict[str, Any], bytes, bytes]:
    # The payload was authenticated by the AEAD; a framing error still means a file written
    # by something else, so it gets the same opaque refusal.
    try:
        i = 0
        (n,) = _U32.unpack_from(payload, i)
        manifest = json.loads(payload[4:4 + n].decode("utf-8"))
        i = 4 + n
        (n,) = _U16.unpack_from(payload, i)
        root = payload[i + 2:i + 2 + n]
        i += 2 + n
        (n,) = _U64.unpack_from(payload, i)
        db = payload[i + 8:i + 8 + n]
        i += 8 + n
    except (struct.error, ValueError, UnicodeDecodeError):
        raise BackupCryptoError() from None
    if (i != len(payload) or len(db) != n or not isinstance(manifest, dict)
            or manifest.get("format") != FORMAT or len(root) not in (0, _ROOT_FILE_SIZE)):
        raise BackupCryptoError()
    return manifest, root, db


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_backup(data_dir: Path, out: Path, protector: BackupProtector, *,
                  clock: Callable[[], float] = time.time) -> BackupSummary:
    """Snapshot ``<data_dir>/kms`` into ``out`` (created 0600; an existing file is refused).
    Safe beside a running server. Raises ``BackupError``."""
    kms_dir = Path(data_dir) / "kms"
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} exists; choose a new file name")
    db = _snapshot(kms_dir / "kms.db")
    con = _memory_db(db)
    try:
        root_info, root = _root_section(con, kms_dir)
        manifest = _manifest(con, root_info, clock())
    finally:
        con.close()
    sealed = protector.seal(_pack(manifest, root, db))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        _write_private(tmp, sealed)
        # link() refuses to replace a file created meanwhile; the tmp name is ours alone.
        # Where the filesystem has no hard links, rename (after the check above) is next best.
        try:
            os.link(tmp, out)
        except FileExistsError:
            raise BackupError(f"{out} exists; choose a new file name") from None
        except OSError:
            os.rename(tmp, out)
    except OSError as exc:
        raise BackupError(f"cannot write {out}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(out.parent)
    return BackupSummary(manifest, len(sealed))


def read_backup(path: Path, protector: BackupProtector) -> tuple[BackupSummary, bytes, bytes]:
    """Open and authenticate a backup: (summary, root key file bytes, database bytes).
    Raises ``BackupCryptoError`` (opaque) or ``BackupError`` (unreadable file)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    manifest, root, db = _unpack(protector.open(data))
    return BackupSummary(manifest, len(data)), root, db


def _kms_is_empty(kms_dir: Path) -> bool:
    db = kms_dir / "kms.db"
    if not db.exists():
        return not any(kms_dir.glob("kms.db-*"))
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            return all(_count(con, t) == 0 for t in _DATA_TABLES) and bool(
                con.execute("SELECT 1 FROM sqlite_master WHERE name='keys'").fetchone())
        finally:
            con.close()
    except sqlite3.Error:
        return False


def _verify_root(con: sqlite3.Connection, root_path: Path) -> None:
    try:
        root = FileRootKey.open(root_path)
    except RootKeyError as exc:
        raise BackupError(f"the backed-up root key is not usable: {exc}") from None
    for arn, spec, version, material in _software_versions(con):
        aad = (material_aad(arn, version) if spec == KeySpec.SYMMETRIC_DEFAULT.value
               else private_aad(arn, version))
        try:
            root.unwrap(material, aad)
        except CryptoError:
            raise BackupError(f"key material of {arn} version {version} does not unwrap "
                              "under the backed-up root key") from None


def restore_backup(data_dir: Path, path: Path,
                   protector: BackupProtector) -> BackupSummary:
    """Restore ``path`` into ``<data_dir>/kms``, which must hold no KMS data. Raises
    ``BackupCryptoError`` (wrong passphrase or key, altered file) or ``BackupError``."""
    data_dir = Path(data_dir)
    kms_dir = data_dir / "kms"
    if kms_dir.exists() and not _kms_is_empty(kms_dir):
        raise BackupError(f"{kms_dir} already holds KMS data; restore only into an empty "
                          "data dir (stop the server, move that kms/ directory away)")
    summary, root, db = read_backup(path, protector)
    con = _memory_db(db)
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if not 1 <= version <= SCHEMA_VERSION:
            raise BackupError(f"the backup's schema version {version} is not one this build "
                              f"reads (1..{SCHEMA_VERSION})")
        provider = summary.manifest["root"].get("provider")
        if (provider == "file") != bool(root):
            raise BackupCryptoError()
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        kms_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(kms_dir, 0o700)
        stage = kms_dir / f".restore-{os.getpid()}-{os.urandom(4).hex()}"
        stage.mkdir(mode=0o700)
        try:
            _write_private(stage / "kms.db", db)
            if root:
                _write_private(stage / "root.key", root)
                _verify_root(con, stage / "root.key")
            _fsync_dir(stage)
            _install(kms_dir, stage, bool(root))
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    finally:
        con.close()
    return summary


def _install(kms_dir: Path, stage: Path, with_root: bool) -> None:
    # The empty KMS being replaced may have a WAL of its own; a stale -wal beside a new kms.db
    # would be replayed into it (sqlite.org/wal.html "the WAL file is part of the database").
    for name in ("kms.db-wal", "kms.db-shm", "kms.db-journal"):
        (kms_dir / name).unlink(missing_ok=True)
    if (kms_dir / "root.key").exists():
        secure_delete(kms_dir / "root.key")
    if with_root:
        os.rename(stage / "root.key", kms_dir / "root.key")
    # kms.db last: until it is in place the data dir has no KMS, so a crash before this rename
    # leaves a data dir that a second restore accepts.
    os.rename(stage / "kms.db", kms_dir / "kms.db")
    _fsync_dir(kms_dir)
