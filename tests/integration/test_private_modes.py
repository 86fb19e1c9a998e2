"""Finding 19 of issue 11 without the CLI: each store creates its files 0600 and its directories
0700 itself, even under umask 000 (the ``coffer`` commands also set umask 077; library users and
tests do not get that). SQLite's ``-wal`` / ``-shm`` files take the database file's mode.

Also ``gateway.datadir.secure_data_dir``: a pre-existing loose data dir and loose files in it are
tightened, a root key others could read is left for ``kms.crypto.rootkey`` to refuse.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.datadir import secure_data_dir
from gateway.identity import IdentityStore
from kms.crypto.tls import ensure_self_signed
from kms.model import Caller
from kms.service import KMS
from storage.fs import FSObjectStore
from tests.kms_policies import KMS_ADMIN

ACCT = "111122223333"
ALICE = Caller(f"arn:aws:iam::{ACCT}:user/alice", ACCT, identity_policies=KMS_ADMIN)


def _modes(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def _loose(root: Path) -> dict[str, str]:
    return {p: f"{m:04o}" for p, m in _modes(root).items()
            if m != (0o700 if (root / p).is_dir() else 0o600)}


@pytest.fixture
def umask_000():
    old = os.umask(0)
    yield
    os.umask(old)


async def test_stores_create_private_files_under_umask_000(tmp_path, umask_000):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    store = FSObjectStore(data / "s3")
    await store.open()
    await store.create_bucket("bkt", region="us-east-1", owner=ACCT)
    w = await store.open_writer("bkt", "k")
    await w.write(b"x" * 100)
    await w.commit("etag", {"content-type": "text/plain"})
    up = await store.create_multipart_upload("bkt", "mp", {})
    pw = await store.open_part_writer("bkt", up.upload_id, 1)
    await pw.write(b"p")
    await pw.commit("petag", {})
    with KMS.open(data) as kms:
        kms.create_key(ALICE)
    ids = IdentityStore.open(data, key_file=tmp_path / "iam.key")
    ids.ensure_account(ACCT)
    ensure_self_signed(data / "tls")
    names = set(_modes(data))
    assert {"kms/kms.db", "iam/iam.db", "tls/server-key.pem"} <= names, names
    assert any(n.endswith("-wal") for n in names), names
    try:
        assert _loose(data) == {}
    finally:
        ids.close()
        await store.close()
    assert _loose(data) == {}
    assert stat.S_IMODE((tmp_path / "iam.key").stat().st_mode) == 0o600


def test_secure_data_dir_tightens_what_was_left_loose(tmp_path, umask_000):
    data = tmp_path / "data"
    (data / "s3" / "buckets").mkdir(parents=True, mode=0o755)
    os.chmod(data, 0o777)
    (data / "s3" / "buckets" / "obj").write_bytes(b"x")
    os.chmod(data / "s3" / "buckets" / "obj", 0o644)
    (data / "readonly").write_bytes(b"r")
    os.chmod(data / "readonly", 0o444)
    (data / "kms").mkdir(mode=0o700)
    (data / "kms" / "root.key").write_bytes(b"k")
    os.chmod(data / "kms" / "root.key", 0o644)
    outside = tmp_path / "elsewhere"
    outside.write_bytes(b"not ours to change")
    os.chmod(outside, 0o644)
    (data / "link").symlink_to(outside)
    assert secure_data_dir(data) == 5      # data, s3, buckets, obj, readonly
    modes = _modes(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert modes["s3"] == modes["s3/buckets"] == 0o700
    assert modes["s3/buckets/obj"] == 0o600
    assert modes["readonly"] == 0o400                  # owner bits kept, never loosened
    assert modes["kms/root.key"] == 0o644              # left for FileRootKey.open to refuse
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644   # symlinks are not followed
    assert secure_data_dir(data) == 0


def test_secure_data_dir_creates_a_private_dir(tmp_path, umask_000):
    secure_data_dir(tmp_path / "new" / "data")
    assert stat.S_IMODE((tmp_path / "new" / "data").stat().st_mode) == 0o700


def test_private_create_keeps_sqlite_locks_of_other_connections(tmp_path):
    """Creating the database 0600 must never open an existing one: closing any descriptor of
    a file drops this process's POSIX locks on it, so another process closing its connection
    would think it was the last, checkpoint and delete the -wal / -shm under our feet (seen as
    "disk I/O error" in the server while `coffer kms key-usage` ran against its data dir)."""
    import subprocess
    import sys
    import threading

    with KMS.open(tmp_path) as kms:
        kid = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]

        def other_thread() -> None:         # a second connection of this process
            kms.describe_key(ALICE, kid)
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        db = tmp_path / "kms" / "kms.db"
        subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect("
                        "sys.argv[1]); c.execute('SELECT count(*) FROM keys').fetchone(); "
                        "c.close()", str(db)], check=True, timeout=60)
        assert db.with_name("kms.db-wal").exists()
        for _ in range(3):
            kms.create_key(ALICE)
        assert len(kms.list_keys(ALICE)["Keys"]) == 4
