"""SQLite key store (``<data_dir>/kms/kms.db``): WAL, foreign keys, one transaction per change.

Schema version 5 (``PRAGMA user_version``; a newer version on disk is refused; older ones are
migrated in place, one transaction, by the steps in ``_MIGRATIONS``)::

    keys(key_id PK, arn UNIQUE, account_id, creation_date, description, key_usage, key_spec,
         origin, key_manager, key_state, deletion_date, pending_window_days, policy,
         tags JSON [[k, v], ...], current_version,
         -- v2: automatic rotation and imported material (kms.lifecycle)
         rotation_period_days, next_rotation_date, expiration_model, valid_to, material_id,
         -- v3: the custom key store holding the key (Origin AWS_CLOUDHSM)
         custom_key_store_id,
         -- v5: the key's region; for a multi-Region key, its primary's (the row holds the
         -- primary's regional fields; material and rotation are shared by every replica)
         region)
    key_replicas(key_id -> keys ON DELETE CASCADE, region, creation_date, description,
                 key_state, deletion_date, pending_window_days, policy, tags)
                 PK (key_id, region)                                     -- v5
    key_versions(key_id -> keys ON DELETE CASCADE, version, creation_date, rotation_type,
                 backend, material BLOB)            PK (key_id, version)
    aliases(account_id, alias_name, target_key_id -> keys ON DELETE CASCADE, creation_date,
            last_updated_date, region)   PK (region, account_id, alias_name)  -- v5: + region
    import_tokens(token_id PK, key_id -> keys ON DELETE CASCADE, wrapping_algorithm,
                  wrapping_key_spec, private_key BLOB, valid_to)          -- v2
    custom_key_stores(custom_key_store_id PK, account_id, name, cluster_id, trust_anchor,
                      password BLOB, connection_state, connection_error_code, creation_date)
                      UNIQUE (account_id, name)                          -- v3
    settings(name PK, value)     -- v3: "root_provider" = file | pkcs11, "root_token_label",
                                 --     "root_key_label" (which root key wraps; no secrets)
    grants(grant_id PK, key_id -> keys ON DELETE CASCADE, issuing_account, name,
           creation_date, grantee_principal, retiring_principal, operations JSON,
           constraints JSON, region)                      -- v4 (kms.grants); v5: + region

A store object serves one region's namespace, as separate AWS regions are (a key id from one
region is NotFound in another); ``for_region`` gives a sibling on the same database. A
multi-Region key (``mrk-`` id) is one ``keys`` row (its primary) plus a ``key_replicas`` row per
replica region; both share ``key_versions``, so rotating the primary rotates every replica
(DG/multi-region-keys-overview). Each region sees the key under its own ARN; ``keys.arn`` keeps
the ARN the key was created under, which the backend binds its material to.

``material`` is the backend's record (wrapped material), never raw key bytes; so is
``private_key`` (the import wrapping key, sealed by the root key) and ``password`` (a custom
key store's PIN, sealed by the root key). For an HSM-held key version ``material`` is only a
reference to the token object (kms.backends.pkcs11).
``synchronous=FULL``: a committed key version must survive power loss, or data encrypted under
it is lost. ``secure_delete`` zeroes the pages of deleted rows. Writers take the lock up front
(``BEGIN IMMEDIATE``) so a read-check-write never deadlocks on lock upgrade. One connection per
thread (sqlite3 objects are not shared across threads).
"""
from __future__ import annotations

import copy
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kms.errors import (AlreadyExistsException, KMSInternalException, LimitExceededException,
                        NotFoundException)
from kms.model import (Alias, ConnectionState, CustomKeyStore, Key, KeyManager, KeyMetadata,
                       KeySpec, KeyState, KeyUsage, KeyVersion, Origin, RotationType)
from kms.store.base import KeyChanges, KeyCheck

__all__ = ["SQLiteKeyStore", "SCHEMA_VERSION"]

SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE keys (
    key_id TEXT PRIMARY KEY,
    arn TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    creation_date REAL NOT NULL,
    description TEXT NOT NULL,
    key_usage TEXT NOT NULL,
    key_spec TEXT NOT NULL,
    origin TEXT NOT NULL,
    key_manager TEXT NOT NULL,
    key_state TEXT NOT NULL,
    deletion_date REAL,
    pending_window_days INTEGER,
    policy TEXT NOT NULL,
    tags TEXT NOT NULL,
    current_version INTEGER NOT NULL
);
CREATE INDEX keys_by_account ON keys(account_id, key_id);
CREATE INDEX keys_by_deletion ON keys(deletion_date) WHERE deletion_date IS NOT NULL;
CREATE TABLE key_versions (
    key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    creation_date REAL NOT NULL,
    rotation_type TEXT,
    backend TEXT NOT NULL,
    material BLOB NOT NULL,
    PRIMARY KEY (key_id, version)
) WITHOUT ROWID;
CREATE TABLE aliases (
    account_id TEXT NOT NULL,
    alias_name TEXT NOT NULL,
    target_key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    creation_date REAL NOT NULL,
    last_updated_date REAL NOT NULL,
    PRIMARY KEY (account_id, alias_name)
) WITHOUT ROWID;
CREATE INDEX aliases_by_target ON aliases(target_key_id);
"""

# Step n takes a version n-1 database to version n. Never edit a released step; add one.
_MIGRATIONS: dict[int, str] = {
    2: """
