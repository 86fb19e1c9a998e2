"""S3 throughput benchmark (not a test): large-object MiB/s, small-object ops/s, server RSS.

    .venv/bin/python bench/bench_s3.py                 # starts its own coffer serve
    .venv/bin/python bench/bench_s3.py --endpoint http://127.0.0.1:9000 --pid <server pid>

Large objects: one streamed PUT (raw body, UNSIGNED-PAYLOAD, as rclone sends) and one streamed
GET per round, N rounds of --size MiB. Small objects: --ops PUTs then GETs of 4 KiB at
concurrency 16. The client is aiohttp with botocore's SigV4 signer, so the numbers measure the
server, not boto3's per-request overhead. Peak RSS is the server's VmHWM from /proc.

Extra options: --sse aws:kms|AES256 adds SSE headers to every PUT (when the server supports
them), --huge N streams one N-GiB object up and down and reports peak RSS (memory must stay
flat whatever the size).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.wire.server import ACCESS_KEY, SECRET_KEY, start_server  # noqa: E402

MiB = 1024 * 1024


class Signer:
    def __init__(self, endpoint: str, access: str, secret: str, region: str):
        self.endpoint = endpoint
        self.creds = Credentials(access, secret)
        self.region = region

    def headers(self, method: str, path: str, extra: dict[str, str] | None = None,
                payload: str = "UNSIGNED-PAYLOAD") -> dict[str, str]:
        req = AWSRequest(method=method, url=self.endpoint + path, headers=extra or {})
        req.headers["X-Amz-Content-SHA256"] = payload
        auth = S3SigV4Auth(self.creds, "s3", self.region)
        auth.payload = lambda r: payload  # type: ignore[method-assign]
        auth.add_auth(req)
        return dict(req.headers.items())


def rss_peak(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def rss_now(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def _body(size: int, chunk: int = MiB):
    block = os.urandom(chunk)
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        yield block[:n]
        sent += n


async def put_large(session, signer, bucket, key, size, sse_headers) -> float:
    path = f"/{bucket}/{key}"
    headers = signer.headers("PUT", path, {"Content-Length": str(size), **sse_headers})
    t = time.perf_counter()
    async with session.put(signer.endpoint + path, data=_body(size), headers=headers) as r:
        assert r.status == 200, await r.text()
    return time.perf_counter() - t


async def get_large(session, signer, bucket, key, size) -> float:
    path = f"/{bucket}/{key}"
    headers = signer.headers("GET", path)
    t = time.perf_counter()
    got = 0
    async with session.get(signer.endpoint + path, headers=headers) as r:
        assert r.status == 200, await r.text()
        async for chunk in r.content.iter_chunked(MiB):
            got += len(chunk)
    assert got == size, (got, size)
    return time.perf_counter() - t


async def small_ops(session, signer, bucket, count, concurrency, sse_headers):
    data = os.urandom(4096)
    sem = asyncio.Semaphore(concurrency)

    async def put(i):
        async with sem:
            path = f"/{bucket}/small/{i:06d}"
            h = signer.headers("PUT", path, {"Content-Length": "4096", **sse_headers})
            async with session.put(signer.endpoint + path, data=data, headers=h) as r:
                assert r.status == 200, await r.text()

    async def get(i):
        async with sem:
            path = f"/{bucket}/small/{i:06d}"
            h = signer.headers("GET", path)
            async with session.get(signer.endpoint + path, headers=h) as r:
                assert r.status == 200
                assert len(await r.read()) == 4096

    t = time.perf_counter()
    await asyncio.gather(*(put(i) for i in range(count)))
    put_s = time.perf_counter() - t
    t = time.perf_counter()
    await asyncio.gather(*(get(i) for i in range(count)))
    get_s = time.perf_counter() - t
    return count / put_s, count / get_s


async def run(args, endpoint: str, pid: int | None) -> dict:
    signer = Signer(endpoint, args.access_key, args.secret_key, args.region)
    sse = {}
    if args.sse:
        sse["x-amz-server-side-encryption"] = args.sse
        if args.sse_kms_key_id:
            sse["x-amz-server-side-encryption-aws-kms-key-id"] = args.sse_kms_key_id
        if args.bucket_key:
            sse["x-amz-server-side-encryption-bucket-key-enabled"] = "true"
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    conn = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    results: dict = {"sse": args.sse or "none"}
    async with aiohttp.ClientSession(connector=conn, timeout=timeout,
                                     auto_decompress=False) as session:
        async with session.put(endpoint + f"/{bucket}",
                               headers=signer.headers("PUT", f"/{bucket}")) as r:
            assert r.status == 200, await r.text()
        size = args.size * MiB
        if args.rounds:
            puts, gets = [], []
            for i in range(args.rounds):
                puts.append(await put_large(session, signer, bucket, f"large-{i}", size, sse))
                gets.append(await get_large(session, signer, bucket, f"large-{i}", size))
            results["put_MiBps"] = round(args.size / (sum(puts) / len(puts)), 1)
            results["get_MiBps"] = round(args.size / (sum(gets) / len(gets)), 1)
        if args.ops:
            p, g = await small_ops(session, signer, bucket, args.ops, args.concurrency, sse)
            results["put_4KiB_ops"] = round(p)
            results["get_4KiB_ops"] = round(g)
        if args.huge:
            huge = args.huge * 1024 * MiB
            t = await put_large(session, signer, bucket, "huge", huge, sse)
            results["huge_put_MiBps"] = round(huge / MiB / t, 1)
            if pid:
                results["rss_after_huge_put_MiB"] = round(rss_now(pid) / MiB, 1)
            t = await get_large(session, signer, bucket, "huge", huge)
            results["huge_get_MiBps"] = round(huge / MiB / t, 1)
    if pid:
        results["server_peak_rss_MiB"] = round(rss_peak(pid) / MiB, 1)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--endpoint")
    p.add_argument("--pid", type=int, help="server pid, for RSS (with --endpoint)")
    p.add_argument("--access-key", default=ACCESS_KEY)
    p.add_argument("--secret-key", default=SECRET_KEY)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--size", type=int, default=256, help="large object size, MiB")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ops", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--huge", type=int, default=0, help="also stream one object of N GiB")
    p.add_argument("--sse", choices=["aws:kms", "AES256"])
    p.add_argument("--sse-kms-key-id")
    p.add_argument("--bucket-key", action="store_true")
    p.add_argument("--default-encryption", default="none", choices=["none", "AES256"],
                   help="bucket default of the server this script starts (default none, so "
                        "PUTs without --sse are unencrypted)")
    args = p.parse_args()
    server = None
    endpoint, pid = args.endpoint, args.pid
    if endpoint is None:
        server = start_server(Path(tempfile.mkdtemp(prefix="coffer-bench-")) / "data",
                              env={"COFFER_DEFAULT_ENCRYPTION": args.default_encryption})
        endpoint, pid = server.endpoint, server.proc.pid
    try:
        print(asyncio.run(run(args, endpoint, pid)))
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
