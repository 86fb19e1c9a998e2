"""FSObjectStore on a real filesystem: commits, isolation, recovery, listing, multipart."""
from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from storage.errors import (BucketExists, BucketNotEmpty, InvalidKey, InvalidPart, NoSuchBucket,
                            NoSuchKey, NoSuchUpload, StorageError)
from storage.fs import FSObjectStore
from storage.fs.layout import key_hash

B = "bkt"


async def put(store: FSObjectStore, key: str, data: bytes, bucket: str = B,
              meta: dict | None = None, chunk: int = 1 << 16):
    w = await store.open_writer(bucket, key)
    for i in range(0, len(data), chunk):
        await w.write(data[i:i + chunk])
    return await w.commit(f"etag-{len(data)}-{data[:1].hex()}", meta or {})


async def get(store: FSObjectStore, key: str, bucket: str = B, **kw) -> bytes:
    r = await store.open_object(bucket, key)
    try:
        return b"".join([c async for c in r.read(**kw)])
    finally:
        await r.close()


@pytest.fixture
async def store(tmp_path: Path):
    s = FSObjectStore(tmp_path / "data")
    await s.open()
    await s.create_bucket(B, region="us-east-1", owner="acct-1")
    yield s
    await s.close()


def crash(store: FSObjectStore) -> None:
    """Drop the store without close(): no CLEAN marker, as after kill -9."""
    for b in store._buckets.values():
        b.index.close()
    store._buckets.clear()


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


# -- objects

async def test_put_get_overwrite_delete(store: FSObjectStore) -> None:
    info = await put(store, "a", b"one", meta={"content-type": "text/plain", "x": {"y": [1]}})
    assert (info.key, info.size, info.part_sizes) == ("a", 3, None)
    await put(store, "a/b", b"two")
    head = await store.head_object(B, "a")
    assert head.meta == {"content-type": "text/plain", "x": {"y": [1]}} and head.etag == info.etag
    assert await get(store, "a") == b"one" and await get(store, "a/b") == b"two"
    await put(store, "a", b"x" * 3_000_000, chunk=1 << 20)
    assert await get(store, "a") == b"x" * 3_000_000
    assert await get(store, "a", start=10, end=20, chunk_size=3) == b"x" * 10
    assert await store.delete_object(B, "a") is True
    assert await store.delete_object(B, "a") is False
    with pytest.raises(NoSuchKey):
        await store.head_object(B, "a")
    with pytest.raises(NoSuchKey):
        await store.open_object(B, "a")
    await put(store, "empty", b"")
    assert await get(store, "empty") == b""
    shard = store.layout.bucket(B).shard(key_hash("a/b"))
    assert len(list(shard.glob(f"{key_hash('a/b')}.*.data"))) == 1


async def test_tricky_keys_round_trip(store: FSObjectStore) -> None:
    from tests.unit.test_storage_layout import TRICKY_KEYS
    for i, key in enumerate(TRICKY_KEYS):
        await put(store, key, str(i).encode())
    for i, key in enumerate(TRICKY_KEYS):
        assert await get(store, key) == str(i).encode()
    listed = (await store.list_objects(B, max_keys=1000)).objects
    assert [o.key for o in listed] == sorted(TRICKY_KEYS, key=lambda k: k.encode())
    root = store.layout.root.resolve()
    for p in root.parent.rglob("*"):
        assert p.resolve().is_relative_to(root)


async def test_writer_errors(store: FSObjectStore) -> None:
    with pytest.raises(NoSuchBucket):
        await store.open_writer("nope", "k")
    for bad in ("", "x" * 1025):
        with pytest.raises(InvalidKey):
            await store.open_writer(B, bad)
    w = await store.open_writer(B, "k")
    await w.write(b"data")
    await w.abort()
    assert not list(store.layout.staging.iterdir())
    with pytest.raises(NoSuchKey):
        await store.head_object(B, "k")
    # The bucket vanishes while a write is staged: commit reports it and leaves nothing.
    await store.create_bucket("gone", region="r", owner="o")
    w = await store.open_writer("gone", "k")
    await w.write(b"x")
    await store.delete_bucket("gone")
    with pytest.raises(NoSuchBucket):
        await w.commit("e", {})
    assert not list(store.layout.staging.iterdir())


