"""Start a real ``coffer serve`` subprocess on a free loopback port, for wire tests and benches."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import ssl
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Server", "start_server", "free_port"]

ACCESS_KEY = "AKIACOFFERTEST000001"
SECRET_KEY = "coffer/test/secret/key/0123456789abcdefgh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    endpoint: str
    data_dir: Path
    proc: subprocess.Popen
    access_key: str = ACCESS_KEY
    secret_key: str = field(default=SECRET_KEY, repr=False)
    ca: Path | None = None
    region: str = "us-east-1"
    log: Path | None = None

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def client_env(self) -> dict[str, str]:
        """Environment for CLI clients (aws) talking to this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key,
                   AWS_DEFAULT_REGION=self.region, AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        if self.ca:
            env["AWS_CA_BUNDLE"] = str(self.ca)
        return env

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(data_dir: Path, *, tls: bool = False, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, timeout: float = 30.0,
                 prefix: list[str] | None = None) -> Server:
    """``prefix``: a command the server runs under (e.g. ``setpriv ...``)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"server-{port}.log"
    penv = dict(os.environ)
    penv.update(COFFER_ROOT_ACCESS_KEY=ACCESS_KEY, COFFER_ROOT_SECRET_KEY=SECRET_KEY)
    penv.update(env or {})
    args = [*(prefix or []), sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--data-dir", str(data_dir)]
    if tls:
        args.append("--tls")
    args += extra_args or []
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=penv,
                                cwd=Path(__file__).resolve().parents[2])
    scheme = "https" if tls else "http"
    endpoint = f"{scheme}://127.0.0.1:{port}"
    ca = data_dir / "tls" / "ca.pem" if tls else None
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"coffer serve exited: {log.read_text()}")
        try:
            ctx = ssl.create_default_context(cafile=str(ca)) if tls and ca.exists() else None
            with urllib.request.urlopen(f"{endpoint}/health", timeout=1, context=ctx) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"coffer serve did not become healthy: {log.read_text()}")
        time.sleep(0.05)
    return Server(endpoint=endpoint, data_dir=data_dir, proc=proc, ca=ca, log=log)
