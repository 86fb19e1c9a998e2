"""Every error maps to an AWS code and status; the rooms import only what they may."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from gateway.s3.common import storage_error
from gateway.s3.errors import ERRORS, S3Error
from storage import errors as se

ROOT = Path(__file__).resolve().parents[2]


def test_every_s3_error_has_status_and_message():
    for code, (status, message) in ERRORS.items():
        assert 300 <= status < 600 and message, code
        err = S3Error(code)
        assert err.status == status and err.message == message


def test_unknown_code_is_a_server_error():
    assert S3Error("SomethingNew").status == 500


@pytest.mark.parametrize("cls", [c for _, c in inspect.getmembers(se, inspect.isclass)
                                 if issubclass(c, se.StorageError)])
def test_every_storage_error_maps_to_a_code(cls):
    exc = cls("x", "owner") if cls is se.BucketExists else cls("x")
    err = storage_error(exc, "bucket", "key")
    assert err.code in ERRORS


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _files(room: str):
    return sorted((ROOT / room).rglob("*.py"))


def test_storage_imports_nothing_of_keys_or_http():
    for f in _files("storage"):
        assert not _imports(f) & {"kms", "gateway", "cryptography", "aiohttp"}, f


def test_kms_never_imports_gateway_or_http():
    for f in _files("kms"):
        assert not _imports(f) & {"gateway", "aiohttp"}, f


def test_cryptography_only_in_the_crypto_rooms():
    allowed = (ROOT / "kms" / "crypto", ROOT / "gateway" / "sse")
    for room in ("gateway", "kms", "storage"):
        for f in _files(room):
            if "cryptography" in _imports(f):
                assert any(a in f.parents for a in allowed), f