async def test_reader_isolated_from_overwrite_and_delete(store: FSObjectStore) -> None:
    await put(store, "k", b"a" * 300_000)
    reader = await store.open_object(B, "k")
    it = reader.read(chunk_size=100_000)
    first = await it.__anext__()
    await put(store, "k", b"b" * 7)
    rest = [c async for c in it]
    assert first + b"".join(rest) == b"a" * 300_000
    r2 = await store.open_object(B, "k")
    await store.delete_object(B, "k")
    assert b"".join([c async for c in r2.read()]) == b"b" * 7
    await reader.close()
    await r2.close()


async def test_concurrent_puts_last_commit_wins(store: FSObjectStore) -> None:
    async def one(i: int) -> None:
        data = bytes([i]) * (1000 + i)
        w = await store.open_writer(B, "hot")
        for j in range(0, len(data), 97):
            await w.write(data[j:j + 97])
            await asyncio.sleep(0)
        await w.commit(f"e{i}", {"i": i})

    async def reads() -> None:
        for _ in range(30):
            try:
                body = await get(store, "hot")
            except NoSuchKey:
                continue
            assert body == body[:1] * (1000 + body[0])   # never a mix
            await asyncio.sleep(0)

    await asyncio.gather(*(one(i) for i in range(24)), reads())
    head = await store.head_object(B, "hot")
    i = head.meta["i"]
    assert head.etag == f"e{i}" and await get(store, "hot") == bytes([i]) * (1000 + i)
    (listed,) = (await store.list_objects(B, prefix="hot")).objects
    assert listed.etag == head.etag and listed.size == head.size
    h = key_hash("hot")
    shard = store.layout.bucket(B).shard(h)
    assert sorted(p.name.split(".")[-1] for p in shard.glob(f"{h}*")) == ["data", "json"]
    assert not list(store.layout.staging.iterdir())


async def test_cancelled_commit_still_completes(store: FSObjectStore) -> None:
    w = await store.open_writer(B, "c")
    await w.write(b"z" * 10_000)
    # The gateway always commits under asyncio.shield: a client that disconnects after its last
    # byte must not undo (or half-do) the commit.
    async def shielded() -> None:
        await asyncio.shield(w.commit("e", {}))

    task = asyncio.create_task(shielded())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):                      # the worker thread finishes the commit
        try:
            assert await get(store, "c") == b"z" * 10_000
            break
        except NoSuchKey:
            await asyncio.sleep(0.01)
    else:
        pytest.fail("commit did not complete")


# -- buckets

async def test_buckets(store: FSObjectStore) -> None:
    with pytest.raises(BucketExists) as e:
        await store.create_bucket(B, region="eu", owner="other")
    assert e.value.owner == "acct-1"
    await store.create_bucket("zzz", region="eu-west-1", owner="acct-2")
    assert [b.name for b in await store.list_buckets()] == [B, "zzz"]
    assert (await store.head_bucket("zzz")).region == "eu-west-1"
    await store.put_bucket_config("zzz", "encryption", {"rules": [{"alg": "aws:kms"}]})
    assert await store.get_bucket_config("zzz", "encryption") == {"rules": [{"alg": "aws:kms"}]}
    assert await store.get_bucket_config("zzz", "policy") is None
    await store.put_bucket_config("zzz", "encryption", None)
    assert await store.get_bucket_config("zzz", "encryption") is None

    await put(store, "k", b"1", bucket="zzz")
    with pytest.raises(BucketNotEmpty):
        await store.delete_bucket("zzz")
    await store.delete_object("zzz", "k")
    # Only in-progress uploads left: the bucket goes, and its uploads with it (issue 14).
    await store.create_multipart_upload("zzz", "m", {})
    await store.delete_bucket("zzz")
    for call in (store.head_bucket("zzz"), store.delete_bucket("zzz"),
                 store.list_objects("zzz"), store.get_bucket_config("zzz", "encryption")):
        with pytest.raises(NoSuchBucket):
            await call
    assert [b.name for b in await store.list_buckets()] == [B]
    await store.create_bucket("zzz", region="r", owner="o")     # the name is free again
    assert (await store.list_objects("zzz")).objects == []


