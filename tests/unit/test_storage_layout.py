"""Key -> path mapping, name guards and record formats of the filesystem store."""
from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import pytest

from storage.base import ObjectInfo
from storage.errors import InvalidKey, NoSuchBucket, NoSuchUpload
from storage.fs.index import successor
from storage.fs.layout import (DATA_NAME_RE, Layout, check_bucket_name, check_config_kind,
                               check_upload_id, encode_key, key_hash, new_upload_id)
from storage.fs.records import CorruptRecord, decode_object, dump, encode_object, load

TRICKY_KEYS = [
    "a", "a/b", "a/b/", "a//b", "//", "/", "/a", ".", "..", "../x", "../../../etc/passwd",
    "a/../../b", "..\\..\\x", "x" * 1024, "s/" + "y" * 1000, "é", "e\u0301", "日本語/キー", "😀",
    "%2e%2e/%2F", "a+b c", " ", "  leading", "trailing ", "tab\there", "new\nline", "nul\x00byte",
    "CON", "aux.txt", "~", "-rf", "*?[]", "\u202eevil",
]


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


def test_every_tricky_key_maps_inside_its_shard(layout: Layout) -> None:
    bucket = layout.bucket("my-bucket.1")
    objects = bucket.objects.resolve()
    seen = set()
    for key in TRICKY_KEYS:
        h = key_hash(key)
        assert h == hashlib.sha256(key.encode()).hexdigest()
        sidecar = bucket.sidecar(h)
        assert sidecar.resolve().parent.parent == objects
        assert sidecar.name == f"{h}.json" and sidecar.parent.name == h[:2]
        data = bucket.data_name(h)
        assert DATA_NAME_RE.match(data) and "/" not in data
        seen.add(h)
    assert len(seen) == len(TRICKY_KEYS)        # "a" and "a/b" coexist, no collisions


def test_key_byte_limits() -> None:
    assert encode_key("x" * 1024) == b"x" * 1024
    assert len(encode_key("é" * 512)) == 1024
    for bad in ("", "x" * 1025, "é" * 513, "\ud800lone-surrogate"):
        with pytest.raises(InvalidKey):
            encode_key(bad)
    with pytest.raises(InvalidKey):
        encode_key(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["..", "a/b", "../x", "ab/..", "a\\b", "", "x", "UPPER",
                                  "a..b", "-abc", "abc-", "a" * 64, "nul\x00ab", "."])
def test_bucket_names_that_are_not_one_safe_component(name: str) -> None:
    with pytest.raises(NoSuchBucket):
        check_bucket_name(name)


@pytest.mark.parametrize("name", ["abc", "my.bucket", "a-b-c", "0" * 63, "x1y"])
def test_valid_bucket_names(name: str, layout: Layout) -> None:
    assert layout.bucket(name).dir == layout.buckets / name


def test_upload_ids_and_config_kinds() -> None:
    uid = new_upload_id()
    assert check_upload_id(uid) == uid and os.sep not in uid
    for bad in ("", "../" + uid[3:], uid + "x", uid[:-1] + "/", ".." * 16):
        with pytest.raises(NoSuchUpload):
            check_upload_id(bad)
    assert check_config_kind("encryption") == "encryption"
    for bad in ("", "../x", "a/b", ".hidden", "A"):
        with pytest.raises(ValueError):
            check_config_kind(bad)


def test_sidecar_round_trip_and_version_check() -> None:
    key = "a/é"
    h = key_hash(key)
    info = ObjectInfo(key=key, size=3, etag="abc", last_modified=1.5, meta={"m": [1, "x"]},
                      part_sizes=[1, 2])
    data = [f"{h}.{'0' * 24}.data", f"{h}.{'1' * 24}.data"]
    raw = encode_object(info, data, "upload")
    assert decode_object(raw, h) == (info, data, "upload")
    with pytest.raises(CorruptRecord):
        decode_object(raw.replace(b'"v":1', b'"v":2'), h)
    with pytest.raises(CorruptRecord):
        decode_object(raw, "f" * 64)                        # data names of another key
    evil = encode_object(ObjectInfo(key=key, size=1, etag="e", last_modified=0),
                         ["../../../../etc/passwd"])
    with pytest.raises(CorruptRecord):
        decode_object(evil)
    with pytest.raises(CorruptRecord):
        load(dump({"x": 1}), "doc")
    with pytest.raises(CorruptRecord):
        load(b"\xff not json", "doc")


def test_successor() -> None:
    assert successor(b"a/") == b"a0"
    assert successor(b"a\xff") == b"b"
    assert successor(b"\xff\xff") is None
    assert successor(b"") is None
    for p in (b"a/", b"x\xc3\xa9/"):
        s = successor(p)
        assert s is not None and p + b"\xff" * 8 < s and p < s


def test_storage_never_imports_forbidden_packages() -> None:
    root = Path(__file__).resolve().parents[2] / "storage"
    forbidden = {"kms", "gateway", "cryptography", "aiohttp"}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in forbidden, f"{path} imports {n}"