ALTER TABLE keys ADD COLUMN rotation_period_days INTEGER;
ALTER TABLE keys ADD COLUMN next_rotation_date REAL;
ALTER TABLE keys ADD COLUMN expiration_model TEXT;
ALTER TABLE keys ADD COLUMN valid_to REAL;
ALTER TABLE keys ADD COLUMN material_id TEXT;
CREATE INDEX keys_by_rotation ON keys(next_rotation_date) WHERE next_rotation_date IS NOT NULL;
CREATE INDEX keys_by_valid_to ON keys(valid_to) WHERE valid_to IS NOT NULL;
CREATE TABLE import_tokens (
    token_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    wrapping_algorithm TEXT NOT NULL,
    wrapping_key_spec TEXT NOT NULL,
    private_key BLOB NOT NULL,
    valid_to REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX import_tokens_by_key ON import_tokens(key_id);
""",
    3: """
ALTER TABLE keys ADD COLUMN custom_key_store_id TEXT;
CREATE INDEX keys_by_custom_key_store ON keys(custom_key_store_id)
    WHERE custom_key_store_id IS NOT NULL;
CREATE TABLE custom_key_stores (
    custom_key_store_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    trust_anchor TEXT NOT NULL,
    password BLOB NOT NULL,
    connection_state TEXT NOT NULL,
    connection_error_code TEXT,
    creation_date REAL NOT NULL,
    UNIQUE (account_id, name)
) WITHOUT ROWID;
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
""",
    4: """
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    issuing_account TEXT NOT NULL,
    name TEXT,
    creation_date REAL NOT NULL,
    grantee_principal TEXT NOT NULL,
    retiring_principal TEXT,
    operations TEXT NOT NULL,
    constraints TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS grants_by_key ON grants(key_id, creation_date);
CREATE INDEX IF NOT EXISTS grants_by_grantee ON grants(grantee_principal);
CREATE INDEX IF NOT EXISTS grants_by_retiring ON grants(retiring_principal)
    WHERE retiring_principal IS NOT NULL;
""",
    5: """
ALTER TABLE keys ADD COLUMN region TEXT;
UPDATE keys SET region = substr(arn, 13, instr(substr(arn, 13), ':') - 1);
CREATE INDEX keys_by_region ON keys(region, account_id, key_id);
CREATE TABLE key_replicas (
    key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    region TEXT NOT NULL,
    creation_date REAL NOT NULL,
    description TEXT NOT NULL,
    key_state TEXT NOT NULL,
    deletion_date REAL,
    pending_window_days INTEGER,
    policy TEXT NOT NULL,
    tags TEXT NOT NULL,
    PRIMARY KEY (key_id, region)
) WITHOUT ROWID;
CREATE INDEX key_replicas_by_region ON key_replicas(region, key_id);
ALTER TABLE grants ADD COLUMN region TEXT;
UPDATE grants SET region = (SELECT region FROM keys WHERE keys.key_id = grants.key_id);
CREATE TABLE aliases_v5 (
    region TEXT NOT NULL,
    account_id TEXT NOT NULL,
    alias_name TEXT NOT NULL,
    target_key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    creation_date REAL NOT NULL,
    last_updated_date REAL NOT NULL,
    PRIMARY KEY (region, account_id, alias_name)
) WITHOUT ROWID;
INSERT INTO aliases_v5 SELECT k.region, a.account_id, a.alias_name, a.target_key_id,
    a.creation_date, a.last_updated_date FROM aliases a JOIN keys k ON k.key_id = a.target_key_id;
DROP TABLE aliases;
ALTER TABLE aliases_v5 RENAME TO aliases;
CREATE INDEX aliases_by_target ON aliases(target_key_id, region);
""",
}

_KEY_COLS = ("key_id, arn, account_id, creation_date, description, key_usage, key_spec, origin, "
             "key_manager, key_state, deletion_date, pending_window_days, policy, tags, "
             "current_version, rotation_period_days, next_rotation_date, expiration_model, "
             "valid_to, material_id, custom_key_store_id, region")
_MUTABLE = {"key_state", "deletion_date", "pending_window_days", "description", "policy",
            "tags", "current_version", "rotation_period_days", "next_rotation_date",
            "expiration_model", "valid_to", "material_id"}
# Columns each region of a multi-Region key has for itself; the rest are shared.
_REGIONAL = ("creation_date", "description", "key_state", "deletion_date",
             "pending_window_days", "policy", "tags")
_ALIAS_COLS = "account_id, alias_name, target_key_id, creation_date, last_updated_date"


def _key(row: tuple, region: str | None = None, replica: tuple | None = None,
         replicas: tuple[str, ...] = ()) -> Key:
    """A key as ``region`` sees it: ``replica`` is its ``key_replicas`` row there (``_REGIONAL``
    order) when it is not the primary; ``replicas`` lists the replica regions."""
    row = list(row)
    primary = row[21]
    region = region or primary
    if replica is not None:
        (row[3], row[4], row[9], row[10], row[11], row[12], row[13]) = replica
    multi = row[0].startswith("mrk-")
    arn = f"arn:aws:kms:{region}:{row[2]}:key/{row[0]}" if multi else row[1]
    meta = KeyMetadata(
        key_id=row[0], arn=arn, account_id=row[2], creation_date=row[3], description=row[4],
        key_usage=KeyUsage(row[5]), key_spec=KeySpec(row[6]), origin=Origin(row[7]),
        key_manager=KeyManager(row[8]), key_state=KeyState(row[9]), deletion_date=row[10],
        pending_deletion_window_in_days=row[11], expiration_model=row[17], valid_to=row[18],
        custom_key_store_id=row[20], multi_region=multi,
        primary_region=primary if multi else None, replica_regions=replicas)
    return Key(metadata=meta, policy=row[12], tags=tuple(tuple(t) for t in json.loads(row[13])),
               current_version=row[14], rotation_period_days=row[15],
               next_rotation_date=row[16], material_id=row[19], material_arn=row[1])


def _version(row: tuple) -> KeyVersion:
    return KeyVersion(key_id=row[0], version=row[1], creation_date=row[2],
                      rotation_type=RotationType(row[3]) if row[3] else None,
                      material=bytes(row[4]))


class SQLiteKeyStore:
    def __init__(self, path: Path, *, region: str, backend_name: str = "software") -> None:
        self._path = Path(path)
        self._region = region
        self._backend = backend_name
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # -- connections and transactions -------------------------------------------------------

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            if self._closed:
                raise KMSInternalException("key store is closed")
            _create_private(self._path)
            con = sqlite3.connect(self._path, timeout=30, isolation_level=None,
                                  check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA secure_delete=ON")
            self._local.con = con
            with self._all_lock:
                self._all.append(con)
        return con

    # Called inside every write transaction just before COMMIT; raising rolls it back. The
    # KMS writes its audit intent record here, so no change commits off the record (issue 11).
    before_commit: Callable[[], None] | None = None

    @contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            if self.before_commit is not None:
                self.before_commit()
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _migrate(self) -> None:
        with self._txn() as con:
            (ver,) = con.execute("PRAGMA user_version").fetchone()
            if ver > SCHEMA_VERSION:
                raise KMSInternalException(
                    f"kms.db schema version {ver} is newer than this build ({SCHEMA_VERSION})")
            steps = [_SCHEMA] if ver == 0 else []
            steps += [_MIGRATIONS[v] for v in range(max(ver, 1) + 1, SCHEMA_VERSION + 1)]
            for script in steps:
                for stmt in script.split(";"):
                    if stmt.strip():
                        con.execute(stmt)
            if ver != SCHEMA_VERSION:
                con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def for_region(self, region: str) -> SQLiteKeyStore:
        """A store for ``region``'s namespace on the same database and connections."""
        if region == self._region:
            return self
        sibling = copy.copy(self)
        sibling._region = region
        return sibling

    @property
    def region(self) -> str:
        return self._region

    def regions(self) -> list[str]:
        """Every region that holds a key (the scheduler visits each)."""
        rows = self._con().execute("SELECT region FROM keys UNION SELECT region FROM "
                                   "key_replicas").fetchall()
        return sorted(r[0] for r in rows if r[0])

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            cons, self._all = self._all, []
        for con in cons:
            try:
                con.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    # -- keys --------------------------------------------------------------------------------

    def _read_key(self, con: sqlite3.Connection, key_id: str) -> Key | None:
        row = con.execute(f"SELECT {_KEY_COLS} FROM keys WHERE key_id=?", (key_id,)).fetchone()
        return self._view(con, row) if row else None

    def _view(self, con: sqlite3.Connection, row: tuple) -> Key | None:
        """The key of a ``keys`` row as this region sees it, or None if it is not here."""
        if not row[0].startswith("mrk-"):
            return _key(row) if row[21] == self._region else None
        replicas = con.execute("SELECT region FROM key_replicas WHERE key_id=? ORDER BY region",
                               (row[0],)).fetchall()
        regions = tuple(r[0] for r in replicas)
        if row[21] == self._region:
            return _key(row, self._region, None, regions)
        if self._region not in regions:
            return None
        replica = con.execute(f"SELECT {', '.join(_REGIONAL)} FROM key_replicas WHERE key_id=? "
                              "AND region=?", (row[0], self._region)).fetchone()
        return _key(row, self._region, tuple(replica), regions)

    def _is_primary_here(self, con: sqlite3.Connection, key_id: str) -> bool:
        row = con.execute("SELECT region FROM keys WHERE key_id=?", (key_id,)).fetchone()
        return row is not None and row[0] == self._region

    def _must_key(self, con: sqlite3.Connection, key_id: str) -> Key:
        key = self._read_key(con, key_id)
        if key is None:
            raise NotFoundException(f"Key '{key_id}' does not exist")
        return key

    def _insert_version(self, con: sqlite3.Connection, v: KeyVersion,
                        backend: str | None = None) -> None:
        con.execute("INSERT INTO key_versions VALUES (?,?,?,?,?,?)",
                    (v.key_id, v.version, v.creation_date,
                     v.rotation_type.value if v.rotation_type else None,
                     backend or self._backend, v.material))

    def create_key(self, key: Key, version: KeyVersion | None,
                   alias: str | None = None) -> None:
        """``version`` is None for a key whose material is imported later (PendingImport)."""
        m = key.metadata
        with self._txn() as con:
            con.execute(
                f"INSERT INTO keys ({_KEY_COLS}) VALUES ({', '.join('?' * 22)})",
                (m.key_id, m.arn, m.account_id, m.creation_date, m.description,
                 m.key_usage.value, m.key_spec.value, m.origin.value, m.key_manager.value,
                 m.key_state.value, m.deletion_date, m.pending_deletion_window_in_days,
                 key.policy, json.dumps([list(t) for t in key.tags]), key.current_version,
                 key.rotation_period_days, key.next_rotation_date, m.expiration_model,
                 m.valid_to, key.material_id, m.custom_key_store_id, self._region))
            if version is not None:
                self._insert_version(con, version,
                                     "pkcs11" if m.custom_key_store_id is not None else None)
            if alias is not None:
                try:
                    con.execute(f"INSERT INTO aliases ({_ALIAS_COLS}, region) VALUES "
                                "(?,?,?,?,?,?)", (m.account_id, alias, m.key_id,
                                                  m.creation_date, m.creation_date,
                                                  self._region))
                except sqlite3.IntegrityError:
                    raise AlreadyExistsException(
                        f"An alias with the name {self._alias_arn(m.account_id, alias)} "
                        "already exists") from None

    def get_key(self, key_id: str) -> Key | None:
        return self._read_key(self._con(), key_id)

    def list_keys(self, account_id: str, limit: int, after: str | None) -> list[Key]:
        con = self._con()
        rows = con.execute(
            f"SELECT {_KEY_COLS} FROM keys WHERE account_id=? AND key_id>? AND (region=? OR "
            "key_id IN (SELECT key_id FROM key_replicas WHERE region=?)) ORDER BY key_id "
            "LIMIT ?", (account_id, after or "", self._region, self._region, limit)).fetchall()
        return [k for k in (self._view(con, r) for r in rows) if k is not None]

    def update_key(self, key_id: str, changes: KeyChanges) -> Key:
        with self._txn() as con:
            key = self._must_key(con, key_id)
            cols = dict(changes(key))
            if not cols:
                return key
            self._set(con, key_id, cols)
            return self._must_key(con, key_id)

    def _set(self, con: sqlite3.Connection, key_id: str, cols: dict) -> None:
        bad = set(cols) - _MUTABLE
        if bad:
            raise ValueError(f"immutable columns {sorted(bad)}")
        if "tags" in cols:
            cols["tags"] = json.dumps([list(t) for t in cols["tags"]])
        cols = {k: (v.value if hasattr(v, "value") else v) for k, v in cols.items()}
        if not self._is_primary_here(con, key_id):     # a replica: its own regional fields
            regional = {k: v for k, v in cols.items() if k in _REGIONAL}
            cols = {k: v for k, v in cols.items() if k not in _REGIONAL}
            if regional:
                sets = ", ".join(f"{c}=?" for c in regional)
                con.execute(f"UPDATE key_replicas SET {sets} WHERE key_id=? AND region=?",
                            (*regional.values(), key_id, self._region))
        if cols:
            sets = ", ".join(f"{c}=?" for c in cols)
            con.execute(f"UPDATE keys SET {sets} WHERE key_id=?", (*cols.values(), key_id))

    # -- versions ----------------------------------------------------------------------------

    def add_version(self, key_id: str, check: KeyCheck, make_record: Callable[[int], bytes],
                    now: float, rotation_type: RotationType, max_rotations: int,
                    changes: KeyChanges | None = None) -> KeyVersion:
        """``changes`` (e.g. the next automatic rotation date) commit with the version."""
        with self._txn() as con:
            key = self._must_key(con, key_id)
            check(key)
            (n,) = con.execute("SELECT COUNT(*) FROM key_versions WHERE key_id=? AND "
                               "rotation_type=?", (key_id, rotation_type.value)).fetchone()
            if n >= max_rotations:
                raise LimitExceededException(
                    f"The on-demand rotations limit has been reached for the given keyId. "
                    f"No more on-demand rotations can be performed for this key: {key.arn}")
            version = key.current_version + 1
            kv = KeyVersion(key_id, version, now, rotation_type, make_record(version))
            self._insert_version(con, kv)
            con.execute("UPDATE keys SET current_version=? WHERE key_id=?", (version, key_id))
            if changes is not None:
                cols = dict(changes(key))
                if cols:
                    self._set(con, key_id, cols)
            return kv

    def get_version(self, key_id: str, version: int) -> KeyVersion | None:
        row = self._con().execute(
            "SELECT key_id, version, creation_date, rotation_type, material FROM key_versions "
            "WHERE key_id=? AND version=?", (key_id, version)).fetchone()
        return _version(row) if row else None

    def list_versions(self, key_id: str) -> list[KeyVersion]:
        rows = self._con().execute(
            "SELECT key_id, version, creation_date, rotation_type, material FROM key_versions "
            "WHERE key_id=? ORDER BY version", (key_id,)).fetchall()
        return [_version(r) for r in rows]

    # -- aliases -----------------------------------------------------------------------------

    def _alias_arn(self, account_id: str, alias_name: str) -> str:
        return f"arn:aws:kms:{self._region}:{account_id}:{alias_name}"

    def _alias(self, row: tuple) -> Alias:
        return Alias(account_id=row[0], alias_name=row[1],
                     alias_arn=self._alias_arn(row[0], row[1]), target_key_id=row[2],
                     creation_date=row[3], last_updated_date=row[4])

    def _read_alias(self, con: sqlite3.Connection, account_id: str,
                    alias_name: str) -> Alias | None:
        row = con.execute(f"SELECT {_ALIAS_COLS} FROM aliases WHERE region=? AND account_id=? "
                          "AND alias_name=?", (self._region, account_id, alias_name)).fetchone()
        return self._alias(row) if row else None

    def get_alias(self, account_id: str, alias_name: str) -> Alias | None:
        return self._read_alias(self._con(), account_id, alias_name)

    def list_aliases(self, account_id: str, key_id: str | None, limit: int,
                     after: str | None) -> list[Alias]:
        sql = f"SELECT {_ALIAS_COLS} FROM aliases WHERE region=? AND account_id=? AND alias_name>?"
        args: list = [self._region, account_id, after or ""]
        if key_id is not None:
            sql += " AND target_key_id=?"
            args.append(key_id)
        rows = self._con().execute(sql + " ORDER BY alias_name LIMIT ?", (*args, limit))
        return [self._alias(r) for r in rows.fetchall()]

    def _check_alias_quota(self, con: sqlite3.Connection, key: Key, max_per_key: int) -> None:
        (n,) = con.execute("SELECT COUNT(*) FROM aliases WHERE target_key_id=? AND region=?",
                           (key.key_id, self._region)).fetchone()
        if n >= max_per_key:
            raise LimitExceededException(
                f"Key {key.arn} already has the maximum of {max_per_key} aliases")

    def create_alias(self, account_id: str, alias_name: str, target_key_id: str, now: float,
                     check: KeyCheck, max_per_key: int = 50) -> Alias:
        with self._txn() as con:
            key = self._must_key(con, target_key_id)
            check(key)
            if self._read_alias(con, account_id, alias_name) is not None:
                raise AlreadyExistsException(
                    f"An alias with the name {self._alias_arn(account_id, alias_name)} "
                    "already exists")
            self._check_alias_quota(con, key, max_per_key)
            con.execute(f"INSERT INTO aliases ({_ALIAS_COLS}, region) VALUES (?,?,?,?,?,?)",
                        (account_id, alias_name, target_key_id, now, now, self._region))
            return self._read_alias(con, account_id, alias_name)  # type: ignore[return-value]

    def update_alias(self, account_id: str, alias_name: str, target_key_id: str, now: float,
                     check: KeyCheck, max_per_key: int = 50) -> Alias:
        with self._txn() as con:
            if self._read_alias(con, account_id, alias_name) is None:
                raise NotFoundException(
                    f"Alias {self._alias_arn(account_id, alias_name)} is not found.")
            key = self._must_key(con, target_key_id)
            check(key)
            self._check_alias_quota(con, key, max_per_key)
            con.execute("UPDATE aliases SET target_key_id=?, last_updated_date=? "
                        "WHERE region=? AND account_id=? AND alias_name=?",
                        (target_key_id, now, self._region, account_id, alias_name))
            return self._read_alias(con, account_id, alias_name)  # type: ignore[return-value]

    def delete_alias(self, account_id: str, alias_name: str) -> Alias:
        with self._txn() as con:
            alias = self._read_alias(con, account_id, alias_name)
            if alias is None:
                raise NotFoundException(
                    f"Alias {self._alias_arn(account_id, alias_name)} is not found.")
            con.execute("DELETE FROM aliases WHERE region=? AND account_id=? AND alias_name=?",
                        (self._region, account_id, alias_name))
            return alias

    # -- deletion ----------------------------------------------------------------------------

    def due_deletions(self, now: float) -> list[Key]:
        con = self._con()
        rows = con.execute(
            f"SELECT {_KEY_COLS} FROM keys WHERE key_state=? AND deletion_date<=? AND region=? "
            "UNION ALL "
            f"SELECT {_KEY_COLS} FROM keys WHERE key_id IN (SELECT key_id FROM key_replicas "
            "WHERE region=? AND key_state=? AND deletion_date<=?)",
            (KeyState.PENDING_DELETION.value, now, self._region, self._region,
             KeyState.PENDING_DELETION.value, now)).fetchall()
        keys = [k for k in (self._view(con, r) for r in rows) if k is not None]
        return sorted(keys, key=lambda k: k.metadata.deletion_date or 0)

    def delete_key(self, key_id: str, check: KeyCheck,
                   now: float | None = None) -> list[KeyVersion]:
        """Delete the key, its versions and its aliases; returns the versions destroyed.
        A multi-Region replica goes alone (its region's aliases and grants with it); the
        material stays with the primary. If that was the last replica of a primary waiting in
        PendingReplicaDeletion, the primary's own waiting period starts at ``now``."""
        with self._txn() as con:
            check(self._must_key(con, key_id))
            if not self._is_primary_here(con, key_id):
                con.execute("DELETE FROM aliases WHERE target_key_id=? AND region=?",
                            (key_id, self._region))
                con.execute("DELETE FROM grants WHERE key_id=? AND region=?",
                            (key_id, self._region))
                con.execute("DELETE FROM key_replicas WHERE key_id=? AND region=?",
                            (key_id, self._region))
                left = con.execute("SELECT COUNT(*) FROM key_replicas WHERE key_id=?",
                                   (key_id,)).fetchone()[0]
                state, days = con.execute("SELECT key_state, pending_window_days FROM keys "
                                          "WHERE key_id=?", (key_id,)).fetchone()
                if left == 0 and state == KeyState.PENDING_REPLICA_DELETION.value:
                    con.execute("UPDATE keys SET key_state=?, deletion_date=? WHERE key_id=?",
                                (KeyState.PENDING_DELETION.value,
                                 (now or 0) + (days or 30) * 86400.0, key_id))
                return []
            versions = [_version(r) for r in con.execute(
                "SELECT key_id, version, creation_date, rotation_type, material "
                "FROM key_versions WHERE key_id=?", (key_id,)).fetchall()]
            con.execute("DELETE FROM aliases WHERE target_key_id=?", (key_id,))
            con.execute("DELETE FROM key_versions WHERE key_id=?", (key_id,))
            con.execute("DELETE FROM keys WHERE key_id=?", (key_id,))
            return versions

    # -- multi-Region keys (kms.service replicate_key / update_primary_region) ---------------

    def create_replica(self, key_id: str, region: str, check: KeyCheck, *, now: float,
                       description: str, policy: str, tags: tuple[tuple[str, str], ...]
                       ) -> Key:
        """Add ``region``'s replica of this region's primary ``key_id`` after ``check``;
        returns the replica as ``region`` sees it. AlreadyExistsException if the key is there."""
        with self._txn() as con:
            primary = self._must_key(con, key_id)
            check(primary)
            if region == primary.metadata.primary_region or region in \
                    primary.metadata.replica_regions:
                raise AlreadyExistsException(
                    f"Multi-Region key {key_id} already exists in region {region}.")
            con.execute(f"INSERT INTO key_replicas (key_id, region, {', '.join(_REGIONAL)}) "
                        "VALUES (?,?,?,?,?,?,?,?,?)",
                        (key_id, region, now, description, KeyState.ENABLED.value, None, None,
                         policy, json.dumps([list(t) for t in tags])))
            return self.for_region(region)._must_key(con, key_id)

    def update_primary_region(self, key_id: str, region: str, check: KeyCheck) -> None:
        """Swap roles: ``region``'s replica becomes the primary, this region's primary a
        replica (each keeps its own regional fields)."""
        with self._txn() as con:
            key = self._must_key(con, key_id)
            check(key)
            if region not in key.metadata.replica_regions:
                raise NotFoundException(
                    f"Multi-Region key {key_id} has no replica in region {region}.")
            cols = ", ".join(_REGIONAL)
            mine = con.execute(f"SELECT {cols} FROM keys WHERE key_id=?", (key_id,)).fetchone()
            theirs = con.execute(f"SELECT {cols} FROM key_replicas WHERE key_id=? AND region=?",
                                 (key_id, region)).fetchone()
            con.execute("DELETE FROM key_replicas WHERE key_id=? AND region=?",
                        (key_id, region))
            con.execute(f"INSERT INTO key_replicas (key_id, region, {cols}) VALUES "
                        "(?,?,?,?,?,?,?,?,?)", (key_id, self._region, *mine))
            sets = ", ".join(f"{c}=?" for c in _REGIONAL)
            con.execute(f"UPDATE keys SET {sets}, region=? WHERE key_id=?",
                        (*theirs, region, key_id))

    def has_replicas(self, key_id: str) -> bool:
        return self._con().execute("SELECT 1 FROM key_replicas WHERE key_id=? LIMIT 1",
                                   (key_id,)).fetchone() is not None

    # -- automatic rotation and imported material (kms.lifecycle) ------------------------------

    def due_rotations(self, now: float) -> list[Key]:
        # Only primaries: a multi-Region key rotates in its primary region, for every replica.
        con = self._con()
        rows = con.execute(
            f"SELECT {_KEY_COLS} FROM keys WHERE key_state=? AND rotation_period_days IS NOT "
            "NULL AND next_rotation_date<=? AND region=? ORDER BY next_rotation_date",
            (KeyState.ENABLED.value, now, self._region)).fetchall()
        return [k for k in (self._view(con, r) for r in rows) if k is not None]

    def due_expirations(self, now: float) -> list[Key]:
        con = self._con()
        rows = con.execute(
            f"SELECT {_KEY_COLS} FROM keys WHERE valid_to<=? AND region=? ORDER BY valid_to",
            (now, self._region)).fetchall()
        return [k for k in (self._view(con, r) for r in rows) if k is not None]

    def put_import_token(self, token_id: str, key_id: str, wrapping_algorithm: str,
                         wrapping_key_spec: str, private_key: bytes, valid_to: float,
                         now: float, check: KeyCheck) -> None:
        """Record one GetParametersForImport answer; drops the key's expired ones."""
        with self._txn() as con:
            check(self._must_key(con, key_id))
            con.execute("DELETE FROM import_tokens WHERE key_id=? AND valid_to<?",
                        (key_id, now))
            con.execute("INSERT INTO import_tokens VALUES (?,?,?,?,?,?)",
                        (token_id, key_id, wrapping_algorithm, wrapping_key_spec, private_key,
                         valid_to))

    def get_import_token(self, token_id: str) -> tuple[str, str, str, bytes, float] | None:
        """(key_id, wrapping_algorithm, wrapping_key_spec, private_key, valid_to)."""
        row = self._con().execute(
            "SELECT key_id, wrapping_algorithm, wrapping_key_spec, private_key, valid_to "
            "FROM import_tokens WHERE token_id=?", (token_id,)).fetchone()
        return (row[0], row[1], row[2], bytes(row[3]), row[4]) if row else None

    def replace_material(self, key_id: str, changes: KeyChanges,
                         make_version: Callable[[Key], KeyVersion | None]) -> list[KeyVersion]:
        """In one transaction: ``changes(key)`` (the state rules), drop every version, insert
        ``make_version(key)`` if not None. Returns the versions dropped."""
        with self._txn() as con:
            key = self._must_key(con, key_id)
            cols = dict(changes(key))
            old = [_version(r) for r in con.execute(
                "SELECT key_id, version, creation_date, rotation_type, material "
                "FROM key_versions WHERE key_id=?", (key_id,)).fetchall()]
            con.execute("DELETE FROM key_versions WHERE key_id=?", (key_id,))
            kv = make_version(key)
            if kv is not None:
                self._insert_version(con, kv)
            if cols:
                self._set(con, key_id, cols)
            return old

    # -- settings (which root key wraps the data) --------------------------------------------

    def get_setting(self, name: str) -> str | None:
        row = self._con().execute("SELECT value FROM settings WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def set_settings(self, values: dict[str, str]) -> None:
        with self._txn() as con:
            for name, value in values.items():
                con.execute("INSERT OR REPLACE INTO settings VALUES (?,?)", (name, value))

    def has_keys(self) -> bool:
        return self._con().execute("SELECT 1 FROM keys LIMIT 1").fetchone() is not None

    # -- custom key stores (kms.custom_key_stores) --------------------------------------------

    _CKS_COLS = ("custom_key_store_id, account_id, name, cluster_id, trust_anchor, password, "
                 "connection_state, connection_error_code, creation_date")
    _CKS_MUTABLE = {"name", "cluster_id", "trust_anchor", "password", "connection_state",
                    "connection_error_code"}

    @staticmethod
    def _cks(row: tuple) -> CustomKeyStore:
        return CustomKeyStore(custom_key_store_id=row[0], account_id=row[1], name=row[2],
                              cluster_id=row[3], trust_anchor_certificate=row[4],
                              password=bytes(row[5]),
                              connection_state=ConnectionState(row[6]),
                              connection_error_code=row[7], creation_date=row[8])

    def create_custom_key_store(self, cks: CustomKeyStore) -> None:
        """Raises ``AlreadyExistsException`` if the account already has that name."""
        with self._txn() as con:
            try:
                con.execute(f"INSERT INTO custom_key_stores ({self._CKS_COLS}) VALUES "
                            "(?,?,?,?,?,?,?,?,?)",
                            (cks.custom_key_store_id, cks.account_id, cks.name, cks.cluster_id,
                             cks.trust_anchor_certificate, cks.password,
                             cks.connection_state.value, cks.connection_error_code,
                             cks.creation_date))
            except sqlite3.IntegrityError:
                raise AlreadyExistsException(cks.name) from None

    def get_custom_key_store(self, custom_key_store_id: str) -> CustomKeyStore | None:
        row = self._con().execute(
            f"SELECT {self._CKS_COLS} FROM custom_key_stores WHERE custom_key_store_id=?",
            (custom_key_store_id,)).fetchone()
        return self._cks(row) if row else None

    def list_custom_key_stores(self, account_id: str | None = None) -> list[CustomKeyStore]:
        if account_id is None:
            rows = self._con().execute(
                f"SELECT {self._CKS_COLS} FROM custom_key_stores ORDER BY creation_date, "
                "custom_key_store_id").fetchall()
        else:
            rows = self._con().execute(
                f"SELECT {self._CKS_COLS} FROM custom_key_stores WHERE account_id=? "
                "ORDER BY creation_date, custom_key_store_id", (account_id,)).fetchall()
        return [self._cks(r) for r in rows]

    def update_custom_key_store(self, custom_key_store_id: str,
                                changes: Callable[[CustomKeyStore, int], dict]
                                ) -> CustomKeyStore:
        """``changes(store, number_of_keys)`` runs inside the transaction; returns columns."""
        with self._txn() as con:
            cks = self._must_cks(con, custom_key_store_id)
            cols = dict(changes(cks, self._cks_keys(con, custom_key_store_id)))
            bad = set(cols) - self._CKS_MUTABLE
            if bad:
                raise ValueError(f"immutable columns {sorted(bad)}")
            if cols:
                cols = {k: (v.value if hasattr(v, "value") else v) for k, v in cols.items()}
                sets = ", ".join(f"{c}=?" for c in cols)
                try:
                    con.execute(f"UPDATE custom_key_stores SET {sets} WHERE "
                                "custom_key_store_id=?", (*cols.values(), custom_key_store_id))
                except sqlite3.IntegrityError:
                    raise AlreadyExistsException(str(cols.get("name"))) from None
            return self._must_cks(con, custom_key_store_id)

    def delete_custom_key_store(self, custom_key_store_id: str,
                                check: Callable[[CustomKeyStore, int], None]) -> None:
        with self._txn() as con:
            cks = self._must_cks(con, custom_key_store_id)
            check(cks, self._cks_keys(con, custom_key_store_id))
            con.execute("DELETE FROM custom_key_stores WHERE custom_key_store_id=?",
                        (custom_key_store_id,))

    def _must_cks(self, con: sqlite3.Connection, custom_key_store_id: str) -> CustomKeyStore:
        row = con.execute(
            f"SELECT {self._CKS_COLS} FROM custom_key_stores WHERE custom_key_store_id=?",
            (custom_key_store_id,)).fetchone()
        if row is None:
            raise NotFoundException(custom_key_store_id)
        return self._cks(row)

    @staticmethod
    def _cks_keys(con: sqlite3.Connection, custom_key_store_id: str) -> int:
        return con.execute("SELECT COUNT(*) FROM keys WHERE custom_key_store_id=?",
                           (custom_key_store_id,)).fetchone()[0]

    # -- root key migration ---------------------------------------------------------------------

    # -- grants (kms.grants) -------------------------------------------------------------

    _GRANT_COLS = ("grant_id, key_id, issuing_account, name, creation_date, grantee_principal, "
                   "retiring_principal, operations, constraints")

    def create_grant(self, row: tuple, check: KeyCheck, max_per_key: int) -> None:
        """Insert a grant row (``_GRANT_COLS`` order) after ``check(key)`` passes."""
        with self._txn() as con:
            check(self._must_key(con, row[1]))
            (n,) = con.execute("SELECT COUNT(*) FROM grants WHERE key_id=? AND region=?",
                               (row[1], self._region)).fetchone()
            if n >= max_per_key:
                raise LimitExceededException(
                    f"The key has reached its limit of {max_per_key} grants.")
            con.execute(f"INSERT INTO grants ({self._GRANT_COLS}, region) VALUES "
                        "(?,?,?,?,?,?,?,?,?,?)", (*row, self._region))

    def get_grant(self, grant_id: str) -> tuple | None:
        return self._con().execute(f"SELECT {self._GRANT_COLS} FROM grants WHERE grant_id=? "
                                   "AND region=?", (grant_id, self._region)).fetchone()

    def list_grants(self, *, key_id: str | None = None, grantee: str | None = None,
                    retiring: str | None = None) -> list[tuple]:
        where, args = ["region=?"], [self._region]
        for col, val in (("key_id", key_id), ("grantee_principal", grantee),
                         ("retiring_principal", retiring)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        sql = f"SELECT {self._GRANT_COLS} FROM grants"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._con().execute(sql + " ORDER BY creation_date, grant_id", args).fetchall()

    def delete_grant(self, grant_id: str) -> bool:
        with self._txn() as con:
            return con.execute("DELETE FROM grants WHERE grant_id=? AND region=?",
                               (grant_id, self._region)).rowcount > 0

    def rewrap_all(self, versions: Callable[[Key, KeyVersion], bytes | None],
                   import_keys: Callable[[str, str, bytes], bytes],
                   passwords: Callable[[CustomKeyStore], bytes],
                   settings: dict[str, str]) -> int:
        """In one transaction: replace every key version's record by ``versions(key, v)``
        (None = leave it, e.g. an HSM reference), every import private key by
        ``import_keys(key_id, token_id, record)``, every custom key store password by
        ``passwords(store)``, and write ``settings``. Returns the number of records rewrapped.
        Any exception rolls everything back."""
        n = 0
        with self._txn() as con:
            keys = {r[0]: _key(r) for r in con.execute(f"SELECT {_KEY_COLS} FROM keys")}
            rows = con.execute("SELECT key_id, version, creation_date, rotation_type, material "
                               "FROM key_versions").fetchall()
            for row in rows:
                kv = _version(row)
                record = versions(keys[kv.key_id], kv)
                if record is not None:
                    con.execute("UPDATE key_versions SET material=? WHERE key_id=? AND "
                                "version=?", (record, kv.key_id, kv.version))
                    n += 1
            for token_id, key_id, private in con.execute(
                    "SELECT token_id, key_id, private_key FROM import_tokens").fetchall():
                con.execute("UPDATE import_tokens SET private_key=? WHERE token_id=?",
                            (import_keys(key_id, token_id, bytes(private)), token_id))
                n += 1
            for row in con.execute(
                    f"SELECT {self._CKS_COLS} FROM custom_key_stores").fetchall():
                cks = self._cks(row)
                con.execute("UPDATE custom_key_stores SET password=? WHERE "
                            "custom_key_store_id=?", (passwords(cks), cks.custom_key_store_id))
                n += 1
            for name, value in settings.items():
                con.execute("INSERT OR REPLACE INTO settings VALUES (?,?)", (name, value))
        return n


def _create_private(path) -> None:
    """Create the SQLite database file 0600 if it is missing (SQLite gives -wal / -shm the
    database file's mode). Never opens an existing database: closing any descriptor of a file
    drops every POSIX lock this process holds on it, including SQLite's."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
