"""WriteCondition at the FSObjectStore commit point: the decision is made under the key's lock,
against the record actually being replaced, for PUT commits, multipart completion and delete."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from storage.base import WriteCondition, state_token
from storage.errors import ConditionalConflict, NoSuchKey, PreconditionFailed
from storage.fs import FSObjectStore

B = "bkt"
CREATE = WriteCondition(if_none_match=True, expect_state=True, state=None)


@pytest.fixture
async def store(tmp_path: Path):
    s = FSObjectStore(tmp_path / "data", sync=False)
    await s.open()
    await s.create_bucket(B, region="us-east-1", owner="acct-1")
    yield s
    await s.close()


async def _put(store, key, data, condition=None, etag=None):
    w = await store.open_writer(B, key, condition=condition)
    await w.write(data)
    return await w.commit(etag or data.hex(), {})


def _shard_files(store) -> set[str]:
    out = set()
    for root, _, files in os.walk(store.layout.buckets / B / "objects"):
        out.update(files)
    return out


async def test_two_staged_creates_only_one_commits(store):
    first = await store.open_writer(B, "k", condition=CREATE)
    second = await store.open_writer(B, "k", condition=CREATE)
    await first.write(b"one")
    await second.write(b"two")
    await first.commit("e1", {})
    with pytest.raises(ConditionalConflict):
        await second.commit("e2", {})
    assert (await store.head_object(B, "k")).etag == "e1"
    # The loser's data file is gone, only the winner's data and sidecar remain.
    assert len(_shard_files(store)) == 2


async def test_concurrent_creates_many(store):
    results = await asyncio.gather(*[_put(store, "k", bytes([i]) * 10, CREATE, f"e{i}")
                                     for i in range(8)], return_exceptions=True)
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(isinstance(r, ConditionalConflict) for r in results if r not in winners)
    assert (await store.head_object(B, "k")).etag == winners[0].etag


async def test_if_match_and_unchanged_state(store):
    info = await _put(store, "k", b"v1")
    with pytest.raises(NoSuchKey):
        await _put(store, "absent", b"x", WriteCondition(if_match="e"))
    with pytest.raises(PreconditionFailed) as e:
        await _put(store, "k", b"v2", WriteCondition(if_match="other"))
    assert e.value.condition == "If-Match"
    with pytest.raises(PreconditionFailed) as e:
        await _put(store, "k", b"v2", WriteCondition(if_none_match=True))
    assert e.value.condition == "If-None-Match"
    ok = WriteCondition(if_match=info.etag, expect_state=True, state=state_token(info))
    await _put(store, "k", b"v2", ok)
    with pytest.raises(ConditionalConflict):       # v1's state is gone
        await _put(store, "k", b"v3", ok)


async def test_conditional_complete_keeps_the_upload_on_failure(store):
    await _put(store, "k", b"old")
    up = await store.create_multipart_upload(B, "k", {})
    w = await store.open_part_writer(B, up.upload_id, 1)
    await w.write(b"part")
    await w.commit("p1", {})
    with pytest.raises(PreconditionFailed):
        await store.complete_multipart_upload(B, up.upload_id, [1], "m-1", {},
                                              condition=WriteCondition(if_none_match=True))
    assert [p.part_number for p in await store.list_parts(B, up.upload_id)] == [1]
    info = await store.complete_multipart_upload(B, up.upload_id, [1], "m-1", {},
                                                 condition=WriteCondition(if_match="6f6c64"))
    assert info.etag == "m-1"


async def test_conditional_delete(store):
    await _put(store, "k", b"v1")
    with pytest.raises(PreconditionFailed):
        await store.delete_object(B, "k", condition=WriteCondition(if_match="nope"))
    assert await store.delete_object(B, "k", condition=WriteCondition(if_match="7631"))
    with pytest.raises(NoSuchKey):
        await store.delete_object(B, "k", condition=WriteCondition(if_match="*"))
    assert not await store.delete_object(B, "k")
