"""Listing speed of FSObjectStore with 100,000 keys in one bucket.

    .venv/bin/python bench/bench_listing.py [--keys 100000] [--via-store]

Objects are laid down directly as sidecar + data files (the fast path; ``--via-store`` goes
through open_writer/commit with sync=False instead), then the store is opened, which builds the
index from the sidecars. Timings are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.base import ObjectInfo  # noqa: E402
from storage.fs import FSObjectStore  # noqa: E402
from storage.fs.layout import Layout, key_hash  # noqa: E402
from storage.fs.records import encode_object  # noqa: E402

BUCKET = "bench"


def key_of(i: int) -> str:
    # 100 top-level "dirs" x 10 "subdirs" x 100 files; every 7th name is non-ASCII.
    name = f"file-{i:06d}" + ("-é中" if i % 7 == 0 else "") + ".txt"
    return f"dir{i % 100:03d}/sub{(i // 100) % 10}/{name}"


def lay_down(root: Path, n: int) -> None:
    paths = Layout(root).bucket(BUCKET)
    for i in range(n):
        key = key_of(i)
        h = key_hash(key)
        data = f"{h}.{i:024x}.data"
        body = key.encode()
        (paths.shard(h) / data).write_bytes(body)
        info = ObjectInfo(key=key, size=len(body), etag=f"{i:032x}", last_modified=1.7e9 + i)
        (paths.sidecar(h)).write_bytes(encode_object(info, [data]))


async def timed(label: str, fn, repeat: int = 5) -> None:
    times, res = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = await fn()
        times.append(time.perf_counter() - t0)
    extra = ""
    if res is not None and hasattr(res, "objects"):
        extra = f"  ({len(res.objects)} keys, {len(res.common_prefixes)} prefixes)"
    print(f"{label:<52} median {statistics.median(times) * 1e3:8.2f} ms"
          f"  min {min(times) * 1e3:8.2f} ms{extra}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--via-store", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="coffer-bench-"))
    try:
        store = FSObjectStore(root, sync=False)
        await store.open()
        await store.create_bucket(BUCKET, region="us-east-1", owner="bench")
        t0 = time.perf_counter()
        if args.via_store:
            async def put(i: int) -> None:
                w = await store.open_writer(BUCKET, key_of(i))
                await w.write(key_of(i).encode())
                await w.commit(f"{i:032x}", {})
            for lo in range(0, args.keys, 512):
                await asyncio.gather(*(put(i) for i in range(lo, min(lo + 512, args.keys))))
            print(f"created {args.keys} objects via the store: {time.perf_counter() - t0:.1f} s")
            await store.close()
        else:
            await store.close()
            lay_down(root, args.keys)
            print(f"laid down {args.keys} sidecars + data files: {time.perf_counter() - t0:.1f} s")
            os.unlink(root / "buckets" / BUCKET / "index.sqlite3")
        t0 = time.perf_counter()
        store = FSObjectStore(root, sync=False)
        await store.open()
        print(f"open() incl. index build from sidecars: {time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        n = await store.rebuild_index(BUCKET)
        print(f"rebuild_index ({n} rows): {time.perf_counter() - t0:.2f} s")

        t0 = time.perf_counter()
        marker, pages, seen = "", [], 0
        while True:
            p0 = time.perf_counter()
            page = await store.list_objects(BUCKET, start_after=marker, max_keys=1000)
            pages.append(time.perf_counter() - p0)
            seen += len(page.objects)
            if not page.is_truncated:
                break
            marker = page.next_marker
        print(f"full walk, {len(pages)} pages of 1000 ({seen} keys): "
              f"{time.perf_counter() - t0:.2f} s; per page median "
              f"{statistics.median(pages) * 1e3:.2f} ms, max {max(pages) * 1e3:.2f} ms")

        await timed("page of 1000 from the middle (start_after)",
                    lambda: store.list_objects(BUCKET, start_after=key_of(50_000)))
        await timed("delimiter '/' at root (100 prefixes skip-scanned)",
                    lambda: store.list_objects(BUCKET, delimiter="/"))
        await timed("delimiter '/' under prefix dir042/",
                    lambda: store.list_objects(BUCKET, prefix="dir042/", delimiter="/"))
        await timed("prefix dir042/sub3/ (100 keys)",
                    lambda: store.list_objects(BUCKET, prefix="dir042/sub3/"))
        await timed("prefix dir042/ page of 1000",
                    lambda: store.list_objects(BUCKET, prefix="dir042/"))
        await timed("delimiter '.txt' (each key its own prefix: 1000 seeks)",
                    lambda: store.list_objects(BUCKET, delimiter=".txt", prefix="dir0"))
        await timed("max_keys=1", lambda: store.list_objects(BUCKET, max_keys=1), repeat=20)
        await timed("head_object", lambda: store.head_object(BUCKET, key_of(77_777)), repeat=20)
        await store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
