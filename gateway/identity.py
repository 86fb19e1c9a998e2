"""The identity store: accounts, IAM users, access keys and their policies (SQLite, WAL).

Layout: ``<data_dir>/iam/iam.db``, and the key that seals every stored secret access key
(32 random bytes, 0600) *outside* the data dir, so that the data dir alone (a copy, a backup)
never yields a usable secret: by default ``<data_dir>.iam.key`` beside it, or ``key_file=``
(``--iam-key-file`` / ``COFFER_IAM_KEY_FILE``). A data dir made before this rule keeps its
``<data_dir>/iam/secret.key`` until it is moved out.

Schema v1 (``meta.format = 1``; an unknown format is refused)::

    accounts(account_id PK, created)
    users(account_id, user_name NOCASE, path, user_id, created)            PK(account, name)
    access_keys(access_key_id PK, account_id, user_name ('' = account root), status,
                sealed BLOB = secretbox v1 (AES-256-GCM, aad = access key id), created)
    user_policies(account_id, user_name, policy_name NOCASE, document)
    managed_policies(arn PK, account_id, policy_name NOCASE, path, policy_id, description,
                     document, version 'v1', created, updated)
    attachments(account_id, user_name, policy_arn)

SigV4 needs the plaintext secret to verify a signature, so secrets are sealed (not hashed) with
the key file and opened per lookup. Inactive keys look up as None (-> InvalidAccessKeyId /
InvalidClientTokenId, as AWS). Every mutation is one transaction.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import sqlite3
import string
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from gateway.auth.types import Credential
from kms.crypto import secretbox
from kms.iam import errors as ie
from kms.iam.arn import ARNError, is_account_id, parse_arn, policy_arn, root_arn, user_arn
from kms.iam.errors import PolicyError
from kms.iam.policy import Policy, parse_policy

__all__ = ["IdentityStore", "User", "AccessKey", "NewAccessKey", "ManagedPolicy",
           "NewAccount", "AWS_MANAGED_POLICIES", "MAX_ACCESS_KEYS", "readable_by"]

log = logging.getLogger("coffer.identity")

_FORMAT = "1"
MAX_ACCESS_KEYS = 2                 # IAM quota AccessKeysPerUser
MAX_INLINE_SIZE = 2048              # aggregate inline policy size per user (no whitespace)
MAX_MANAGED_SIZE = 6144
_ID_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
# IAM names are ASCII [IAM UG, "IAM identifiers": "Names of users, groups, roles, policies...
# must be alphanumeric, including the following common characters: plus (+), equal (=),
# comma (,), period (.), at (@), underscore (_), and hyphen (-)"]. re.ASCII keeps \w from
# matching other scripts' letters and digits; fullmatch keeps "$" from allowing a trailing
# newline (issue 11, finding 20).
_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
_PATH = re.compile(r"/([\x21-\x7e]{0,510}/)?", re.ASCII)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts(account_id TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS users(
    account_id TEXT NOT NULL, user_name TEXT NOT NULL COLLATE NOCASE, path TEXT NOT NULL,
    user_id TEXT NOT NULL UNIQUE, created REAL NOT NULL, PRIMARY KEY(account_id, user_name));
CREATE TABLE IF NOT EXISTS access_keys(
    access_key_id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
    user_name TEXT NOT NULL COLLATE NOCASE, status TEXT NOT NULL, sealed BLOB NOT NULL,
    created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS access_keys_user ON access_keys(account_id, user_name);
CREATE TABLE IF NOT EXISTS user_policies(
    account_id TEXT NOT NULL, user_name TEXT NOT NULL COLLATE NOCASE,
    policy_name TEXT NOT NULL COLLATE NOCASE, document TEXT NOT NULL,
    PRIMARY KEY(account_id, user_name, policy_name));
CREATE TABLE IF NOT EXISTS managed_policies(
    arn TEXT PRIMARY KEY, account_id TEXT NOT NULL, policy_name TEXT NOT NULL COLLATE NOCASE,
    path TEXT NOT NULL, policy_id TEXT NOT NULL, description TEXT NOT NULL,
    document TEXT NOT NULL, version TEXT NOT NULL, created REAL NOT NULL,
    updated REAL NOT NULL, UNIQUE(account_id, policy_name));
CREATE TABLE IF NOT EXISTS attachments(
    account_id TEXT NOT NULL, user_name TEXT NOT NULL COLLATE NOCASE, policy_arn TEXT NOT NULL,
    PRIMARY KEY(account_id, user_name, policy_arn));
"""

