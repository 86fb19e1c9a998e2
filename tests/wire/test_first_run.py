"""Issue 15, first run: the README's run command, then `coffer demo` and the "short session" in a
second terminal, the way a new user does it, with no flags at all.

A clean-clone stand-in: a fresh temp directory is the working directory of both "terminals",
``coffer`` is this source tree (PYTHONPATH), no COFFER_* or AWS_* variable is inherited. The
server runs with no flags, so on 127.0.0.1:9000 and ./coffer-data. If port 9000 is taken on
this machine (another test run) the test moves both to a free port through the documented
environment twins COFFER_PORT / COFFER_ENDPOINT, still without a flag.
"""
from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.wire.server import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEFAULT_PORT = 9000


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _user_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COFFER_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    # A user's ~/.aws must not matter either way.
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               AWS_EC2_METADATA_DISABLED="true", COLUMNS="160")
    if port != DEFAULT_PORT:
        env.update(COFFER_PORT=str(port), COFFER_ENDPOINT=f"http://127.0.0.1:{port}")
    return env


def _fake_venv(cwd: Path) -> None:
    """``.venv/bin`` as the README's install leaves it: coffer, aws, pip, activate."""
    bindir = cwd / ".venv" / "bin"
    bindir.mkdir(parents=True)
    aws = Path(sys.executable).with_name("aws")
    scripts = {
        "coffer": f'#!/bin/sh\nexec "{sys.executable}" -m gateway.cli "$@"\n',
        "aws": f'#!/bin/sh\nexec "{aws}" "$@"\n',
        # The README installs awscli with pip; this run has it already (test extra).
        "pip": '#!/bin/sh\nexit 0\n',
        "activate": f'PATH="{bindir}:$PATH"; export PATH\n',
    }
    for name, text in scripts.items():
        path = bindir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _short_session(port: int) -> str:
    text = README.read_text()
    section = text[text.index("## A short session"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return block.replace("127.0.0.1:9000", f"127.0.0.1:{port}")


@pytest.fixture
def first_run(tmp_path):
    port = DEFAULT_PORT if _port_free(DEFAULT_PORT) else free_port()
    env = _user_env(port)
    _fake_venv(tmp_path)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve"], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"coffer serve exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    yield tmp_path, env, port, log
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_readme_run_command_then_demo_and_short_session(first_run):
    cwd, env, port, log = first_run
    banner = log.read_text()
    assert "Root credentials (shown once" in banner and "AWS_SECRET_ACCESS_KEY=" in banner
    assert "coffer demo" in banner
    assert (cwd / "coffer-data" / "root-credentials.json").is_file()
    assert (cwd / "coffer-data.iam.key").is_file()        # beside the data dir, as the README
    assert not (cwd / "coffer-data" / "coffer-data.iam.key").exists()

    demo = subprocess.run([sys.executable, "-m", "gateway.cli", "demo"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, f"stdout:\n{demo.stdout}\nstderr:\n{demo.stderr}"
    assert "Demo complete" in demo.stdout
    assert "Traceback" not in demo.stderr

    session = subprocess.run(["bash", "-euo", "pipefail", "-c", _short_session(port)],
                             cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert session.returncode == 0, f"stdout:\n{session.stdout}\nstderr:\n{session.stderr}"
    out = session.stdout
    assert "make_bucket: photos" in out
    assert "2026/holiday.jpg" in out
    assert re.search(r"http://127\.0\.0\.1:\d+/photos/2026/holiday\.jpg\?.*Signature=", out)
    head = json.loads(out[out.index("{"):])
    assert head["ContentLength"] == len("a holiday picture\n")
    assert head["ServerSideEncryption"] == "AES256"


def test_demo_without_credentials_says_where_they_are(tmp_path):
    port = free_port()
    env = _user_env(port)
    env["COFFER_ENDPOINT"] = f"http://127.0.0.1:{port}"
    # A server that answers /health, so the demo gets as far as the credentials.
    server = subprocess.Popen([sys.executable, "-c", (
        "import http.server as h\n"
        "class H(h.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'{}')\n"
        "    def log_message(self, *a): pass\n"
        f"h.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n")])
    try:
        deadline = time.monotonic() + 20
        while _port_free(port):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = subprocess.run([sys.executable, "-m", "gateway.cli", "demo"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.terminate()
        server.wait(10)
    assert r.returncode == 1
    err = " ".join(r.stderr.split())
    assert "no credentials" in err and "root-credentials.json" in err
    assert "prints the root credentials on its first start" in err
    assert "--data-dir" in err and "Traceback" not in err


def test_audit_retain_days_is_the_issues_name_for_retention(monkeypatch):
    from gateway.cli import build_parser, config_from_args
    args = build_parser().parse_args(["serve", "--audit-retain-days", "3"])
    assert config_from_args(args).audit_retention_days == 3
    args = build_parser().parse_args(["serve", "--audit-retention-days", "2.5"])
    assert config_from_args(args).audit_retention_days == 2.5
    monkeypatch.setenv("COFFER_AUDIT_RETAIN_DAYS", "7")
    assert build_parser().parse_args(["serve"]).audit_retention_days == 7
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--audit-retain-days", "0"])


def test_every_command_has_help():
    for cmd in (["--help"], ["--version"], ["serve", "--help"], ["demo", "--help"],
                ["credentials", "--help"], ["s3", "encryption-report", "--help"]):
        r = subprocess.run([sys.executable, "-m", "gateway.cli", *cmd], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.strip(), (cmd, r.stderr)
    serve_help = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--help"],
                                cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    for flag in ("--metrics-port", "--metrics-host", "--metrics-token-file", "--log-format",
                 "--audit-retain-days"):
        assert flag in serve_help
