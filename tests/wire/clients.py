"""What wire tests share besides fixtures: the aws CLI of the venv and error codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["AWS", "error_code", "aws_json"]

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
