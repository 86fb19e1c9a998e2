"""``coffer demo`` end to end against a real server, and the ``serve`` encryption flags."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import build_parser, config_from_args
from gateway.demo import files_containing, sidecar_path
from tests.wire.conftest import make_client
from tests.wire.server import free_port, start_server

ROOT = Path(__file__).resolve().parents[2]


def _demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "COFFER_"))}
    env.update(COLUMNS="200", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               AWS_EC2_METADATA_DISABLED="true")
    return env


def _run_demo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "demo", *args], cwd=ROOT,
                          env=_demo_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("coffer-demo") / "data")
    yield srv
    srv.stop()


def test_demo_runs_every_step(demo_server):
    r = _run_demo("--endpoint", demo_server.endpoint, "--data-dir", str(demo_server.data_dir),
                  "--size-mib", "8")
    out = r.stdout
    assert r.returncode == 0, f"stdout:\n{out}\nstderr:\n{r.stderr}"
    for n in range(1, 10):
        assert f"Step {n}." in out
    arn = re.search(r"arn:aws:kms:us-east-1:\d{12}:key/[0-9a-f-]{36}", out)
    assert arn, out
    # 1-2: key, data key (length only), encrypt/decrypt, wrong context
    assert "alias/coffer-demo-" in out
    assert "32-byte plaintext data key (not shown)" in out
    assert "Decrypt with the same context: the secret comes back" in out
    # 3: head-object
    assert re.search(r"ServerSideEncryption\s+aws:kms", out)
    assert re.search(r"SSEKMSKeyId\s+" + re.escape(arn.group(0)), out)
    # 4: on disk
    assert "object sidecar: s3/buckets/coffer-demo-" in out
    assert "wrapped_key" in out and "coffer-sse/1" in out and "aws:s3:arn" in out
    assert "0 files contain the plaintext" in out
    # 5-7: GET, large multipart upload, ranged GET
    assert "identical to what was PUT" in out
    assert "2 part(s)" in out and "matches" in out
    assert "Content-Range bytes" in out
    # 8: the object's wrapped key under a wrong / right context
    assert out.count("InvalidCiphertextException") >= 3
    assert "succeeds: a 32-byte data key (not shown)" in out
    # 9: clean-up
    assert "scheduled for deletion in 7 days" in out
    assert "Demo complete" in out

    s3 = make_client(demo_server)
    kms = make_client(demo_server, "kms")
    assert not [b for b in s3.list_buckets().get("Buckets", []) if b["Name"].startswith("coffer-demo-")]
    assert not [a for a in kms.list_aliases().get("Aliases", [])
                if a["AliasName"].startswith("alias/coffer-demo-")]
    key = kms.describe_key(KeyId=arn.group(0))["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"


def test_demo_keep_leaves_objects(demo_server):
    r = _run_demo("--endpoint", demo_server.endpoint, "--data-dir", str(demo_server.data_dir),
                  "--size-mib", "6", "--keep")
    assert r.returncode == 0, r.stdout + r.stderr
    bucket = re.search(r"bucket (coffer-demo-[0-9a-f]{8}) kept", r.stdout).group(1)
    s3 = make_client(demo_server)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["large/random-6MiB.bin", "secret/report.txt"]
    assert sidecar_path(demo_server.data_dir, bucket, "secret/report.txt").is_file()
    for k in keys:
        s3.delete_object(Bucket=bucket, Key=k)
    s3.delete_bucket(Bucket=bucket)


def test_demo_without_server_says_start_serve(tmp_path):
    r = _run_demo("--endpoint", f"http://127.0.0.1:{free_port()}", "--data-dir", str(tmp_path),
                  timeout=30)
    assert r.returncode != 0
    assert "start `coffer serve` first" in r.stderr.lower()
    assert "Traceback" not in r.stderr


def test_demo_wrong_data_dir_is_explained(demo_server, tmp_path):
    env_args = ("--endpoint", demo_server.endpoint, "--data-dir", str(tmp_path / "elsewhere"))
    r = _run_demo(*env_args, timeout=30)
    assert r.returncode != 0
    assert "no credentials" in r.stderr and "Traceback" not in r.stderr


def test_files_containing_finds_a_marker_across_chunk_boundaries(tmp_path):
    marker = b"MARKER-0123456789"
    (tmp_path / "a").mkdir()
    split = tmp_path / "a" / "split.bin"
    split.write_bytes(b"x" * (1024 * 1024 - 5) + marker + b"y" * 10)
    (tmp_path / "clean.bin").write_bytes(b"z" * (2 * 1024 * 1024))
    hits, seen = files_containing(tmp_path, marker)
    assert hits == [split] and seen == 2


# -- serve flags: --default-encryption, --sse-c-allow-http

def test_serve_encryption_flags_parse(monkeypatch):
    monkeypatch.delenv("COFFER_DEFAULT_ENCRYPTION", raising=False)
    monkeypatch.delenv("COFFER_SSE_C_ALLOW_HTTP", raising=False)
    cfg = config_from_args(build_parser().parse_args(["serve"]))
    assert (cfg.default_encryption, cfg.sse_c_require_tls) == ("AES256", True)
    cfg = config_from_args(build_parser().parse_args(
        ["serve", "--default-encryption", "none", "--sse-c-allow-http"]))
    assert (cfg.default_encryption, cfg.sse_c_require_tls) == ("none", False)
    monkeypatch.setenv("COFFER_DEFAULT_ENCRYPTION", "none")
    monkeypatch.setenv("COFFER_SSE_C_ALLOW_HTTP", "true")
    cfg = config_from_args(build_parser().parse_args(["serve"]))
    assert (cfg.default_encryption, cfg.sse_c_require_tls) == ("none", False)
    cfg = config_from_args(build_parser().parse_args(["serve", "--default-encryption", "AES256"]))
    assert cfg.default_encryption == "AES256"
    monkeypatch.setenv("COFFER_DEFAULT_ENCRYPTION", "bogus")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve"])


def test_serve_encryption_flags_on_the_wire(tmp_path):
    srv = start_server(tmp_path / "data", extra_args=["--default-encryption", "none",
                                                      "--sse-c-allow-http"])
    try:
        s3 = make_client(srv)
        s3.create_bucket(Bucket="flags")
        s3.put_object(Bucket="flags", Key="plain", Body=b"hello")
        assert "ServerSideEncryption" not in s3.head_object(Bucket="flags", Key="plain")
        key = os.urandom(32)
        s3.put_object(Bucket="flags", Key="ssec", Body=b"secret", SSECustomerAlgorithm="AES256",
                      SSECustomerKey=key)
        got = s3.get_object(Bucket="flags", Key="ssec", SSECustomerAlgorithm="AES256",
                            SSECustomerKey=key)
        assert got["Body"].read() == b"secret"
        assert got["SSECustomerAlgorithm"] == "AES256"
    finally:
        srv.stop()
