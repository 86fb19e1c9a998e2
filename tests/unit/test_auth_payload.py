import base64
import hashlib

import pytest

from gateway.auth.payload import PayloadReader, read_body, strip_aws_chunked
from gateway.auth.types import AuthContext
from gateway.errors import GatewayError, to_s3
from tests.unit.test_auth_common import CRED, VECTORS, FakeStream, headers
from tests.unit.test_chunked import AWS_BODY, SIGNING, SMALL, SMALL_DATA, _signed_trailer_body

DATA = SMALL_DATA
SHA = hashlib.sha256(DATA).hexdigest()
MD5_B64 = base64.b64encode(hashlib.md5(DATA).digest()).decode()


def ctx(payload_hash="UNSIGNED-PAYLOAD", signing=None):
    return AuthContext(credential=CRED, method="sigv4-header", service="s3", region="us-east-1",
                       payload_hash=payload_hash, signing=signing)


async def _read(pieces, hdrs, auth, **kw):
    reader = PayloadReader(FakeStream(pieces), headers(hdrs), auth, **kw)
    out = [p async for p in reader]
    return b"".join(out), reader


def _split(b, n=7):
    return [b[i:i + n] for i in range(0, len(b), n)]


async def _code(pieces, hdrs, auth, **kw):
    with pytest.raises(GatewayError) as e:
        await _read(pieces, hdrs, auth, **kw)
    return to_s3(e.value)


async def test_raw_hex_with_crc32_header():
    data, r = await _read(_split(DATA), {"Content-Length": "36", "x-amz-checksum-crc32": "ojUr7w==",
                                         "x-amz-sdk-checksum-algorithm": "CRC32"}, ctx(SHA))
    assert data == DATA and r.size == 36
    assert r.md5_hex == hashlib.md5(DATA).hexdigest()
    assert r.checksums == {"CRC32": "ojUr7w=="}


