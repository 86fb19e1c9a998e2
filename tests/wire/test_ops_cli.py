"""Running Coffer like a service (issue 15): `coffer s3 encryption-report` counts what a real
`coffer serve` stored under each SSE mode, key and key version; `coffer kms backup` of a live
server, wipe, `coffer kms restore`, restart: every old object still decrypts; `--version`;
every subcommand's `--help` exits 0."""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from tests.wire.conftest import make_client
from tests.wire.server import start_server

ROOT = Path(__file__).resolve().parents[2]
KEY_C = bytes(range(32))
SSEC = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY_C}
PLAIN_ENV = {"COFFER_DEFAULT_ENCRYPTION": "none", "COFFER_SSE_C_ALLOW_HTTP": "true"}


def coffer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    penv = {k: v for k, v in os.environ.items() if k != "COFFER_BACKUP_PASSPHRASE"}
    penv.update(env or {})
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=penv,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("coffer-ops") / "data", env=PLAIN_ENV)
    yield srv
    srv.stop()


def _populate(srv) -> dict:
    """Objects under every mode; one KMS key rotated between writes (versions 1 and 2)."""
    s3, kms = make_client(srv), make_client(srv, "kms")
    k1 = kms.create_key(Description="ops k1")["KeyMetadata"]["Arn"]
    k2 = kms.create_key(Description="ops k2")["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket="ops-mixed")
    s3.create_bucket(Bucket="ops-default")
    s3.create_bucket(Bucket="ops-empty")
    put = {}

    def obj(bucket, key, size, **kw):
        body = os.urandom(size)
        s3.put_object(Bucket=bucket, Key=key, Body=body, **kw)
        put[(bucket, key)] = (body, kw)

    obj("ops-mixed", "plain-1", 10)
    obj("ops-mixed", "plain-2", 20)
    obj("ops-mixed", "sse-s3", 30, ServerSideEncryption="AES256")
    obj("ops-mixed", "kms-v1-a", 40, ServerSideEncryption="aws:kms", SSEKMSKeyId=k1)
    obj("ops-mixed", "kms-v1-b", 50, ServerSideEncryption="aws:kms", SSEKMSKeyId=k1)
    obj("ops-mixed", "aws-s3-key", 70, ServerSideEncryption="aws:kms")
    obj("ops-mixed", "ssec", 80, **SSEC)
    kms.rotate_key_on_demand(KeyId=k1)
    obj("ops-mixed", "kms-v2", 60, ServerSideEncryption="aws:kms", SSEKMSKeyId=k1)
    # A one-part multipart upload: one record, one wrapped key, for the whole object.
    up = s3.create_multipart_upload(Bucket="ops-mixed", Key="mp", ServerSideEncryption="aws:kms",
                                    SSEKMSKeyId=k1)
    body = os.urandom(90)
    etag = s3.upload_part(Bucket="ops-mixed", Key="mp", UploadId=up["UploadId"], PartNumber=1,
                          Body=body)["ETag"]
    s3.complete_multipart_upload(Bucket="ops-mixed", Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    put[("ops-mixed", "mp")] = (body, {})
    s3.put_bucket_encryption(Bucket="ops-default", ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": k2},
        "BucketKeyEnabled": True}]})
    obj("ops-default", "d1", 5)
    obj("ops-default", "d2", 7)
    return {"k1": k1, "k2": k2, "objects": put}


def _sse_s3_key(srv, bucket: str, key: str) -> str:
    h = hashlib.sha256(key.encode()).hexdigest()
    rec = json.loads((srv.data_dir / "s3" / "buckets" / bucket / "objects" / h[:2]
                      / f"{h}.json").read_bytes())
    return rec["meta"]["sse"]["key_arn"]