# -- recovery

async def test_crash_debris_swept_on_reopen(tmp_path: Path) -> None:
    s = FSObjectStore(tmp_path)
    await s.open()
    await s.create_bucket(B, region="r", owner="o")
    await put(s, "keep", b"k")
    up = await s.create_multipart_upload(B, "mp", {})
    w = await s.open_part_writer(B, up.upload_id, 1)
    await w.write(b"p")
    await w.commit("pe", {})
    w = await s.open_writer(B, "inflight")
    await w.write(b"half")                   # never committed
    crash(s)
    bp = s.layout.bucket(B)
    h = key_hash("keep")
    orphan = bp.shard(h) / f"{h}.{'a' * 24}.data"             # renamed in, no sidecar commit
    orphan.write_bytes(b"orphan")
    hn = key_hash("never")
    (bp.shard(hn) / f"{hn}.{'b' * 24}.data").write_bytes(b"x")
    (bp.shard(hn) / f"{hn}.json.{'c' * 24}.tmp").write_bytes(b"{}")
    udir = bp.upload_dir(up.upload_id)
    (udir / f"00002.{'d' * 24}.data").write_bytes(b"part never recorded")
    half = bp.uploads / ("Z" * 32)
    half.mkdir()
    (half / f"00001.{'e' * 24}.data").write_bytes(b"half-removed upload")

    s2 = FSObjectStore(tmp_path)
    await s2.open()
    assert not list(s2.layout.staging.iterdir())
    assert not orphan.exists() and not half.exists()
    assert sorted(p.name for p in bp.shard(hn).iterdir()) == []
    assert [p.part_number for p in await s2.list_parts(B, up.upload_id)] == [1]
    assert len(list(udir.glob("*.data"))) == 1
    assert await get(s2, "keep") == b"k"
    assert [o.key for o in (await s2.list_objects(B)).objects] == ["keep"]
    await s2.close()


async def test_index_rebuilt_after_unclean_shutdown_or_loss(tmp_path: Path) -> None:
    s = FSObjectStore(tmp_path)
    await s.open()
    await s.create_bucket(B, region="r", owner="o")
    for k in ("a", "b", "c/d"):
        await put(s, k, k.encode())
    crash(s)
    index = s.layout.bucket(B).index
    with sqlite3.connect(index) as db:           # the index drifts from the sidecars
        db.execute("DELETE FROM objects WHERE key = ?", (b"a",))
        db.execute("INSERT INTO objects VALUES (?, 1, 'x', 0)", (b"ghost",))
    s = FSObjectStore(tmp_path)
    await s.open()
    assert [o.key for o in (await s.list_objects(B)).objects] == ["a", "b", "c/d"]
    await s.close()
    assert (tmp_path / "CLEAN").exists()

    index.unlink()                                # clean shutdown, index lost
    s = FSObjectStore(tmp_path)
    await s.open()
    assert not (tmp_path / "CLEAN").exists()
    assert [o.key for o in (await s.list_objects(B)).objects] == ["a", "b", "c/d"]
    with sqlite3.connect(index) as db:
        db.execute("DELETE FROM objects")
    assert (await s.list_objects(B)).objects == []
    assert await s.rebuild_index(B) == 3
    assert [(o.key, o.size) for o in (await s.list_objects(B)).objects] == [
        ("a", 1), ("b", 1), ("c/d", 3)]
    await s.close()


async def test_completed_upload_left_behind_by_crash_is_dropped(tmp_path: Path) -> None:
    s = FSObjectStore(tmp_path)
    await s.open()
    await s.create_bucket(B, region="r", owner="o")
    up = await s.create_multipart_upload(B, "mp", {})
    w = await s.open_part_writer(B, up.upload_id, 1)
    await w.write(b"abc")
    await w.commit("p1", {})
    udir = s.layout.bucket(B).upload_dir(up.upload_id)
    shutil.copytree(udir, tmp_path / "saved")
    await s.complete_multipart_upload(B, up.upload_id, [1], "m-1", {})
    crash(s)
    shutil.copytree(tmp_path / "saved", udir)          # crashed before the upload dir went
    s = FSObjectStore(tmp_path)
    await s.open()
    assert not udir.exists()
    assert (await s.list_multipart_uploads(B)).uploads == []
    assert await get(s, "mp") == b"abc"
    await s.close()


