"""``GET /ready``: can this server take traffic right now? (``/health`` only says it is alive.)

Unsigned, like ``/health`` (a load balancer or Kubernetes probe has no credentials), and it
names only which component failed and the OS's reason, never a path outside the data dir's
own layout, a key id or a secret. Checks, each its own entry::

    data_dir     a probe file can be created, written, fsynced and removed in the data dir
                 and in s3/staging/, where every PUT stages its bytes
    kms          the KMS is open: its database answers a read and the root key (file,
                 passphrase or PKCS#11 token) wraps and unwraps a random probe
                 (KMS.check_ready)
    audit_trail  a probe file can be created in audit/trail/, where the trail rolls to its
                 next file: a trail that cannot roll cannot record, and every call fails
                 closed

200 ``{"status": "ready"}``, or 503 ``{"status": "not ready", "failed": {check: reason}}``.
The probes run in a thread (fsync and the token block) and take milliseconds.
"""
from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

__all__ = ["readiness", "ready_response"]

_PROBE_PREFIX = ".ready-probe-"


def _probe_dir(directory: Path) -> None:
    """Create, write, fsync and remove a probe file in ``directory``. Raises OSError."""
    path = directory / f"{_PROBE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"ready\n")
        os.fsync(fd)
    finally:
        os.close(fd)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if type(exc) is RuntimeError:
        return str(exc)
    return type(exc).__name__


def readiness(data_dir: Path, kms: Any | None) -> dict[str, str]:
    """{check: reason} of every failing check (empty: ready). Blocking."""
    failed: dict[str, str] = {}
    checks: dict[str, Callable[[], None]] = {
        "data_dir": lambda: (_probe_dir(data_dir), _probe_dir(data_dir / "s3" / "staging")),
        "kms": (lambda: kms.check_ready()) if kms is not None else _not_open,
        "audit_trail": lambda: _probe_dir(data_dir / "audit" / "trail"),
    }
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", named
            failed[name] = _reason(exc)
    return failed


def _not_open() -> None:
    raise RuntimeError("the KMS is not open")


async def ready_response(data_dir: Path, kms: Any | None) -> web.Response:
    failed = await asyncio.to_thread(readiness, data_dir, kms)
    if failed:
        return web.json_response({"status": "not ready", "failed": failed}, status=503)
    return web.json_response({"status": "ready"})