# A few AWS-managed policies, so ``attach-user-policy --policy-arn
# arn:aws:iam::aws:policy/AdministratorAccess`` works as on AWS.
AWS_MANAGED_POLICIES: dict[str, str] = {
    "AdministratorAccess":
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
    "IAMFullAccess":
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*",'
        '"Resource":"*"}]}',
    "AmazonS3FullAccess":
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*",'
        '"s3-object-lambda:*"],"Resource":"*"}]}',
    "AmazonS3ReadOnlyAccess":
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:Get*",'
        '"s3:List*","s3:Describe*"],"Resource":"*"}]}',
}
_AWS_POLICY_PREFIX = "arn:aws:iam::aws:policy/"


@dataclass(frozen=True, slots=True)
class User:
    account_id: str
    user_name: str
    path: str
    user_id: str
    created: float

    @property
    def arn(self) -> str:
        return user_arn(self.account_id, self.user_name, self.path)


@dataclass(frozen=True, slots=True)
class AccessKey:
    access_key_id: str
    account_id: str
    user_name: str | None           # None for an account root's key
    status: str                     # Active | Inactive
    created: float


@dataclass(frozen=True, slots=True)
class NewAccessKey:
    key: AccessKey
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class NewAccount:
    account_id: str
    root_key: NewAccessKey


@dataclass(frozen=True, slots=True)
class ManagedPolicy:
    arn: str
    account_id: str
    policy_name: str
    path: str
    policy_id: str
    description: str
    document: str
    default_version: str
    created: float
    updated: float
    attachment_count: int = 0


def _rand_id(prefix: str, n: int) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(n))


def _check_name(name: str | None, what: str = "userName", rx: re.Pattern = _NAME) -> str:
    if not isinstance(name, str) or not rx.fullmatch(name):
        raise ie.ValidationError(
            f"1 validation error detected: Value '{name}' at '{what}' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+")
    return name


def _check_path(path: str | None) -> str:
    path = path or "/"
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise ie.ValidationError(
            f"1 validation error detected: Value '{path}' at 'path' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            "(\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)")
    return path


def _load_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) != secretbox.KEY_SIZE:
            raise ValueError(f"{path}: not a {secretbox.KEY_SIZE}-byte key") from None
        return key
    key = secrets.token_bytes(secretbox.KEY_SIZE)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


def default_key_file(data_dir: Path) -> Path:
    """``<data_dir>.iam.key`` beside the data dir; the legacy in-dir file if one exists."""
    legacy = data_dir / "iam" / "secret.key"
    if legacy.exists():
        log.warning("%s lies inside the data dir: move it out and pass --iam-key-file", legacy)
        return legacy
    resolved = data_dir.resolve()
    return resolved.with_name(resolved.name + ".iam.key")


