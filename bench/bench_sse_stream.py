"""Throughput of the coffer-sse/1 codec, as the gateway drives it.

    .venv/bin/python bench/bench_sse_stream.py [--mib 256] [--chunk-kib 1024]
                                               [--segments 65536,262144] [--repeat 3] [--copying]

A stream of --mib MiB goes through SegmentEncryptor in --chunk-kib chunks, then its ciphertext
(read back in chunks of the same size) through SegmentDecryptor; the best of --repeat runs is
printed in MiB/s of plaintext. --copying also times the path for cryptography versions
without encrypt_into/decrypt_into. A 1 MiB Range GET from the middle of the stream is timed
too. Timings are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.sse import stream  # noqa: E402
from gateway.sse.stream import (SegmentDecryptor, SegmentEncryptor, new_stream_params,  # noqa: E402
                                plan_range, segment_count)

AAD = b"arn:aws:s3:::bench/object"


def run(total: int, chunk: int, seg: int, repeat: int) -> tuple[float, float, float]:
    key = os.urandom(32)
    params = new_stream_params(segment_size=seg)
    block = os.urandom(chunk)
    n_chunks = total // chunk
    best_enc = best_dec = best_range = float("inf")
    for _ in range(repeat):
        # Timed: the output goes to a sink, as the gateway hands each piece to a file write.
        t0 = time.perf_counter()
        enc = SegmentEncryptor(key, params, AAD)
        for _ in range(n_chunks):
            enc.update(block)
        enc.finalize()
        best_enc = min(best_enc, time.perf_counter() - t0)

        enc = SegmentEncryptor(key, params, AAD)
        ciphertext = bytearray()
        for _ in range(n_chunks):
            ciphertext += enc.update(block)
        ciphertext += enc.finalize()

        view = memoryview(ciphertext)
        t0 = time.perf_counter()
        dec = SegmentDecryptor(key, params, AAD, total_segments=segment_count(total, seg))
        got = 0
        for i in range(0, len(view), chunk):
            got += len(dec.update(view[i:i + chunk]))
        got += len(dec.finalize())
        best_dec = min(best_dec, time.perf_counter() - t0)
        assert got == total

        plan = plan_range(total, seg, total // 2 + 12345, total // 2 + 12345 + (1 << 20))
        t0 = time.perf_counter()
        dec = SegmentDecryptor.for_range(key, params, plan, AAD)
        out = dec.update(view[plan.ct_start:plan.ct_end]) + dec.finalize()
        best_range = min(best_range, time.perf_counter() - t0)
        assert out == (block * 2)[(total // 2 + 12345) % chunk:][:1 << 20]
        del view
    mib = total / (1 << 20)
    return mib / best_enc, mib / best_dec, best_range * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--chunk-kib", type=int, default=1024)
    ap.add_argument("--segments", default="65536,262144")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--copying", action="store_true")
    args = ap.parse_args()
    import cryptography
    print(f"cryptography {cryptography.__version__}, {os.cpu_count()} CPUs, "
          f"{args.mib} MiB in {args.chunk_kib} KiB chunks, best of {args.repeat}")
    paths = [("into", True)] + ([("copying", False)] if args.copying else [])
    for label, into in paths:
        if into and not stream._HAS_INTO:
            continue
        stream._HAS_INTO = into
        for seg in (int(s) for s in args.segments.split(",")):
            enc, dec, rng = run(args.mib << 20, args.chunk_kib << 10, seg, args.repeat)
            print(f"  {label:8} segment {seg // 1024:>5} KiB: encrypt {enc:8.0f} MiB/s   "
                  f"decrypt {dec:8.0f} MiB/s   1 MiB range GET {rng:6.2f} ms")


if __name__ == "__main__":
    main()
