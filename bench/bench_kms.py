"""KMS call rate: GenerateDataKey and Decrypt, single-threaded and from 8 threads.

    .venv/bin/python bench/bench_kms.py [--calls 2000] [--threads 8] [--dir PATH] [--no-fsync]

Each call is one audited operation (CloudTrail-shaped record appended and fdatasync'ed before
the call returns; concurrent callers share fsyncs). ``--no-fsync`` shows the cost of the audit
fsync; ``--dir`` picks the filesystem (the default is a temp dir). Nothing is asserted.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kms.audit import JSONLinesSink  # noqa: E402
from kms.model import Caller  # noqa: E402
from kms.service import KMS  # noqa: E402

CALLER = Caller("arn:aws:iam::111122223333:user/bench", "111122223333",
                via_service="s3.us-east-1.amazonaws.com")
CTX = {"aws:s3:arn": "arn:aws:s3:::bench/object"}


def run(fn, calls: int, threads: int) -> float:
    per = calls // threads
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(per):
            fn()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return per * threads / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--no-fsync", action="store_true")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-kms-", dir=args.dir))
    try:
        audit = JSONLinesSink(base / "audit" / "kms-events.jsonl", fsync=not args.no_fsync)
        with KMS.open(base, audit=audit) as kms:
            kid = kms.create_key(CALLER)["KeyMetadata"]["KeyId"]
            blob = kms.generate_data_key(CALLER, kid, key_spec="AES_256",
                                         encryption_context=CTX)["CiphertextBlob"]

            def gdk() -> None:
                kms.generate_data_key(CALLER, kid, key_spec="AES_256", encryption_context=CTX)

            def dec() -> None:
                kms.decrypt(CALLER, blob, encryption_context=CTX)

            print(f"data dir {base} fsync={'off' if args.no_fsync else 'on'}")
            for name, fn in (("GenerateDataKey", gdk), ("Decrypt", dec)):
                for threads in (1, args.threads):
                    rate = run(fn, args.calls, threads)
                    print(f"{name:16} threads={threads:<2} {rate:9.0f} calls/s")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