# -- listing

ALPHABET = ["a", "b", "/", "/", "/", "é", "中", "😀", "-", ".", " ", "%", "+", "z", "\x7f"]


def reference_list(keys: list[str], prefix: str, delimiter: str, start_after: str,
                   max_keys: int) -> tuple[list[str], list[str], bool, str | None]:
    """S3 ListObjects semantics by brute force over UTF-8 bytes."""
    p, d, s = prefix.encode(), delimiter.encode(), start_after.encode()
    entries: list[tuple[str, bytes]] = []
    for k in sorted(x.encode() for x in keys):
        if not k.startswith(p) or k <= s:
            continue
        at = k.find(d, len(p)) if d else -1
        if at >= 0:
            cp = k[:at + len(d)]
            if cp > s and ("p", cp) not in entries[-1:]:
                entries.append(("p", cp))
        else:
            entries.append(("k", k))
    if max_keys <= 0:
        return [], [], False, None
    page, truncated = entries[:max_keys], len(entries) > max_keys
    return ([v.decode() for t, v in page if t == "k"], [v.decode() for t, v in page if t == "p"],
            truncated, page[-1][1].decode() if truncated else None)


async def test_listing_matches_reference(tmp_path: Path) -> None:
    rng = random.Random(1234)
    s = FSObjectStore(tmp_path, sync=False)
    await s.open()
    await s.create_bucket(B, region="r", owner="o")
    keys = sorted({"".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 7)))
                   for _ in range(400)} | {"a", "a/", "a/b", "a//b", "/", "é/x", "é/y/z"})
    await asyncio.gather(*(put(s, k, b"") for k in keys))

    def pick() -> str:
        r = rng.random()
        if r < 0.3:
            return ""
        k = rng.choice(keys)
        return k[:rng.randint(0, len(k))] if r < 0.8 else k + rng.choice(ALPHABET)

    for _ in range(300):
        prefix, start_after = pick(), pick()
        delimiter = rng.choice(["", "/", "/", "a", "é", "//", "😀"])
        max_keys = rng.choice([0, 1, 2, 3, 7, 50, 1000])
        got = await s.list_objects(B, prefix=prefix, delimiter=delimiter,
                                   start_after=start_after, max_keys=max_keys)
        want = reference_list(keys, prefix, delimiter, start_after, max_keys)
        assert ([o.key for o in got.objects], got.common_prefixes, got.is_truncated,
                got.next_marker) == want, (prefix, delimiter, start_after, max_keys)

    for delimiter in ("", "/"):                          # paging visits every entry once
        marker, seen = "", []
        while True:
            page = await s.list_objects(B, delimiter=delimiter, start_after=marker, max_keys=3)
            seen += [o.key for o in page.objects] + page.common_prefixes
            if not page.is_truncated:
                break
            marker = page.next_marker
        full = reference_list(keys, "", delimiter, "", 10_000)
        assert sorted(seen) == sorted(full[0] + full[1]) and len(seen) == len(set(seen))
    await s.close()


# -- multipart

