"""What wire tests share besides fixtures: the aws CLI of the venv and error codes."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["AWS", "error_code", "aws_json", "raw_request"]

AWS = str(Path(sys.executable).with_name("aws"))


def error_code(exc: Any) -> str:
    """The AWS error code of a botocore ClientError (or a pytest.raises ExceptionInfo)."""
    return getattr(exc, "value", exc).response["Error"]["Code"]


def aws_json(srv, service: str, *args: str) -> dict:
    """Run ``aws --endpoint-url <srv> <service> ...`` unmodified; its JSON output (or {})."""
    proc = subprocess.run([AWS, "--endpoint-url", srv.endpoint, service, *args],
                          env=srv.client_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def raw_request(srv, method: str, path: str, headers: dict[str, str], body: bytes = b"",
         extra: tuple[tuple[bytes, bytes], ...] = ()) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP/1.1 request byte for byte (``extra`` headers go out unencoded)."""
    lines = [f"{method} {path} HTTP/1.1".encode()]
    lines += [f"{k}: {v}".encode() for k, v in headers.items()]
    lines += [k + b": " + v for k, v in extra]
    lines += [b"Content-Length: %d" % len(body), b"Connection: close"]
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    return int(status_line.split()[1]), hdrs, payload
