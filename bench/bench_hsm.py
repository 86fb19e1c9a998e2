"""Cost of an HSM operation: AES-GCM in a SoftHSM2 token vs in process, and the KMS calls S3
SSE-KMS makes (GenerateDataKey, Decrypt) with a key in a custom key store vs a software key.

    .venv/bin/python bench/bench_hsm.py [--calls 2000] [--threads 8]

A fresh SoftHSM2 token directory is made in a temp dir. Audit records go to memory here so
the numbers show the key path only (bench_kms.py measures the audit fsync). Nothing is
asserted. With S3 Bucket Keys a bucket makes one GenerateDataKey per bucket-key lifetime
(``bucket_key_ttl``, 300 s) instead of one per object, so the per-object cost of an HSM key
becomes the in-process cost; the last lines estimate that from the measured numbers.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kms.audit import MemorySink  # noqa: E402
from kms.crypto.aead import AEADKey  # noqa: E402
from kms.crypto.pkcs11 import Token, TokenConfig  # noqa: E402
from kms.model import Caller  # noqa: E402
from bench.bench_kms import run as calls_per_second  # noqa: E402
from kms.rootkeys import HSMSettings  # noqa: E402
from kms.service import KMS  # noqa: E402
from tests.softhsm import start_softhsm  # noqa: E402

CALLER = Caller("arn:aws:iam::111122223333:root", "111122223333")
CTX = {"aws:s3:arn": "arn:aws:s3:::bench/object"}
CLUSTER = "cluster-test0000000a"


def timed(fn, calls: int, threads: int = 1) -> float:
    """Seconds per call (the thread harness of bench_kms)."""
    return 1.0 / calls_per_second(fn, max(calls, threads), threads)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="coffer-bench-hsm-"))
    hsm = start_softhsm(tmp / "softhsm")
    rows: list[tuple[str, float]] = []

    with Token(TokenConfig(hsm.module, CLUSTER, hsm.pin)) as token:
        token.generate_key("bench")
        nonce, data, aad = os.urandom(12), os.urandom(32), b"aad"
        sealed = token.encrypt_gcm("bench", nonce, data, aad)
        rows.append(("token AES-GCM encrypt 32 B", timed(
            lambda: token.encrypt_gcm("bench", nonce, data, aad), args.calls * 5)))
        rows.append(("token AES-GCM decrypt 32 B", timed(
            lambda: token.decrypt_gcm("bench", nonce, sealed, aad), args.calls * 5)))
        soft = AEADKey(os.urandom(32))
        rows.append(("in-process AES-GCM encrypt 32 B", timed(
            lambda: soft.seal(nonce, data, aad), args.calls * 5)))
        token.destroy_key("bench")

    kms = KMS.open(tmp / "data", audit=MemorySink(), hsm=HSMSettings(module_path=hsm.module))
    try:
        sid = kms.create_custom_key_store(CALLER, "bench", cloud_hsm_cluster_id=CLUSTER,
                                          trust_anchor_certificate=_anchor(),
                                          key_store_password=hsm.pin)["CustomKeyStoreId"]
        kms.connect_custom_key_store(CALLER, sid)
        keys = {"software": kms.create_key(CALLER)["KeyMetadata"]["KeyId"],
                "hsm": kms.create_key(CALLER, origin="AWS_CLOUDHSM",
                                      custom_key_store_id=sid)["KeyMetadata"]["KeyId"]}
        for name, k in keys.items():
            blob = kms.generate_data_key(CALLER, k, key_spec="AES_256",
                                         encryption_context=CTX)["CiphertextBlob"]
            for threads in (1, args.threads):
                rows.append((f"KMS GenerateDataKey {name} key, {threads} thread(s)", timed(
                    lambda: kms.generate_data_key(CALLER, k, key_spec="AES_256",
                                                  encryption_context=CTX),
                    args.calls, threads)))
                rows.append((f"KMS Decrypt {name} key, {threads} thread(s)", timed(
                    lambda: kms.decrypt(CALLER, blob, encryption_context=CTX),
                    args.calls, threads)))
    finally:
        kms.close()
    width = max(len(r[0]) for r in rows)
    for name, sec in rows:
        print(f"{name:<{width}}  {sec * 1e6:9.1f} us/op  {1 / sec:10.0f} ops/s")
    gdk = dict(rows)
    hsm1 = gdk["KMS GenerateDataKey hsm key, 1 thread(s)"]
    sw1 = gdk["KMS GenerateDataKey software key, 1 thread(s)"]
    print(f"HSM overhead per GenerateDataKey: {(hsm1 - sw1) * 1e6:.1f} us "
          f"({hsm1 / sw1:.2f}x the software key)")
    print("With S3 Bucket Keys: one GenerateDataKey per bucket per bucket-key lifetime, so "
          f"at 1000 PUT/s the HSM adds ~{(hsm1 - sw1) * 1e6 / 1000 / 300:.4f} us per object "
          "(vs the full overhead above per object without Bucket Keys).")


def _anchor() -> str:
    return ("-----BEGIN CERTIFICATE-----\n"
            "MIIBszCCAVmgAwIBAgIUVg0vYkPZ0QeTk3wFyaYf5zNw0nYwCgYIKoZIzj0EAwIw\n"
            "-----END CERTIFICATE-----\n")


if __name__ == "__main__":
    main()
