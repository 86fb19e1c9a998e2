"""Property-based fuzzing of every parser an unauthenticated client reaches (issue 11): SigV4 and
SigV2 headers and query strings, aws-chunked framing, payload headers, KMS JSON bodies, IAM
Query forms. Each parser is called directly; the only exception it may raise is its layer's
typed error (``gateway.errors.GatewayError``), never a 500 in the making.

Seeded (``derandomize``), bounded (10,000 cases each), marked ``fuzz``.
"""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.auth import authenticate, peek_service
from gateway.auth.chunked import AwsChunkedDecoder
from gateway.auth.payload import PayloadReader
from gateway.auth.types import AuthContext, StreamSigning
from gateway.errors import GatewayError
from gateway.iam_api.handler import parse_form
from gateway.json_protocol import parse_json_body
from tests.unit.test_auth_common import AKID, CRED, FakeStream, headers, lookup

pytestmark = pytest.mark.fuzz

FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
NOW = time.time()
DAY = time.strftime("%Y%m%d", time.gmtime(NOW))
AMZ_DATE = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(NOW))

# Header values as aiohttp hands them over: bytes decoded with surrogateescape (any text the
# wire can carry), and tokens that steer the parsers past their first checks. Few draws per
# case (sampled tokens, short binaries) keep 10,000 cases per parser within seconds.
_raw_text = st.binary(max_size=16).map(lambda b: b.decode("utf-8", "surrogateescape"))
_COMMON = ["", "=", ",", ";", "/", " ", "%", "%2F", "%ZZ", "+", "&", "0" * 64, "9" * 40, "-1",
           "\udcff", "\x00", "\u00e9", AKID, DAY, AMZ_DATE, "aws4_request", "s3", "kms"]
_V4_HEADER = _COMMON + [
    f"Credential={AKID}/{DAY}/us-east-1/s3/aws4_request", f"Credential={AKID}/{DAY}/r/kms/x",
    "Credential=", "SignedHeaders=host;x-amz-content-sha256;x-amz-date", "SignedHeaders=",
    "SignedHeaders=host;;", "Signature=" + "0" * 64, "Signature=", ", "]
_V4_QUERY = _COMMON + [
    "X-Amz-Algorithm=AWS4-HMAC-SHA256", f"X-Amz-Credential={AKID}%2F{DAY}%2Fus-east-1%2Fs3%2F"
    "aws4_request", f"X-Amz-Credential={AKID}%2F{DAY}%2Fus-east-1%2Fsts%2Faws4_request",
    f"X-Amz-Date={AMZ_DATE}", "X-Amz-Date=", "X-Amz-Expires=60", "X-Amz-Expires=",
    "X-Amz-Expires=604801", "X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=",
    "X-Amz-Signature=" + "0" * 64, "X-Amz-Signature=", "uploads", "versionId="]
_V2 = _COMMON + [f"AWSAccessKeyId={AKID}", "AWSAccessKeyId=", "Signature=abc%2B=",
                 f"Expires={int(NOW) + 60}", "Expires=", "Expires=99999999999", "acl",
                 "x-amz-meta-a=1", "content-type=a", ":"]


def _tokens(pool: list[str], size: int = 8) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(pool), _raw_text), max_size=size).map("".join)


_HEADER_NAMES = ["x-amz-date", "x-amz-content-sha256", "x-amz-meta-a", "x-amz-copy-source",
                 "Date", "Content-Type", "Content-MD5", "Host"]
_more = st.dictionaries(st.sampled_from(_HEADER_NAMES), st.one_of(
    st.sampled_from(["", AMZ_DATE, "0" * 64, "UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-"
                     "PAYLOAD", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
                     time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(NOW))]),
    _raw_text), max_size=3)