async def test_boto3_unsigned_trailer():
    hdrs = {"Content-Encoding": "aws-chunked", "X-Amz-Trailer": "x-amz-checksum-crc32",
            "X-Amz-Decoded-Content-Length": "36", "x-amz-sdk-checksum-algorithm": "CRC32",
            "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}
    for cut in range(len(SMALL) + 1):
        data, r = await _read([p for p in (SMALL[:cut], SMALL[cut:]) if p], hdrs,
                              ctx("STREAMING-UNSIGNED-PAYLOAD-TRAILER"))
        assert data == DATA and r.checksums == {"CRC32": "ojUr7w=="}
        assert r.trailers == {"x-amz-checksum-crc32": "ojUr7w=="}
    bad = SMALL.replace(b"ojUr7w==", b"AAAAAA==")
    err = await _code([bad], hdrs, ctx("STREAMING-UNSIGNED-PAYLOAD-TRAILER"))
    assert err.code == "BadDigest" and "CRC32 you specified" in err.message
    # Anonymous requests framed the same way are decoded too.
    anon = AuthContext(credential=None, method="anonymous", service="s3", region="us-east-1")
    assert (await _read([SMALL], hdrs, anon))[0] == DATA
    bad = SMALL.replace(b"ojUr7w==", b"ojUr7w")
    err = await _code([bad], hdrs, ctx("STREAMING-UNSIGNED-PAYLOAD-TRAILER"))
    assert err.code == "InvalidRequest"
    err = await _code([SMALL], dict(hdrs, **{"X-Amz-Decoded-Content-Length": "37"}),
                      ctx("STREAMING-UNSIGNED-PAYLOAD-TRAILER"))
    assert err.code == "IncompleteBody"


async def test_signed_streaming_vector():
    hdrs = dict(VECTORS["streaming_put"]["headers"])
    data, r = await _read(_split(AWS_BODY, 5000), hdrs,
                          ctx("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", SIGNING))
    assert data == b"a" * 66560 and r.size == 66560


async def test_signed_trailer_payload():
    hdrs = {"x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": "36",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"}
    data, r = await _read([_signed_trailer_body()], hdrs,
                          ctx("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", SIGNING))
    assert data == DATA and r.checksums == {"CRC32": "ojUr7w=="}
    err = await _code([_signed_trailer_body()], hdrs,
                      ctx("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", None))
    assert err.code == "InvalidRequest"


async def test_content_md5_and_sdk_algorithm_only():
    data, r = await _read([DATA], {"Content-MD5": MD5_B64, "x-amz-sdk-checksum-algorithm":
                                   "crc64nvme"}, ctx())
    assert set(r.checksums) == {"CRC64NVME"}
    err = await _code([DATA], {"Content-MD5": base64.b64encode(b"x" * 16).decode()}, ctx())
    assert err.code == "BadDigest"
    for bad in ("nope", base64.b64encode(b"x" * 15).decode()):
        assert (await _code([DATA], {"Content-MD5": bad}, ctx())).code == "InvalidDigest"


async def test_last_piece_held_until_verified():
    reader = PayloadReader(FakeStream([DATA[:10], DATA[10:]]), headers({}), ctx("0" * 64))
    got = []
    with pytest.raises(GatewayError) as e:
        async for piece in reader:
            got.append(piece)
    assert to_s3(e.value).code == "XAmzContentSHA256Mismatch"
    assert b"".join(got) == DATA[:10]


@pytest.mark.parametrize("hdrs,code", [
    ({"x-amz-checksum-crc32": "ojUr7w"}, "InvalidRequest"),
    ({"x-amz-checksum-crc32": "ojUr7w==", "x-amz-checksum-sha1": "A" * 27 + "="},
     "InvalidRequest"),
    ({"x-amz-checksum-crc32": "ojUr7w==", "x-amz-sdk-checksum-algorithm": "SHA256"},
     "InvalidRequest"),
    ({"x-amz-sdk-checksum-algorithm": "MD5"}, "InvalidRequest"),
    ({"x-amz-checksum-crc32c": "ojUr7w=="}, "BadDigest"),
    ({"x-amz-trailer": "x-amz-checksum-crc32"}, "InvalidRequest"),
    ({"Content-Length": "37"}, "IncompleteBody"),
    ({"Content-Length": "100"}, "EntityTooLarge"),
])
async def test_rejections(hdrs, code):
    assert (await _code([DATA], hdrs, ctx(), max_size=50)).code == code


async def test_sha256_mismatch_and_size_limit():
    err = await _code([DATA], {}, ctx(hashlib.sha256(b"x").hexdigest()))
    assert err.code == "XAmzContentSHA256Mismatch"
    assert (await _code(_split(DATA), {}, ctx(), max_size=20)).code == "EntityTooLarge"


async def test_read_body():
    assert await read_body(FakeStream([DATA]), headers({}), ctx(SHA), 100) == DATA
    with pytest.raises(GatewayError) as e:
        await read_body(FakeStream([DATA]), headers({}), ctx(SHA), 10)
    assert to_s3(e.value).code == "MaxMessageLengthExceeded"


def test_strip_aws_chunked():
    assert strip_aws_chunked("aws-chunked") is None
    assert strip_aws_chunked(None) is None
    assert strip_aws_chunked("gzip, aws-chunked") == "gzip"
    assert strip_aws_chunked("aws-chunked,gzip,br") == "gzip, br"


async def test_md5_skipped_only_when_nothing_needs_it():
    _, r = await _read([DATA], {}, ctx(), want_md5=False)
    assert r.md5_hex == ""
    _, r = await _read([DATA], {"Content-MD5": MD5_B64}, ctx(), want_md5=False)
    assert r.md5_hex == hashlib.md5(DATA).hexdigest()
    err = await _code([DATA], {"Content-MD5": base64.b64encode(b"x" * 16).decode()}, ctx(),
                      want_md5=False)
    assert err.code == "BadDigest"