def test_encryption_report_matches_what_was_stored(ops_server):
    state = _populate(ops_server)
    k1, k2 = state["k1"], state["k2"]
    aws_s3 = _sse_s3_key(ops_server, "ops-mixed", "aws-s3-key")
    sse_s3 = _sse_s3_key(ops_server, "ops-mixed", "sse-s3")
    r = coffer("s3", "encryption-report", "--data-dir", str(ops_server.data_dir), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    buckets = {b["bucket"]: b for b in report["buckets"]}
    assert set(buckets) == {"ops-mixed", "ops-default", "ops-empty"}
    mixed = buckets["ops-mixed"]
    assert (mixed["objects"], mixed["bytes"], mixed["unreadable"]) == (9, 450, 0)
    assert mixed["byMode"] == {"none": {"objects": 2, "bytes": 30},
                               "AES256": {"objects": 1, "bytes": 30},
                               "aws:kms": {"objects": 5, "bytes": 310},
                               "SSE-C": {"objects": 1, "bytes": 80}}
    assert mixed["byKey"] == sorted([
        {"mode": "AES256", "keyArn": sse_s3, "keyVersion": 1, "objects": 1, "bytes": 30},
        {"mode": "aws:kms", "keyArn": k1, "keyVersion": 1, "objects": 2, "bytes": 90},
        {"mode": "aws:kms", "keyArn": k1, "keyVersion": 2, "objects": 2, "bytes": 150},
        {"mode": "aws:kms", "keyArn": aws_s3, "keyVersion": 1, "objects": 1, "bytes": 70},
    ], key=lambda row: (row["mode"], row["keyArn"], row["keyVersion"]))
    default = buckets["ops-default"]
    assert default["byKey"] == [{"mode": "aws:kms", "keyArn": k2, "keyVersion": 1,
                                 "objects": 2, "bytes": 12}]
    assert buckets["ops-empty"]["objects"] == 0
    assert report["total"]["objects"] == 11 and report["total"]["bytes"] == 462
    assert report["total"]["byMode"]["aws:kms"] == {"objects": 7, "bytes": 322}
    # The table form runs and names what it counts.
    r = coffer("s3", "encryption-report", "--data-dir", str(ops_server.data_dir))
    assert r.returncode == 0, r.stderr
    assert "ops-mixed" in r.stdout and "SSE-C" in r.stdout and "aws:kms" in r.stdout
    r = coffer("s3", "encryption-report", "--data-dir", str(ops_server.data_dir / "nowhere"))
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_backup_live_server_wipe_restore_restart_reads_old_objects(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, env=PLAIN_ENV)
    try:
        state = _populate(srv)
        # Taken while the server runs (and keeps writing): the online snapshot is consistent.
        r = coffer("kms", "backup", "--out", str(tmp_path / "live.backup"), "--data-dir",
                   str(data), env={"COFFER_BACKUP_PASSPHRASE": "a passphrase for ops tests"})
        assert r.returncode == 0, r.stderr
        assert "backup written" in r.stdout
    finally:
        srv.stop()
    shutil.rmtree(data / "kms")
    r = coffer("kms", "restore", str(tmp_path / "live.backup"), "--data-dir", str(data),
               env={"COFFER_BACKUP_PASSPHRASE": "a passphrase for ops tests"})
    assert r.returncode == 0, r.stderr
    srv = start_server(data, env=PLAIN_ENV)
    try:
        s3 = make_client(srv)
        for (bucket, key), (body, kw) in state["objects"].items():
            extra = SSEC if "SSECustomerKey" in kw else {}
            got = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
            assert got == body, (bucket, key)
    finally:
        srv.stop()


def test_version():
    r = coffer("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"coffer {importlib.metadata.version('coffer')}"


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), helps.get(name)
                yield from _commands(sub, path + (name,))


def test_every_command_has_help_and_help_exits_0(capsys):
    commands = list(_commands(build_parser()))
    names = {" ".join(c) for c, _ in commands}
    assert {"serve", "kms backup", "kms restore", "s3 encryption-report",
            "audit verify", "account create"} <= names
    for command, summary in commands:
        assert summary, f"`coffer {' '.join(command)}` has no help line in its parent's list"
        with pytest.raises(SystemExit) as exc:
            main([*command, "--help"])
        assert exc.value.code == 0, command
        assert capsys.readouterr().out.startswith("usage: coffer " + " ".join(command))
    # And once through a real process, as an operator runs it.
    r = coffer("--help")
    assert r.returncode == 0 and "encryption-report" not in r.stdout and "s3" in r.stdout
