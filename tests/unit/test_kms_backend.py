"""Software backend: material bound to (ARN, version), bounded cache, opaque failures; audit
events refuse bytes."""
from __future__ import annotations

import pytest

from kms.audit import AuditEvent, MemorySink
from kms.backends import KeyBackend, MaterialRef
from kms.backends.software import SoftwareBackend
from kms.crypto.aead import CryptoError
from kms.crypto.rootkey import FileRootKey, RootKey

ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def root(tmp_path):
    return FileRootKey.open(tmp_path / "root.key")


def test_protocols(root):
    assert isinstance(root, RootKey)
    assert isinstance(SoftwareBackend(root), KeyBackend)
    assert "secret" not in repr(root) and root.key_id.startswith("file:")


def test_seal_open_and_cache_bound(root):
    be = SoftwareBackend(root, cache_size=2)
    refs = [MaterialRef(ARN, v, be.generate(ARN, v)) for v in (1, 2, 3)]
    assert len(be._cache) == 2
    sealed = [be.seal(r, bytes(12), b"pt", b"aad") for r in refs]
    assert len(set(sealed)) == 3                      # distinct material per version
    cold = SoftwareBackend(root, cache_size=2)        # a new process: unwrap from records
    for r, s in zip(refs, sealed):
        assert cold.open(r, bytes(12), s, b"aad") == b"pt"
    assert len(cold._cache) == 2


def test_record_bound_to_arn_and_version(root):
    be = SoftwareBackend(root)
    record = be.generate(ARN, 1)
    for ref in (MaterialRef(ARN, 2, record), MaterialRef(ARN + "x", 1, record)):
        with pytest.raises(CryptoError):
            SoftwareBackend(root).seal(ref, bytes(12), b"pt", b"")


def test_open_failures_are_opaque(root):
    be = SoftwareBackend(root)
    ref = MaterialRef(ARN, 1, be.generate(ARN, 1))
    sealed = be.seal(ref, bytes(12), b"pt", b"aad")
    for args in ((bytes(12), sealed, b"other"), (bytes(11), sealed, b"aad"),
                 (bytes(12), sealed[:10], b"aad"), (bytes(12), b"\x00" + sealed[1:], b"aad")):
        with pytest.raises(CryptoError) as ei:
            be.open(ref, *args)
        assert str(ei.value) == ""


def test_audit_event_never_writes_bytes():
    # Encoding a record cannot fail (issue 11, finding 5), so bytes are not refused but
    # replaced: the secret never reaches the trail and the call is still recorded.
    ev = AuditEvent(event_name="Encrypt", event_time=0.0, region="us-east-1", event_id="e",
                    request_id="r", read_only=True, account_id="111122223333",
                    principal_arn="arn:aws:iam::111122223333:root",
                    request_parameters={"plaintext": b"secret"})
    sink = MemorySink()
    sink.emit(ev)
    assert sink.records[0]["requestParameters"] == {"plaintext": "[bytes omitted: 6]"}
    assert "secret" not in repr(sink.records)