async def test_multipart_assemble_without_copy(store: FSObjectStore) -> None:
    up = await store.create_multipart_upload(B, "big/obj", {"content-type": "x/y"})
    assert (await store.get_multipart_upload(B, up.upload_id)).meta == {"content-type": "x/y"}
    bodies = {1: b"1" * 5, 2: b"2" * 3, 3: b"3" * 7, 4: b"4" * 2}
    for n in (3, 1, 2, 4):
        w = await store.open_part_writer(B, up.upload_id, n)
        await w.write(b"old")
        await w.commit("old", {})
        w = await store.open_part_writer(B, up.upload_id, n)   # re-upload replaces
        await w.write(bodies[n])
        part = await w.commit(f"p{n}", {"n": n})
        assert (part.part_number, part.size) == (n, len(bodies[n]))
    parts = await store.list_parts(B, up.upload_id)
    assert [(p.part_number, p.size, p.etag) for p in parts] == [
        (n, len(bodies[n]), f"p{n}") for n in (1, 2, 3, 4)]
    udir = store.layout.bucket(B).upload_dir(up.upload_id)
    assert len(list(udir.glob("*.data"))) == 4
    inodes = {p.stat().st_ino for p in udir.glob("0000[123].*.data")}

    with pytest.raises(InvalidPart):
        await store.complete_multipart_upload(B, up.upload_id, [1, 5], "m", {})
    info = await store.complete_multipart_upload(B, up.upload_id, [1, 2, 3], "m-3", {"a": 1})
    assert (info.size, info.part_sizes, info.etag) == (15, [5, 3, 7], "m-3")
    whole = bodies[1] + bodies[2] + bodies[3]
    assert await get(store, "big/obj") == whole
    for start in range(0, 16):
        for end in range(start, 17):
            assert await get(store, "big/obj", start=start, end=end, chunk_size=2) == \
                whole[start:end]
    h = key_hash("big/obj")
    shard = store.layout.bucket(B).shard(h)
    assert {p.stat().st_ino for p in shard.glob(f"{h}.*.data")} == inodes   # linked, not copied
    assert not udir.exists()                               # part 4 went with the upload
    for call in (store.list_parts(B, up.upload_id), store.get_multipart_upload(B, up.upload_id),
                 store.complete_multipart_upload(B, up.upload_id, [1], "m", {}),
                 store.abort_multipart_upload(B, up.upload_id),
                 store.open_part_writer(B, up.upload_id, 1)):
        with pytest.raises(NoSuchUpload):
            await call
    assert (await store.head_object(B, "big/obj")).meta == {"a": 1}


async def test_multipart_abort_and_part_after_abort(store: FSObjectStore) -> None:
    up = await store.create_multipart_upload(B, "k", {})
    w = await store.open_part_writer(B, up.upload_id, 1)
    await w.write(b"x")
    await store.abort_multipart_upload(B, up.upload_id)
    with pytest.raises(NoSuchUpload):
        await w.commit("e", {})
    assert not list(store.layout.staging.iterdir())
    assert not list(store.layout.bucket(B).uploads.iterdir())
    with pytest.raises(NoSuchUpload):
        await store.open_part_writer(B, "not-an-id/../../x", 1)
    with pytest.raises(InvalidPart):
        await store.open_part_writer(B, up.upload_id, 0)


async def test_list_multipart_uploads(tmp_path: Path) -> None:
    t = iter(range(100, 10_000))
    s = FSObjectStore(tmp_path, clock=lambda: float(next(t)), sync=False)
    await s.open()
    await s.create_bucket(B, region="r", owner="o")
    ups = [await s.create_multipart_upload(B, k, {}) for k in
           ("b", "a/2", "a/1", "b", "é", "a/1", "c")]
    order = sorted(ups, key=lambda u: (u.key.encode(), u.initiated))
    res = await s.list_multipart_uploads(B)
    assert [u.upload_id for u in res.uploads] == [u.upload_id for u in order]
    assert not res.is_truncated

    res = await s.list_multipart_uploads(B, delimiter="/")
    assert res.common_prefixes == ["a/"] and [u.key for u in res.uploads] == ["b", "b", "c", "é"]
    res = await s.list_multipart_uploads(B, prefix="a/")
    assert [u.key for u in res.uploads] == ["a/1", "a/1", "a/2"]

    got, km, um = [], "", ""
    while True:                                     # page by 2 through the markers
        res = await s.list_multipart_uploads(B, key_marker=km, upload_id_marker=um,
                                             max_uploads=2)
        got += [u.upload_id for u in res.uploads]
        if not res.is_truncated:
            break
        km, um = res.next_key_marker, res.next_upload_id_marker
    assert got == [u.upload_id for u in order]
    res = await s.list_multipart_uploads(B, key_marker="b")
    assert [u.key for u in res.uploads] == ["c", "é"]
    res = await s.list_multipart_uploads(B, delimiter="/", max_uploads=1)
    assert (res.common_prefixes, res.is_truncated, res.next_key_marker,
            res.next_upload_id_marker) == (["a/"], True, "a/", None)
    assert (await s.list_multipart_uploads(B, max_uploads=0)).uploads == []
    await s.close()


