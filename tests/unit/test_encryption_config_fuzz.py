"""PutBucketEncryption with BlockedEncryptionTypes: only S3Error, whatever the rule holds."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.s3.encryption import parse_encryption_config
from gateway.s3.errors import S3Error

pytestmark = pytest.mark.fuzz

FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

# Near-valid rules: each token is a piece a real document has, so most cases reach the
# BlockedEncryptionTypes branch instead of failing at the first tag.
_TOKENS = ["<BlockedEncryptionTypes>", "</BlockedEncryptionTypes>", "<BlockedEncryptionTypes/>",
           "<EncryptionType>", "</EncryptionType>", "<EncryptionType/>", "SSE-C", "NONE",
           "sse-c", " SSE-C ", "AES256", "aws:kms", "<x>", "</x>", "&amp;", "&#0;", "\u00e9",
           "<ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>"
           "</ApplyServerSideEncryptionByDefault>",
           "<BucketKeyEnabled>true</BucketKeyEnabled>", "<![CDATA[SSE-C]]>", "<", ">", " "]


def _document(raw: bytes) -> bytes:
    inner = "".join(_TOKENS[b % len(_TOKENS)] for b in raw)
    return (f'<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Rule>{inner}</Rule></ServerSideEncryptionConfiguration>").encode()


@FUZZ
@given(raw=st.binary(max_size=24))
def test_blocked_encryption_types_raise_only_s3_errors(raw):
    try:
        doc = parse_encryption_config(_document(raw))
    except S3Error:
        return
    blocked = doc.get("blocked")
    assert blocked is None or (blocked and set(blocked) <= {"SSE-C", "NONE"}
                               and not ("NONE" in blocked and len(blocked) > 1))
    assert doc["algorithm"] in ("AES256", "aws:kms")
