"""Seeded fuzzing of the S3 parsers an unauthenticated caller reaches (issue 11): the router /
operation parser and the XML bodies of DeleteObjects, CompleteMultipartUpload,
CreateBucketConfiguration and PutBucketEncryption. Whatever comes in, only ``S3Error`` may come
out (the one error renderer turns it into AWS's answer; anything else would be a 500)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.s3.bucket import parse_location_constraint
from gateway.s3.encryption import parse_encryption_config
from gateway.s3.errors import S3Error
from gateway.s3.multipart import parse_complete_request
from gateway.s3.object_put import parse_delete_request
from gateway.s3.operations import OPERATIONS
from gateway.s3.router import parse_request

pytestmark = pytest.mark.fuzz

FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

# -- the router -------------------------------------------------------------------------------
# Each case is one drawn byte string mapped onto tokens (one draw keeps 10,000 cases well under
# 30 s), mixing the shapes that matter (sub-resources, odd escapes, newlines, long keys) with
# single characters that make up free text.

_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "get"]
_CHARS = list("ab/%?&=+-. \n\r\x00\u00e9\u20ac")
_PATH_TOKENS = ["/", "b-ok", "Bucket", "xn--b", "%0A", "%00", "%FF", "%E2%82", "%E2%82%AC",
                "%2F", "..", "//", "a" * 1030, "%%", "k", "%0D%0A"] + _CHARS
_QUERY_TOKENS = ["acl", "uploads", "uploadId", "partNumber", "delete", "location", "versioning",
                 "encryption", "policy", "policyStatus", "list-type", "max-keys", "max-uploads",
                 "prefix", "tagging", "versions", "lifecycle", "select", "1", "2", "+200", "-1",
                 "2_00", "%2B5", "99999999999", "%ZZ", "%FF", "\u0662", "%20"] + _CHARS
_HEADER_NAMES = ["x-amz-copy-source", "x-amz-acl", "x-amz-server-side-encryption",
                 "x-amz-server-side-encryption-aws-kms-key-id"]
_HEADER_VALUES = ["b-ok/k", "/b-ok/k?versionId=null", "b/k?x=1", "%FF/k", "/", "b-ok/",
                  "b/" + "k" * 1100, "b-ok/%E2%82", "", "b-ok/k?versionId=3", "\n", "b-ok/a%0Ab",
                  "aws:kms", "AES256"]


def _tokens(raw: bytes, table: list[str]) -> str:
    return "".join(table[x % len(table)] for x in raw)


def _request(raw: bytes):
    head, rest = raw[:4].ljust(4, b"\0"), raw[4:]
    cut = head[3] % (len(rest) + 1)
    path = "/" + _tokens(rest[:cut], _PATH_TOKENS)
    query = _tokens(rest[cut:], _QUERY_TOKENS)
    headers = {_HEADER_NAMES[(head[2] >> i) % 4]: _HEADER_VALUES[(head[2] + i) % 14]
               for i in range(head[2] % 3)}
    vhost = (None, "b-ok", "")[head[1] % 3]
    return _METHODS[head[0] % 8], path + ("?" + query if query else ""), vhost, headers


@FUZZ
@given(raw=st.binary(max_size=48))
def test_router_raises_only_s3_errors(raw):
    method, raw_path, vhost, headers = _request(raw)
    try:
        op = parse_request(method, raw_path, vhost, headers)
    except S3Error:
        return
    assert op.name in OPERATIONS and op.action.startswith("s3:")


# -- XML bodies ---------------------------------------------------------------------------------

_TAGS = ["Delete", "Object", "Key", "Quiet", "VersionId", "CompleteMultipartUpload", "Part",
         "PartNumber", "ETag", "CreateBucketConfiguration", "LocationConstraint",
         "ServerSideEncryptionConfiguration", "Rule", "ApplyServerSideEncryptionByDefault",
         "SSEAlgorithm", "KMSMasterKeyID", "BucketKeyEnabled", "x"]
_XML_TOKENS = ([f"<{t}>" for t in _TAGS] + [f"</{t}>" for t in _TAGS] + [f"<{t}/>" for t in _TAGS]
               + ['<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">', "<a b='1'>",
                  "1", "0", "-3", "10001", "9" * 5000, "true", "aws:kms", "AES256", "us-east-1",
                  "eu-west-1", "\"etag\"", "&amp;", "&#0;", "&#x110000;", "&e;", "\u0661",
                  "]]>", "<![CDATA[x]]>", "<!-- c -->", "<", ">", "&", "\x00", " "] + _CHARS)
_PROLOGS = ["", '<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0" encoding="bogus"?>',
            '<!DOCTYPE x [<!ENTITY e "boom">]>', "\ufeff",
            '<?xml version="1.0" encoding="UTF-16"?>', '<?xml version="1.0" encoding="ascii"?>',
            '<?xml version="1.1"?>']
_ENCODINGS = ["utf-8", "utf-16", "latin-1", "utf-8"]


def _body(raw: bytes) -> bytes:
    if not raw:
        return b""
    if raw[0] % 10 == 0:                      # sometimes plain bytes
        return raw[1:]
    text = _PROLOGS[raw[0] % 8] + _tokens(raw[1:], _XML_TOKENS)
    return text.encode(_ENCODINGS[(raw[0] >> 3) % 4], "replace")


@pytest.mark.parametrize("parser", [parse_delete_request, parse_complete_request,
                                    parse_location_constraint, parse_encryption_config],
                         ids=["DeleteObjects", "CompleteMultipartUpload",
                              "CreateBucketConfiguration", "PutBucketEncryption"])
def test_xml_body_parsers_raise_only_s3_errors(parser):
    @FUZZ
    @given(raw=st.binary(max_size=40))
    def run(raw):
        try:
            parser(_body(raw))
        except S3Error:
            pass

    run()