async def test_damaged_index_and_unknown_sidecar_version(tmp_path: Path) -> None:
    s = FSObjectStore(tmp_path)
    await s.open()
    await s.create_bucket(B, region="r", owner="o")
    await put(s, "ok", b"1")
    await put(s, "future", b"2")
    await s.close()
    bp = s.layout.bucket(B)
    sidecar = bp.sidecar(key_hash("future"))
    sidecar.write_bytes(sidecar.read_bytes().replace(b'"v":1', b'"v":99'))
    bp.index.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(str(bp.index) + suffix).unlink(missing_ok=True)
    s = FSObjectStore(tmp_path)
    await s.open()
    assert [o.key for o in (await s.list_objects(B)).objects] == ["ok"]
    with pytest.raises(StorageError):
        await s.head_object(B, "future")           # refused, never guessed at
    assert len(list(sidecar.parent.glob(f"{key_hash('future')}.*.data"))) == 1   # kept
    await s.close()


async def test_reported_size_differs_from_stored_bytes(store: FSObjectStore) -> None:
    """Encrypted objects: S3 reports the plaintext size, storage holds more bytes."""
    w = await store.open_writer(B, "enc")
    await w.write(b"c" * 116)
    info = await w.commit("e", {}, size=100)
    assert info.size == 100 and info.stored_size == 116
    assert (await store.head_object(B, "enc")).size == 100
    (listed,) = (await store.list_objects(B, prefix="enc")).objects
    assert listed.size == 100
    r = await store.open_object(B, "enc")
    try:
        assert b"".join([c async for c in r.read()]) == b"c" * 116
    finally:
        await r.close()
    up = await store.create_multipart_upload(B, "mpenc", {})
    pw = await store.open_part_writer(B, up.upload_id, 1)
    await pw.write(b"p" * 40)
    await pw.commit("p1", {})
    done = await store.complete_multipart_upload(B, up.upload_id, [1], "x-1", {}, size=24)
    assert done.size == 24 and done.stored_size == 40 and done.part_sizes == [40]
    assert (await store.head_object(B, "mpenc")).stored_size == 40


async def test_update_object_meta_in_place(tmp_path: Path) -> None:
    """PutObjectTagging's storage step (issue 14): meta members set or removed atomically,
    the bytes, ETag, Last-Modified and data files unchanged, durable across a reopen; a
    missing key is NoSuchKey and leaves nothing behind."""
    store = FSObjectStore(tmp_path / "data")
    await store.open()
    await store.create_bucket(B, region="us-east-1", owner="acct-1")
    info = await put(store, "k", b"payload", meta={"user": {"a": "1"}, "tags": {"x": "1"}})
    h = key_hash("k")
    shard = store.layout.bucket(B).shard(h)
    data_before = sorted(p.name for p in shard.glob(f"{h}.*.data"))
    new = await store.update_object_meta(B, "k", {"tags": {"y": "2"}, "user": None})
    assert new.meta == {"tags": {"y": "2"}}
    assert (new.etag, new.size, new.last_modified) == (info.etag, info.size,
                                                       info.last_modified)
    assert sorted(p.name for p in shard.glob(f"{h}.*.data")) == data_before
    assert not list(shard.glob("*.tmp"))
    assert await get(store, "k") == b"payload"
    with pytest.raises(NoSuchKey):
        await store.update_object_meta(B, "missing", {"tags": {"a": "b"}})
    await store.close()
    reopened = FSObjectStore(tmp_path / "data")
    await reopened.open()
    try:
        assert (await reopened.head_object(B, "k")).meta == {"tags": {"y": "2"}}
        listed = (await reopened.list_objects(B)).objects
        assert [(o.key, o.etag) for o in listed] == [("k", info.etag)]
    finally:
        await reopened.close()
