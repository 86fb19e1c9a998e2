"""SSE-KMS through S3 with a software key vs an HSM key (SoftHSM2 custom key store), with and
without S3 Bucket Keys (not a test).

    .venv/bin/python bench/bench_hsm_s3.py [--ops 1000] [--size 64] [--rounds 2]

Starts SoftHSM2 tokens in a temp dir, a `coffer serve` with the PKCS#11 module, creates a
custom key store with one HSM key plus one software key, then runs bench/bench_s3.py's
workload for each of the four set-ups against the same server.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_s3 import run  # noqa: E402
from kms.crypto.tls import ensure_self_signed  # noqa: E402
from tests.softhsm import TOKENS, start_softhsm  # noqa: E402
from tests.wire.server import ACCESS_KEY, SECRET_KEY, start_server  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ops", type=int, default=1000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="coffer-hsm-bench-"))
    hsm = start_softhsm(tmp / "hsm")
    cluster = next(t for t in TOKENS if len(t) >= 19)
    server = start_server(tmp / "data", extra_args=["--pkcs11-module", hsm.module],
                          env={"SOFTHSM2_CONF": str(hsm.conf),
                               "COFFER_DEFAULT_ENCRYPTION": "none"})
    try:
        kms = boto3.client("kms", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        ca = ensure_self_signed(tmp / "ca").ca
        store = kms.create_custom_key_store(
            CustomKeyStoreName="bench", CloudHsmClusterId=cluster, KeyStorePassword=hsm.pin,
            TrustAnchorCertificate=ca.read_text())["CustomKeyStoreId"]
        kms.connect_custom_key_store(CustomKeyStoreId=store)
        hsm_key = kms.create_key(Origin="AWS_CLOUDHSM",
                                 CustomKeyStoreId=store)["KeyMetadata"]["Arn"]
        sw_key = kms.create_key()["KeyMetadata"]["Arn"]
        for name, key, bucket_key in [("software key", sw_key, False),
                                      ("HSM key", hsm_key, False),
                                      ("software key + Bucket Key", sw_key, True),
                                      ("HSM key + Bucket Key", hsm_key, True)]:
            ns = argparse.Namespace(access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                                    region="us-east-1", size=args.size, rounds=args.rounds,
                                    ops=args.ops, concurrency=16, huge=0, sse="aws:kms",
                                    sse_kms_key_id=key, bucket_key=bucket_key)
            result = asyncio.run(run(ns, server.endpoint, server.proc.pid))
            print(f"{name:28s} {result}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
