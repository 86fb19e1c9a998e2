"""Helpers the SSE wire tests share: the aws CLI, where an object's record and ciphertext lie
in the data dir, the KMS calls the audit trail shows, error codes, header injection."""
from __future__ import annotations

import base64
import json
import hashlib
import subprocess
from pathlib import Path

from botocore.exceptions import ClientError

from kms.audit import read_trail
from tests.wire.clients import AWS
from tests.wire.server import Server

KiB = 1024
MiB = 1024 * KiB
SEG = 64 * KiB


def aws(srv: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([AWS, "--endpoint-url", srv.endpoint, *args], env=srv.client_env(),
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"aws {args} failed ({proc.returncode}):\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


def sidecar_path(srv: Server, bucket: str, key: str) -> Path:
    h = hashlib.sha256(key.encode()).hexdigest()
    return srv.data_dir / "s3" / "buckets" / bucket / "objects" / h[:2] / f"{h}.json"


def sidecar(srv: Server, bucket: str, key: str) -> dict:
    return json.loads(sidecar_path(srv, bucket, key).read_bytes())


def data_paths(srv: Server, bucket: str, key: str) -> list[Path]:
    path = sidecar_path(srv, bucket, key)
    return [path.parent / name for name in json.loads(path.read_bytes())["data"]]


def sse_record(srv: Server, bucket: str, key: str) -> dict:
    return sidecar(srv, bucket, key)["meta"]["sse"]


def audit_events(srv: Server) -> list[dict]:
    return [e for e in read_trail(srv.data_dir / "audit")
            if e.get("eventSource") == "kms.amazonaws.com"]


def crypto_calls(events: list[dict], key_arn: str | None = None) -> list[dict]:
    """KMS data-key calls (what S3 spends per object), optionally only those on one key."""
    names = {"GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "Decrypt", "Encrypt",
             "ReEncrypt"}
    out = []
    for e in events:
        if e.get("eventName") not in names:
            continue
        if key_arn is not None and key_arn not in json.dumps(e.get("resources")):
            continue
        out.append(e)
    return out


def error_of(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def new_key(kms, alias: str | None = None) -> dict:
    meta = kms.create_key(Description="sse wire test")["KeyMetadata"]
    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return meta


def with_headers(client, operation: str, headers: dict[str, str]):
    """A copy of ``client`` that adds raw ``headers`` to every ``operation`` request."""
    def add(request, **_):
        for k, v in headers.items():
            request.headers[k] = v
    client.meta.events.register(f"before-sign.s3.{operation}", add)
    return client


def body_of(s3, bucket: str, key: str, **kw) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def b64json(doc: dict) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


# -- fixtures ---------------------------------------------------------------------------------
