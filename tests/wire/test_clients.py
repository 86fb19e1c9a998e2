"""The aws CLI, rclone and s3cmd, unmodified, against a real coffer serve."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from tests.wire.clients import AWS

pytestmark = pytest.mark.wire

MiB = 1024 * 1024


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def aws(srv, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([AWS, "--endpoint-url", srv.endpoint, *args], srv.client_env(), check=check)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _make_tree(root: Path) -> None:
    for rel, size in [("a.txt", 10), ("dir/b.bin", 3000), ("dir/sub/c d.txt", 1),
                      ("dir/sub/e+f.txt", 0), ("ü.txt", 100)]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))


@pytest.mark.parametrize("srv_name", ["server", "tls_server"])
def test_aws_cli_session(request, tmp_path, srv_name):
    srv = request.getfixturevalue(srv_name)
    b = f"cli-{uuid.uuid4().hex[:8]}"
    aws(srv, "s3", "mb", f"s3://{b}")
    small = tmp_path / "small.txt"
    small.write_bytes(os.urandom(1024))
    aws(srv, "s3", "cp", str(small), f"s3://{b}/small.txt")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom((100 if srv_name == "server" else 20) * MiB))
    aws(srv, "s3", "cp", str(big), f"s3://{b}/big/big.bin")
    back = tmp_path / "back.bin"
    aws(srv, "s3", "cp", f"s3://{b}/big/big.bin", str(back))
    assert back.read_bytes() == big.read_bytes()
    out = aws(srv, "s3", "ls", f"s3://{b}/").stdout
    assert "small.txt" in out and "PRE big/" in out
    out = aws(srv, "s3", "ls", "--recursive", f"s3://{b}/").stdout
    assert "big/big.bin" in out
    assert b in aws(srv, "s3", "ls").stdout

    src = tmp_path / "tree"
    _make_tree(src)
    aws(srv, "s3", "sync", str(src), f"s3://{b}/tree/")
    dst = tmp_path / "tree-back"
    aws(srv, "s3", "sync", f"s3://{b}/tree/", str(dst))
    assert _tree(dst) == _tree(src)

    head = json.loads(aws(srv, "s3api", "head-object", "--bucket", b, "--key",
                          "small.txt").stdout)
    assert head["ContentLength"] == 1024
    aws(srv, "s3api", "copy-object", "--bucket", b, "--key", "copy.txt",
        "--copy-source", f"{b}/small.txt")
    listed = json.loads(aws(srv, "s3api", "list-objects-v2", "--bucket", b, "--prefix",
                            "tree/dir/", "--delimiter", "/").stdout)
    assert [c["Prefix"] for c in listed["CommonPrefixes"]] == ["tree/dir/sub/"]
    assert [o["Key"] for o in listed["Contents"]] == ["tree/dir/b.bin"]
    deleted = json.loads(aws(srv, "s3api", "delete-objects", "--bucket", b, "--delete",
                             json.dumps({"Objects": [{"Key": "copy.txt"}]})).stdout)
    assert deleted["Deleted"] == [{"Key": "copy.txt"}]

    url = aws(srv, "s3", "presign", f"s3://{b}/small.txt").stdout.strip()
    curl = ["curl", "-sf", url] + (["--cacert", str(srv.ca)] if srv.ca else [])
    assert subprocess.run(curl, capture_output=True, timeout=60).stdout == small.read_bytes()

    aws(srv, "s3", "rm", "--recursive", f"s3://{b}/")
    aws(srv, "s3", "rb", f"s3://{b}")
    assert b not in aws(srv, "s3", "ls").stdout


def _rclone_env(srv) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(RCLONE_CONFIG_COFFER_TYPE="s3", RCLONE_CONFIG_COFFER_PROVIDER="Other",
               RCLONE_CONFIG_COFFER_ACCESS_KEY_ID=srv.access_key,
               RCLONE_CONFIG_COFFER_SECRET_ACCESS_KEY=srv.secret_key,
               RCLONE_CONFIG_COFFER_ENDPOINT=srv.endpoint,
               RCLONE_CONFIG_COFFER_REGION=srv.region, RCLONE_CONFIG="/dev/null")
    return env


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed (.ci/run installs it)")
@pytest.mark.parametrize("cutoff", [None, "5M"])
def test_rclone(server, tmp_path, cutoff):
    env = _rclone_env(server)
    b = f"rc-{uuid.uuid4().hex[:8]}"
    src = tmp_path / "src"
    _make_tree(src)
    (src / "large.bin").write_bytes(os.urandom(12 * MiB))
    extra = ["--s3-upload-cutoff", cutoff, "--s3-chunk-size", cutoff] if cutoff else []
    run(["rclone", "copy", *extra, str(src), f"coffer:{b}/data"], env)
    ls = run(["rclone", "ls", f"coffer:{b}/data"], env).stdout
    assert "dir/sub/c d.txt" in ls and "large.bin" in ls
    lsf = run(["rclone", "lsf", "-R", f"coffer:{b}/data"], env).stdout.split()
    assert "dir/b.bin" in lsf
    run(["rclone", "check", str(src), f"coffer:{b}/data"], env)
    (src / "a.txt").write_bytes(b"changed")
    (src / "ü.txt").unlink()
    run(["rclone", "sync", *extra, str(src), f"coffer:{b}/data"], env)
    run(["rclone", "check", str(src), f"coffer:{b}/data"], env)
    back = tmp_path / "back"
    run(["rclone", "copy", f"coffer:{b}/data", str(back)], env)
    assert _tree(back) == _tree(src)
    run(["rclone", "delete", f"coffer:{b}/data"], env)
    assert run(["rclone", "ls", f"coffer:{b}"], env).stdout.strip() == ""


@pytest.mark.skipif(shutil.which("s3cmd") is None, reason="s3cmd not installed (.ci/run installs it)")
@pytest.mark.parametrize("sigv2", [False, True])
def test_s3cmd(server, tmp_path, sigv2):
    cfg = tmp_path / "s3cfg"
    host = f"127.0.0.1:{server.port}"
    cfg.write_text("[default]\n"
                   f"access_key = {server.access_key}\nsecret_key = {server.secret_key}\n"
                   f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\n"
                   f"bucket_location = us-east-1\nsignature_v2 = {sigv2}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    s3cmd = ["s3cmd", "-c", str(cfg)]
    b = f"sc-{uuid.uuid4().hex[:8]}"
    run([*s3cmd, "mb", f"s3://{b}"], env)
    small = tmp_path / "small.txt"
    small.write_bytes(b"hello from s3cmd\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * MiB))
    run([*s3cmd, "put", str(small), f"s3://{b}/small.txt"], env)
    run([*s3cmd, "put", str(big), f"s3://{b}/dir/big.bin"], env)
    out = run([*s3cmd, "ls", f"s3://{b}/"], env).stdout
    assert "small.txt" in out and "DIR" in out
    assert "big.bin" in run([*s3cmd, "ls", "-r", f"s3://{b}/"], env).stdout
    got = tmp_path / "got.bin"
    run([*s3cmd, "get", f"s3://{b}/dir/big.bin", str(got)], env)
    assert got.read_bytes() == big.read_bytes()
    run([*s3cmd, "del", f"s3://{b}/small.txt"], env)
    run([*s3cmd, "del", f"s3://{b}/dir/big.bin"], env)
    assert run([*s3cmd, "ls", f"s3://{b}/"], env).stdout.strip() == ""
    run([*s3cmd, "rb", f"s3://{b}"], env)


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose not installed (.ci/run installs it)")
def test_compose_file_is_valid():
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(["docker-compose", "-f", str(root / "compose.yaml"), "config"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "9000" in proc.stdout and "/data" in proc.stdout