class IdentityStore:
    """Accounts, users, access keys and policies of one data dir. Thread-safe."""

    def __init__(self, conn: sqlite3.Connection, key: bytes, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = conn
        self._key = key
        self._clock = clock
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return "IdentityStore(<sealed>)"

    @classmethod
    def open(cls, data_dir: Path, *, key_file: Path | None = None,
             clock: Callable[[], float] = time.time) -> "IdentityStore":
        """Open (creating on first use) ``<data_dir>/iam/iam.db`` and its secret key file."""
        root = Path(data_dir) / "iam"
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        db_path = root / "iam.db"
        key_file = key_file or default_key_file(Path(data_dir))
        if db_path.exists() and not key_file.exists():
            raise ValueError(f"{key_file} is missing: stored access keys cannot be opened "
                             "(give its place with --iam-key-file / COFFER_IAM_KEY_FILE)")
        key = _load_key(key_file)
        _create_private(db_path)
        conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None,
                               timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT v FROM meta WHERE k='format'").fetchone()
        if row is None:
            conn.execute("INSERT OR IGNORE INTO meta VALUES('format', ?)", (_FORMAT,))
        elif row[0] != _FORMAT:
            conn.close()
            raise ValueError(f"{db_path}: unknown identity store format {row[0]!r}")
        return cls(conn, key, clock=clock)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _q(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- accounts ------------------------------------------------------------------------

    def ensure_account(self, account_id: str) -> None:
        if not is_account_id(account_id):
            raise ie.ValidationError(f"Invalid account id {account_id!r}")
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO accounts VALUES(?, ?)", (account_id, self._clock()))

    def account_exists(self, account_id: str) -> bool:
        return bool(self._q("SELECT 1 FROM accounts WHERE account_id=?", (account_id,)))

    def list_accounts(self) -> list[str]:
        return [r[0] for r in self._q("SELECT account_id FROM accounts ORDER BY created")]

    def create_account(self, account_id: str | None = None) -> NewAccount:
        """A new account and an access key for its root (the secret is returned once)."""
        while account_id is None:
            candidate = str(secrets.randbelow(9 * 10 ** 11) + 10 ** 11)
            if not self.account_exists(candidate):
                account_id = candidate
        if not is_account_id(account_id):
            raise ie.ValidationError(f"Invalid account id {account_id!r}")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM accounts WHERE account_id=?",
                          (account_id,)).fetchone():
                raise ie.EntityAlreadyExists(f"Account {account_id} already exists.")
            db.execute("INSERT INTO accounts VALUES(?, ?)", (account_id, self._clock()))
            key = self._insert_key(db, account_id, "")
        return NewAccount(account_id=account_id, root_key=key)

    # -- users ---------------------------------------------------------------------------

    def _user_row(self, db: sqlite3.Connection, account_id: str, user_name: str) -> tuple:
        row = db.execute("SELECT account_id, user_name, path, user_id, created FROM users "
                         "WHERE account_id=? AND user_name=?", (account_id, user_name)).fetchone()
        if row is None:
            raise ie.NoSuchEntity(f"The user with name {user_name} cannot be found.")
        return row

    def create_user(self, account_id: str, user_name: str, path: str = "/") -> User:
        _check_name(user_name)
        path = _check_path(path)
        user = User(account_id, user_name, path, _rand_id("AIDA", 17), self._clock())
        with self._tx() as db:
            if db.execute("SELECT 1 FROM users WHERE account_id=? AND user_name=?",
                          (account_id, user_name)).fetchone():
                raise ie.EntityAlreadyExists(f"User with name {user_name} already exists.")
            db.execute("INSERT INTO users VALUES(?, ?, ?, ?, ?)",
                       (account_id, user_name, path, user.user_id, user.created))
        return user

    def get_user(self, account_id: str, user_name: str) -> User:
        with self._lock:
            return User(*self._user_row(self._db, account_id, user_name))

    def principal_exists(self, principal_arn: str) -> bool:
        """Whether a user/role principal ARN names a stored principal by its canonical ARN.

        A policy's principal is checked when the policy is saved, as AWS does: an ARN naming
        nobody (or a user in another case or under another path than the stored one) is
        "Invalid principal in policy", so a user created later under that name inherits
        nothing [IAM UG, "AWS JSON policy elements: Principal", IAM users]. Coffer has no
        roles, so a role ARN names nobody. Other principals (roots, STS sessions) are not
        users and are not looked up here."""
        try:
            arn = parse_arn(principal_arn)
        except ARNError:
            return False
        if arn.service != "iam":
            return True
        if not arn.resource.startswith("user/"):
            return not arn.resource.startswith("role/")
        name = arn.resource.rsplit("/", 1)[1]
        try:
            return self.get_user(arn.account, name).arn == principal_arn
        except ie.NoSuchEntity:
            return False

    def list_users(self, account_id: str, path_prefix: str = "/") -> list[User]:
        rows = self._q("SELECT account_id, user_name, path, user_id, created FROM users "
                       "WHERE account_id=? ORDER BY user_name", (account_id,))
        return [User(*r) for r in rows if r[2].startswith(path_prefix or "/")]

    def delete_user(self, account_id: str, user_name: str) -> None:
        with self._tx() as db:
            self._user_row(db, account_id, user_name)
            args = (account_id, user_name)
            for table, what in (("access_keys", "must delete access keys first"),
                                ("user_policies", "must delete policies first"),
                                ("attachments", "must detach all policies first")):
                if db.execute(f"SELECT 1 FROM {table} WHERE account_id=? AND user_name=?",
                              args).fetchone():
                    raise ie.DeleteConflict(f"Cannot delete entity, {what}.")
            db.execute("DELETE FROM users WHERE account_id=? AND user_name=?", args)

    # -- access keys ---------------------------------------------------------------------

    def _insert_key(self, db: sqlite3.Connection, account_id: str,
                    user_name: str) -> NewAccessKey:
        while True:
            akid = _rand_id("AKIA", 16)
            if not db.execute("SELECT 1 FROM access_keys WHERE access_key_id=?",
                              (akid,)).fetchone():
                break
        secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
        sealed = secretbox.seal(self._key, secret.encode(), akid.encode())
        now = self._clock()
        db.execute("INSERT INTO access_keys VALUES(?, ?, ?, 'Active', ?, ?)",
                   (akid, account_id, user_name, sealed, now))
        key = AccessKey(akid, account_id, user_name or None, "Active", now)
        return NewAccessKey(key=key, secret_access_key=secret)

    def create_access_key(self, account_id: str, user_name: str | None) -> NewAccessKey:
        """A new Active key for ``user_name`` (None: the account root)."""
        with self._tx() as db:
            if user_name:
                user_name = self._user_row(db, account_id, user_name)[1]    # stored case
            count = db.execute("SELECT COUNT(*) FROM access_keys WHERE account_id=? AND "
                               "user_name=?", (account_id, user_name or "")).fetchone()[0]
            if count >= MAX_ACCESS_KEYS:
                raise ie.LimitExceeded("Cannot exceed quota for AccessKeysPerUser: "
                                       f"{MAX_ACCESS_KEYS}")
            return self._insert_key(db, account_id, user_name or "")

    def list_access_keys(self, account_id: str, user_name: str | None) -> list[AccessKey]:
        with self._lock:
            if user_name:
                self._user_row(self._db, account_id, user_name)
            rows = self._db.execute(
                "SELECT access_key_id, account_id, user_name, status, created FROM access_keys "
                "WHERE account_id=? AND user_name=? ORDER BY created",
                (account_id, user_name or "")).fetchall()
        return [AccessKey(r[0], r[1], r[2] or None, r[3], r[4]) for r in rows]

    def _key_row(self, db: sqlite3.Connection, account_id: str, user_name: str | None,
                 access_key_id: str) -> None:
        if user_name:
            self._user_row(db, account_id, user_name)
        if not db.execute("SELECT 1 FROM access_keys WHERE access_key_id=? AND account_id=? "
                          "AND user_name=?", (access_key_id, account_id, user_name or "")
                          ).fetchone():
            raise ie.NoSuchEntity(f"The Access Key with id {access_key_id} cannot be found.")

    def update_access_key(self, account_id: str, user_name: str | None, access_key_id: str,
                          status: str) -> None:
        if status not in ("Active", "Inactive"):
            raise ie.ValidationError(
                f"1 validation error detected: Value '{status}' at 'status' failed to satisfy "
                "constraint: Member must satisfy enum value set: [Active, Inactive]")
        with self._tx() as db:
            self._key_row(db, account_id, user_name, access_key_id)
            db.execute("UPDATE access_keys SET status=? WHERE access_key_id=?",
                       (status, access_key_id))

    def delete_access_key(self, account_id: str, user_name: str | None,
                          access_key_id: str) -> None:
        with self._tx() as db:
            self._key_row(db, account_id, user_name, access_key_id)
            db.execute("DELETE FROM access_keys WHERE access_key_id=?", (access_key_id,))

    def lookup(self, access_key_id: str) -> Credential | None:
        """The credential of an Active key; None for unknown or Inactive keys."""
        rows = self._q("SELECT account_id, user_name, status, sealed FROM access_keys "
                       "WHERE access_key_id=?", (access_key_id,))
        if not rows or rows[0][2] != "Active":
            return None
        account_id, user_name, _, sealed = rows[0]
        try:
            secret = secretbox.open_(self._key, sealed, access_key_id.encode()).decode()
        except secretbox.CryptoError:
            log.warning("access key %s: stored secret does not open (wrong secret.key?)",
                        access_key_id)
            return None
        if not user_name:
            return Credential(access_key_id=access_key_id, secret_access_key=secret,
                              account_id=account_id, principal_arn=root_arn(account_id))
        user = self._q("SELECT path, user_name FROM users WHERE account_id=? AND user_name=?",
                       (account_id, user_name))
        if not user:
            return None
        return Credential(access_key_id=access_key_id, secret_access_key=secret,
                          account_id=account_id,
                          principal_arn=user_arn(account_id, user[0][1], user[0][0]),
                          user_name=user[0][1])

    # -- inline policies -----------------------------------------------------------------

    def put_user_policy(self, account_id: str, user_name: str, policy_name: str,
                        document: str) -> None:
        _check_name(policy_name, "policyName", _POLICY_NAME)
        _validate(document)
        with self._tx() as db:
            user_name = self._user_row(db, account_id, user_name)[1]
            others = db.execute("SELECT document FROM user_policies WHERE account_id=? AND "
                                "user_name=? AND policy_name<>?",
                                (account_id, user_name, policy_name)).fetchall()
            size = sum(_size(d) for (d,) in others) + _size(document)
            if size > MAX_INLINE_SIZE:
                raise ie.LimitExceeded(f"Maximum policy size of {MAX_INLINE_SIZE} bytes "
                                       f"exceeded for user {user_name}")
            db.execute("INSERT OR REPLACE INTO user_policies VALUES(?, ?, ?, ?)",
                       (account_id, user_name, policy_name, document))

    def get_user_policy(self, account_id: str, user_name: str, policy_name: str) -> str:
        with self._lock:
            self._user_row(self._db, account_id, user_name)
            row = self._db.execute("SELECT document FROM user_policies WHERE account_id=? AND "
                                   "user_name=? AND policy_name=?",
                                   (account_id, user_name, policy_name)).fetchone()
        if row is None:
            raise ie.NoSuchEntity(f"The user policy with name {policy_name} cannot be found.")
        return row[0]

    def list_user_policies(self, account_id: str, user_name: str) -> list[str]:
        with self._lock:
            self._user_row(self._db, account_id, user_name)
            rows = self._db.execute("SELECT policy_name FROM user_policies WHERE account_id=? "
                                    "AND user_name=? ORDER BY policy_name",
                                    (account_id, user_name)).fetchall()
        return [r[0] for r in rows]

    def delete_user_policy(self, account_id: str, user_name: str, policy_name: str) -> None:
        with self._tx() as db:
            self._user_row(db, account_id, user_name)
            cur = db.execute("DELETE FROM user_policies WHERE account_id=? AND user_name=? AND "
                             "policy_name=?", (account_id, user_name, policy_name))
            if cur.rowcount == 0:
                raise ie.NoSuchEntity(f"The user policy with name {policy_name} cannot be "
                                      "found.")

    # -- managed policies ----------------------------------------------------------------

    def create_policy(self, account_id: str, policy_name: str, document: str, path: str = "/",
                      description: str = "") -> ManagedPolicy:
        _check_name(policy_name, "policyName", _POLICY_NAME)
        path = _check_path(path)
        _validate(document)
        if _size(document) > MAX_MANAGED_SIZE:
            raise ie.LimitExceeded(f"Cannot exceed quota for PolicySize: {MAX_MANAGED_SIZE}")
        now = self._clock()
        mp = ManagedPolicy(policy_arn(account_id, policy_name, path), account_id, policy_name,
                           path, _rand_id("ANPA", 17), description or "", document, "v1", now,
                           now)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM managed_policies WHERE account_id=? AND "
                          "policy_name=?", (account_id, policy_name)).fetchone():
                raise ie.EntityAlreadyExists(f"A policy called {policy_name} already exists. "
                                             "Duplicate names are not allowed.")
            db.execute("INSERT INTO managed_policies VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (mp.arn, account_id, policy_name, path, mp.policy_id, mp.description,
                        document, "v1", now, now))
        return mp

    def get_policy(self, arn: str, account_id: str | None = None) -> ManagedPolicy:
        """The managed policy ``arn``; with ``account_id``, only one that account may read
        (its own or an AWS-managed one): another account's policy is NoSuchEntity, never its
        document (issue 11, finding 10)."""
        if account_id is not None and not readable_by(arn, account_id):
            raise ie.NoSuchEntity(f"Policy {arn} was not found.")
        if arn.startswith(_AWS_POLICY_PREFIX):
            name = arn[len(_AWS_POLICY_PREFIX):]
            if name in AWS_MANAGED_POLICIES:
                count = self._q("SELECT COUNT(*) FROM attachments WHERE policy_arn=?", (arn,))
                return ManagedPolicy(arn, "aws", name, "/", "ANPAAWSMANAGED" + name[:7].upper(),
                                     "", AWS_MANAGED_POLICIES[name], "v1", 0.0, 0.0,
                                     count[0][0])
        rows = self._q("SELECT arn, account_id, policy_name, path, policy_id, description, "
                       "document, version, created, updated, (SELECT COUNT(*) FROM "
                       "attachments a WHERE a.policy_arn=m.arn) FROM managed_policies m "
                       "WHERE arn=?", (arn,))
        if not rows:
            raise ie.NoSuchEntity(f"Policy {arn} was not found.")
        return ManagedPolicy(*rows[0])

    def list_policies(self, account_id: str) -> list[ManagedPolicy]:
        rows = self._q("SELECT arn FROM managed_policies WHERE account_id=? "
                       "ORDER BY policy_name", (account_id,))
        return [self.get_policy(r[0]) for r in rows]

    def delete_policy(self, account_id: str, arn: str) -> None:
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM managed_policies WHERE arn=? AND account_id=?",
                              (arn, account_id)).fetchone():
                raise ie.NoSuchEntity(f"Policy {arn} was not found.")
            if db.execute("SELECT 1 FROM attachments WHERE policy_arn=?", (arn,)).fetchone():
                raise ie.DeleteConflict("Cannot delete a policy attached to entities.")
            db.execute("DELETE FROM managed_policies WHERE arn=?", (arn,))

    def attach_user_policy(self, account_id: str, user_name: str, arn: str) -> None:
        try:
            owner = parse_arn(arn).account
        except ARNError:
            raise ie.InvalidInput(f"ARN {arn} is not valid.") from None
        if owner not in (account_id, "aws"):
            raise ie.NoSuchEntity(f"Policy {arn} does not exist or is not attachable.")
        try:
            self.get_policy(arn)
        except ie.NoSuchEntity:
            raise ie.NoSuchEntity(f"Policy {arn} does not exist or is not attachable.") from None
        with self._tx() as db:
            user_name = self._user_row(db, account_id, user_name)[1]
            db.execute("INSERT OR IGNORE INTO attachments VALUES(?, ?, ?)",
                       (account_id, user_name, arn))

    def detach_user_policy(self, account_id: str, user_name: str, arn: str) -> None:
        with self._tx() as db:
            self._user_row(db, account_id, user_name)
            cur = db.execute("DELETE FROM attachments WHERE account_id=? AND user_name=? AND "
                             "policy_arn=?", (account_id, user_name, arn))
            if cur.rowcount == 0:
                raise ie.NoSuchEntity(f"Policy {arn} was not found.")

    def list_attached_user_policies(self, account_id: str,
                                    user_name: str) -> list[ManagedPolicy]:
        with self._lock:
            self._user_row(self._db, account_id, user_name)
            rows = self._db.execute("SELECT policy_arn FROM attachments WHERE account_id=? AND "
                                    "user_name=? ORDER BY policy_arn",
                                    (account_id, user_name)).fetchall()
        out = []
        for (arn,) in rows:
            with contextlib.suppress(ie.NoSuchEntity):
                out.append(self.get_policy(arn))
        return out

    # -- evaluation input ----------------------------------------------------------------

    def identity_policies(self, principal_arn: str) -> list[Policy]:
        """The inline and attached policies of the user ``principal_arn``, parsed and named
        (inline: its name; managed: its ARN). Roots and unknown principals have none."""
        try:
            arn = parse_arn(principal_arn)
        except ARNError:
            return []
        if arn.service != "iam" or not arn.resource.startswith("user/"):
            return []
        user_name = arn.resource.rsplit("/", 1)[1]
        rows = self._q("SELECT policy_name, document FROM user_policies WHERE account_id=? "
                       "AND user_name=? ORDER BY policy_name", (arn.account, user_name))
        attached = self._q("SELECT policy_arn FROM attachments WHERE account_id=? AND "
                           "user_name=? ORDER BY policy_arn", (arn.account, user_name))
        docs = list(rows)
        for (parn,) in attached:
            with contextlib.suppress(ie.NoSuchEntity):
                docs.append((parn, self.get_policy(parn).document))
        out = []
        for name, document in docs:
            try:
                out.append(parse_policy(document, kind="identity", name=name))
            except PolicyError:
                log.error("stored policy %s of %s no longer parses; ignored", name,
                          principal_arn)
        return out


def readable_by(policy_arn: str, account_id: str) -> bool:
    try:
        owner = parse_arn(policy_arn).account
    except ARNError:
        return False
    return owner in (account_id, "aws")


def _size(document: str) -> int:
    return len("".join(document.split()))


def _validate(document: str) -> None:
    if not isinstance(document, str):
        raise ie.MalformedPolicyDocument("Syntax errors in policy.")
    try:
        parse_policy(document, kind="identity", saving=True)
    except PolicyError as exc:
        raise ie.MalformedPolicyDocument(exc.message) from None


def _create_private(path) -> None:
    """Create the SQLite database file 0600 if it is missing (SQLite gives -wal / -shm the
    database file's mode). Never opens an existing database: closing any descriptor of a file
    drops every POSIX lock this process holds on it, including SQLite's."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
