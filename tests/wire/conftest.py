"""Fixtures: a real ``coffer serve`` per test module (HTTP and HTTPS) and boto3 clients."""
from __future__ import annotations

import subprocess
import sys
import uuid

import boto3
import pytest
from botocore.config import Config

from tests.wire.server import Server, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    srv = start_server(tmp_path_factory.mktemp("coffer") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory) -> Server:
    srv = start_server(tmp_path_factory.mktemp("coffer-tls") / "data", tls=True)
    yield srv
    srv.stop()


def make_client(srv: Server, service: str = "s3", key: str | None = None,
                secret: str | None = None, *, region: str | None = None, **config):
    """A boto3 client for ``srv``: the root's keys unless ``key``/``secret`` are given."""
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, **config)
    return boto3.client(service, endpoint_url=srv.endpoint,
                        aws_access_key_id=key or srv.access_key,
                        aws_secret_access_key=secret or srv.secret_key,
                        region_name=region or srv.region, config=cfg,
                        verify=str(srv.ca) if srv.ca else None)


def new_account(srv: Server) -> tuple[str, str, str]:
    """``coffer account create`` on the server's data dir -> (account id, access key, secret)."""
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "account", "create",
                          "--data-dir", str(srv.data_dir)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(line.strip().split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return out.stdout.split()[1], lines["AWS_ACCESS_KEY_ID"], lines["AWS_SECRET_ACCESS_KEY"]


@pytest.fixture(scope="session")
def s3(server):
    return make_client(server)


@pytest.fixture(scope="session")
def kms(server):
    return make_client(server, "kms")


@pytest.fixture(scope="session")
def s3_tls(tls_server):
    return make_client(tls_server)


@pytest.fixture
def bucket(s3):
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    _empty_and_delete(s3, name)


@pytest.fixture
def tls_bucket(s3_tls):
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3_tls.create_bucket(Bucket=name)
    yield name
    _empty_and_delete(s3_tls, name)


def _empty_and_delete(client, name: str) -> None:
    try:
        for up in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys})
        client.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - best-effort cleanup
        pass


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    """A server configured the pre-2023 way: no implicit encryption, SSE-C allowed over HTTP
    (the COFFER_DEFAULT_ENCRYPTION / COFFER_SSE_C_ALLOW_HTTP contract of gateway/cli.py)."""
    srv = start_server(tmp_path_factory.mktemp("coffer-plain") / "data",
                       env={"COFFER_DEFAULT_ENCRYPTION": "none",
                            "COFFER_SSE_C_ALLOW_HTTP": "true"})
    yield srv
    srv.stop()
