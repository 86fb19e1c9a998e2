"""Server configuration: the command-line contract of DESIGN.md ("Data dir and command line").

Every flag has an environment twin ``COFFER_<NAME>``; flags win over the environment, the
environment over the defaults.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Config", "env_default"]


def env_default(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"COFFER_{name.upper().replace('-', '_')}", default)


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 9000
    data_dir: Path = Path("./coffer-data")
    region: str = "us-east-1"
    # Regions served (--regions / COFFER_REGIONS); None: every valid region name a client
    # signs for. Each has its own KMS key namespace and its own buckets (gateway.regions).
    regions: tuple[str, ...] | None = None
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Host names under which virtual-host-style addressing is recognised (bucket.<domain>).
    domains: tuple[str, ...] = ("localhost",)
    # Seals stored IAM secret keys; None: <data_dir>.iam.key, beside (never inside) the data dir.
    iam_key_file: Path | None = None
    root_access_key: str | None = None
    root_secret_key: str | None = field(default=None, repr=False)
    # The edge (gateway/listener.py): a connection must deliver a complete request head within
    # header_timeout seconds of connecting or of its previous response (so this is also the
    # keep-alive idle limit), and at most max_connections are open at once; more wait in the
    # listen backlog. Finding 18 of issue 11: a dribbled head held a connection for 75 s.
    header_timeout: float = 15.0
    max_connections: int = 1024
    # A request whose handler waits this long for body bytes fails with 400 RequestTimeout.
    body_timeout: float = 20.0
    # Allowed difference between a request's signing time and ours (AWS: 15 minutes).
    max_clock_skew: float = 900.0
    max_object_size: int = 5 * 1024 ** 3
    min_part_size: int = 5 * 1024 ** 2
    # What a bucket with no encryption configuration does with unencrypted PUTs: "AES256"
    # (AWS since 2023-01-05: SSE-S3 by default) or "none" (no default encryption).
    default_encryption: str = "AES256"
    # SSE-C keys travel in headers; S3 refuses them over plain HTTP.
    sse_c_require_tls: bool = True
    # How long a plaintext S3 Bucket Key may be reused before it is fetched from KMS again.
    bucket_key_ttl: float = 300.0
    # How often the server applies due key rotations and deletions.
    scheduler_interval: float = 60.0
    # PKCS#11 module for the pkcs11 root key and custom key stores (COFFER_PKCS11_MODULE);
    # token label, PIN and key label come from COFFER_PKCS11_* (kms.rootkeys.HSMSettings).
    pkcs11_module: str | None = None
    # Root key provider for a new data dir: "file" or "pkcs11" (None: as the data dir records).
    root_key: str | None = None
    # Audit trail (gateway/audit_trail.py): serve even when a record cannot be written
    # (default: fail closed), roll files at this size / age, write a signed digest this often.
    audit_fail_open: bool = False
    audit_roll_bytes: int = 16 * 1024 * 1024
    audit_roll_interval: float = 3600.0
    audit_digest_interval: float = 3600.0
    audit_retention_days: float | None = None     # None: keep trail files forever
    # Observability (gateway/metrics.py, gateway/access_log.py): Prometheus metrics on their own
    # listener (None: off), never on the S3 port; a bearer token file guards them when set.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_token_file: Path | None = None
    # How stale the storage gauges (objects/bytes by SSE mode) may be, in seconds.
    metrics_scan_interval: float = 60.0
    log_format: str = "text"
