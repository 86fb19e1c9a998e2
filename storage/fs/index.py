"""The per-bucket listing index: a derived, sorted copy of (key, size, etag, last_modified).

Format (SQLite, WAL journal), ``PRAGMA user_version = 1``::

    CREATE TABLE objects(
        key           BLOB PRIMARY KEY,   -- the key's UTF-8 bytes
        size          INTEGER NOT NULL,
        etag          TEXT NOT NULL,
        last_modified REAL NOT NULL
    ) WITHOUT ROWID;

SQLite compares BLOBs with memcmp, which for UTF-8 is code-point order: exactly the order S3 lists
keys in (ListObjectsV2: "returned in UTF-8 binary order"). Keys are always bound as ``bytes``:
a TEXT value would sort before every BLOB.

The sidecars are the truth. The index is rebuilt from them when the file is missing, has another
``user_version``, or the store was not closed cleanly; a rebuild simply drops the file.

Delimiter listing skip-scans: once a common prefix ``P`` is emitted the cursor jumps to
``successor(P)`` (the smallest byte string greater than every string starting with ``P``), so the
cost is one B-tree seek per common prefix, whatever the number of keys under it.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .atomic import unlink_quiet

__all__ = ["INDEX_VERSION", "IndexRow", "ListPage", "BucketIndex", "successor"]

INDEX_VERSION = 1
_SCHEMA = """CREATE TABLE IF NOT EXISTS objects(
    key BLOB PRIMARY KEY, size INTEGER NOT NULL, etag TEXT NOT NULL,
    last_modified REAL NOT NULL) WITHOUT ROWID"""

IndexRow = tuple[bytes, int, str, float]


@dataclass(frozen=True, slots=True)
class ListPage:
    rows: list[IndexRow]
    prefixes: list[bytes]
    is_truncated: bool
    next_marker: bytes | None


def successor(prefix: bytes) -> bytes | None:
    """Smallest byte string greater than every string that starts with ``prefix``; None when
    no such bound exists (empty prefix, or all 0xff)."""
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes([p[-1] + 1])


class BucketIndex:
    """One SQLite connection per bucket, used from worker threads under ``self.lock``."""

    def __init__(self, path: Path, *, sync: bool = True) -> None:
        self.path = path
        self.sync = sync
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    # -- lifecycle (blocking)

    def open(self) -> bool:
        """Open the index; True if it must be rebuilt (new file or other version)."""
        with self.lock:
            fresh = not self.path.exists()
            try:
                conn = self._connect()
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.DatabaseError:       # damaged: it is only derived data
                conn, version = None, -1
            if not fresh and version != INDEX_VERSION:
                if conn is not None:
                    conn.close()
                self._drop_files()
                conn, fresh = self._connect(), True
            conn.execute(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {INDEX_VERSION}")
            self._conn = conn
            return fresh

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def rebuild(self, rows: Iterable[IndexRow]) -> int:
        """Replace the whole index with ``rows``; returns the row count."""
        with self.lock:
            self.close()
            self._drop_files()
            conn = self._connect()
            conn.execute(_SCHEMA)
            conn.execute("BEGIN")
            n = 0
            for row in rows:
                conn.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?)", row)
                n += 1
            conn.execute(f"PRAGMA user_version = {INDEX_VERSION}")
            conn.execute("COMMIT")
            self._conn = conn
            return n

    def _connect(self) -> sqlite3.Connection:
        _create_private(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # The index is derived: after a crash it is rebuilt, so it need not fsync every commit.
        conn.execute(f"PRAGMA synchronous={'NORMAL' if self.sync else 'OFF'}")
        return conn

    def _drop_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            unlink_quiet(self.path.with_name(self.path.name + suffix))

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("index is closed")
        return self._conn

    # -- mutations (blocking; caller holds self.lock when ordering matters)

    def upsert(self, row: IndexRow) -> None:
        with self.lock:
            self.conn.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?)", row)

    def delete(self, key: bytes) -> None:
        with self.lock:
            self.conn.execute("DELETE FROM objects WHERE key = ?", (key,))

    def is_empty(self) -> bool:
        with self.lock:
            return self.conn.execute("SELECT 1 FROM objects LIMIT 1").fetchone() is None

    def count(self) -> int:
        with self.lock:
            return self.conn.execute("SELECT count(*) FROM objects").fetchone()[0]

    # -- listing (blocking)

    def list_page(self, prefix: bytes, delimiter: bytes, start_after: bytes,
                  max_keys: int) -> ListPage:
        if max_keys <= 0:
            return ListPage([], [], False, None)
        upper = successor(prefix) if prefix else None
        # Cursor: (bound, inclusive). Keys must be > start_after and start with prefix.
        if prefix > start_after:
            cursor: tuple[bytes, bool] | None = (prefix, True)
        else:
            cursor = (start_after, False)
        rows: list[IndexRow] = []
        prefixes: list[bytes] = []
        last: bytes | None = None
        with self.lock:
            if not delimiter:
                got = self._scan(cursor, upper, max_keys + 1).fetchall()
                rows = got[:max_keys]
                truncated = len(got) > max_keys
                return ListPage(rows, [], truncated, rows[-1][0] if truncated else None)
            plen = len(prefix)
            while cursor is not None and len(rows) + len(prefixes) < max_keys:
                need = max_keys - len(rows) - len(prefixes)
                seen = 0
                jumped = False
                for row in self._scan(cursor, upper, need):
                    seen += 1
                    key = row[0]
                    at = key.find(delimiter, plen)
                    if at < 0:
                        rows.append(row)
                        last = key
                        cursor = (key, False)
                        if len(rows) + len(prefixes) >= max_keys:
                            break
                        continue
                    cp = key[:at + len(delimiter)]
                    # A marker inside P (start_after = P + "x") means P was listed already.
                    if cp > start_after:
                        prefixes.append(cp)
                        last = cp
                    nxt = successor(cp)
                    cursor = (nxt, True) if nxt is not None else None
                    jumped = True
                    break
                if not jumped and seen < need:
                    cursor = None            # ran off the end of the range
            truncated = False
            if cursor is not None and len(rows) + len(prefixes) >= max_keys:
                truncated = self._scan(cursor, upper, 1).fetchone() is not None
        return ListPage(rows, prefixes, truncated, last if truncated else None)

    def _scan(self, cursor: tuple[bytes, bool], upper: bytes | None, limit: int) -> sqlite3.Cursor:
        bound, inclusive = cursor
        sql = "SELECT key, size, etag, last_modified FROM objects WHERE key " + (
            ">= ?" if inclusive else "> ?")
        args: list[object] = [bound]
        if upper is not None:
            sql += " AND key < ?"
            args.append(upper)
        sql += " ORDER BY key LIMIT ?"
        args.append(limit)
        return self.conn.execute(sql, args)


def _create_private(path) -> None:
    """Create the SQLite database file 0600 if it is missing (SQLite gives -wal / -shm the
    database file's mode). Never opens an existing database: closing any descriptor of a file
    drops every POSIX lock this process holds on it, including SQLite's."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