def _drive(coro) -> None:
    """Run a coroutine that never waits (FakeStream answers at once) without an event loop:
    a fresh loop per case would cost more than the parser."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise AssertionError("the payload reader waited on a stream that never blocks")


def _only_typed(call) -> None:
    try:
        call()
    except GatewayError:
        pass


@FUZZ
@given(auth=_tokens(_V4_HEADER, 10), more=_more, path=_tokens(_COMMON, 3),
       method=st.sampled_from(["GET", "PUT", "POST"]))
def test_sigv4_header(auth, more, path, method):
    h = headers({"x-amz-date": AMZ_DATE, "Host": "h", **more,
                 "Authorization": "AWS4-HMAC-SHA256 " + auth})
    peek_service("/" + path, h)
    _only_typed(lambda: authenticate(method, "/" + path, h, lookup, clock=lambda: NOW,
                                     body_sha256="0" * 64))


@FUZZ
@given(query=_tokens(_V4_QUERY, 12), more=_more,
       body_sha=st.sampled_from([None, "0" * 64]))
def test_sigv4_query(query, more, body_sha):
    h = headers({"Host": "h", **more})
    peek_service("/b/k?" + query, h)
    _only_typed(lambda: authenticate("GET", "/b/k?" + query, h, lookup, clock=lambda: NOW,
                                     body_sha256=body_sha))


@FUZZ
@given(value=_tokens(_V2, 4), more=_more, query=_tokens(_V2, 4),
       vhost=st.sampled_from([None, "", "bkt"]))
def test_sigv2_header(value, more, query, vhost):
    h = headers({"Date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(NOW)),
                 "Host": "h", **more, "Authorization": f"AWS {AKID}:{value}"})
    _only_typed(lambda: authenticate("PUT", "/b/k?" + query, h, lookup, clock=lambda: NOW,
                                     vhost_bucket=vhost))
    h["Authorization"] = "AWS " + value
    _only_typed(lambda: authenticate("PUT", "/b/k", h, lookup, clock=lambda: NOW))


@FUZZ
@given(query=_tokens(_V2, 10), more=_more)
def test_sigv2_query(query, more):
    h = headers({"Host": "h", **more})
    q = f"AWSAccessKeyId={AKID}&Signature=x&" + query
    _only_typed(lambda: authenticate("GET", "/b/k?" + q, h, lookup, clock=lambda: NOW))
    _only_typed(lambda: authenticate("GET", "/b/k?" + query, h, lookup, clock=lambda: NOW))


_SIGNING = StreamSigning(signing_key=b"k" * 32, amz_date=AMZ_DATE,
                         scope=f"{DAY}/us-east-1/s3/aws4_request", seed_signature="0" * 64)
_chunk_piece = st.one_of(st.binary(max_size=40), st.sampled_from([
    b"\r\n", b"\n", b"0\r\n", b"5\r\n", b"5;chunk-signature=" + b"0" * 64 + b"\r\n", b"hello",
    b"0;chunk-signature=" + b"a" * 64 + b"\r\n", b"x-amz-checksum-crc32:AAAAAA==\r\n",
    b"x-amz-trailer-signature:" + b"0" * 64 + b"\r\n", b"ffffffffffffffff\r\n", b"\xff"]))


@FUZZ
@given(pieces=st.lists(_chunk_piece, max_size=10), signed=st.booleans(),
       trailer=st.booleans())
def test_aws_chunked_decoder(pieces, signed, trailer):
    decoder = AwsChunkedDecoder(_SIGNING if signed else None,
                                {"x-amz-checksum-crc32"} if trailer else set(),
                                expect_trailer_signature=signed and trailer)

    def run():
        for p in pieces:
            decoder.feed(p)
        decoder.finish()
    _only_typed(run)


_PAYLOAD_VALUES = _COMMON + ["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                              "x-amz-checksum-crc32", "crc32", "SHA256", "AAAAAA==", "aws-chunked",
                              "XrY7u+Ae7tCTyyK7j1rNww==", "5", "100"]
_payload_header = st.sampled_from([
    "x-amz-content-sha256", "content-md5", "x-amz-checksum-crc32", "x-amz-checksum-sha256",
    "x-amz-trailer", "x-amz-sdk-checksum-algorithm", "x-amz-decoded-content-length",
    "content-length", "content-encoding"])


@FUZZ
@given(hdrs=st.dictionaries(_payload_header, _tokens(_PAYLOAD_VALUES, 3), max_size=4),
       pieces=st.lists(st.binary(max_size=30), max_size=4),
       mode=st.sampled_from(["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                             "0" * 64]))
def test_payload_headers(hdrs, pieces, mode):
    ctx = AuthContext(credential=CRED, method="sigv4-header", service="s3", region="us-east-1",
                      payload_hash=mode)

    async def run():
        reader = PayloadReader(FakeStream(pieces), headers(hdrs), ctx, max_size=1000)
        async for _ in reader:
            pass
    _only_typed(lambda: _drive(run()))


_json_piece = st.sampled_from([b"{", b"}", b"[", b"]", b'"a"', b":", b",", b"1e999", b"NaN",
                               b"-Infinity", b"null", b"\xff", b"\\u", b'"\\ud800"', b" ",
                               b"9" * 5000, b"[" * 3000, b"{\"a\":" * 100, b"]" * 100])


@FUZZ
@given(parts=st.lists(st.one_of(_json_piece, st.binary(max_size=20)), max_size=12))
def test_kms_json_body(parts):
    _only_typed(lambda: parse_json_body(b"".join(parts)))


def test_kms_json_body_depth():
    for depth in (1, 63, 64, 65, 1000, 100_000):
        doc = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
        try:
            assert isinstance(parse_json_body(doc), dict) and depth < 64
        except GatewayError:
            assert depth >= 64


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), st.lists(st.sampled_from(
    [b"Action=GetUser", b"&", b"=", b"%", b"%ff", b"%2", b"+", b"\xff", b";", b"a" * 10]),
    max_size=40).map(b"".join)))
def test_iam_query_form(body):
    _only_typed(lambda: parse_form(body))


def test_iam_query_form_field_cap():
    with pytest.raises(GatewayError):
        parse_form(b"&".join([b"a=1"] * 1001))
