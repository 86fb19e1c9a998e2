import hashlib
import hmac
import random

import pytest

from gateway.auth.chunked import MAX_CHUNK_SIZE, AwsChunkedDecoder
from gateway.auth.sigv4 import signing_key
from gateway.auth.types import StreamSigning
from gateway.errors import GatewayError, to_s3
from tests.unit.test_auth_common import SECRET, VECTORS

SMALL = bytes.fromhex(VECTORS["boto3_unsigned_trailer_body_hex"])
SMALL_DATA = b"hello world, this is a small object\n"
SV = VECTORS["streaming_put"]
SIGNING = StreamSigning(signing_key=signing_key(SECRET, "20130524", "us-east-1", "s3"),
                        amz_date="20130524T000000Z", scope="20130524/us-east-1/s3/aws4_request",
                        seed_signature=SV["seed_signature"])


def _aws_body() -> bytes:
    out = b""
    for c in SV["chunks"]:
        out += f"{c['size']:x};chunk-signature={c['signature']}\r\n".encode()
        out += b"a" * c["size"] + b"\r\n" if c["size"] else b""
    return out + b"\r\n"


AWS_BODY = _aws_body()


def _run(body: bytes, cuts, **kw) -> tuple[bytes, dict]:
    dec = AwsChunkedDecoder(**kw)
    out = []
    prev = 0
    for cut in list(cuts) + [len(body)]:
        out += dec.feed(body[prev:cut])
        prev = cut
    return b"".join(out), dec.finish()


def _small(cuts):
    return _run(SMALL, cuts, signing=None, trailer_names={"x-amz-checksum-crc32"},
                expect_trailer_signature=False)


def test_boto3_capture_every_split():
    for i in range(len(SMALL) + 1):
        assert _small([i]) == (SMALL_DATA, {"x-amz-checksum-crc32": "ojUr7w=="})


def test_boto3_capture_every_pair_of_splits_and_bytewise():
    for i in range(len(SMALL) + 1):
        for j in range(i, len(SMALL) + 1):
            assert _small([i, j])[0] == SMALL_DATA
    assert _small(range(1, len(SMALL)))[1] == {"x-amz-checksum-crc32": "ojUr7w=="}


def test_aws_signed_vector():
    assert len(AWS_BODY) == 66824
    data, trailers = _run(AWS_BODY, [], signing=SIGNING, trailer_names=set(),
                          expect_trailer_signature=False)
    assert data == b"a" * 66560 and trailers == {}


def test_aws_signed_vector_splits():
    # Every single split around the framing; data interiors only sampled (keeps tests fast).
    boundaries = [0, 65536 + 87, 65536 + 87 + 1024 + 86, len(AWS_BODY) - 90]
    points = {p for b in boundaries for p in range(max(0, b - 5), min(len(AWS_BODY), b + 100))}
    points |= {len(AWS_BODY) - i for i in range(0, 4)}
    for p in sorted(points):
        assert len(_run(AWS_BODY, [p], signing=SIGNING, trailer_names=set(),
                        expect_trailer_signature=False)[0]) == 66560
    rnd = random.Random(7)
    for _ in range(40):
        cuts = sorted(rnd.sample(range(1, len(AWS_BODY)), rnd.randint(2, 60)))
        assert len(_run(AWS_BODY, cuts, signing=SIGNING, trailer_names=set(),
                        expect_trailer_signature=False)[0]) == 66560


@pytest.mark.parametrize("mutate", [
    lambda b: b.replace(b"ad80c730", b"ad80c731"),            # chunk signature
    lambda b: b[:200] + b"b" + b[201:],                         # data
    lambda b: b.replace(b"b6c6ea8a", b"00000000"),             # final chunk signature
])
def test_aws_signed_vector_tampered(mutate):
    with pytest.raises(GatewayError) as e:
        _run(mutate(AWS_BODY), [1000], signing=SIGNING, trailer_names=set(),
             expect_trailer_signature=False)
    assert to_s3(e.value).code == "SignatureDoesNotMatch"


def _signed_trailer_body(trailer_value="ojUr7w==") -> bytes:
    # Built from the sigv4-streaming-trailers formulas (no published vector exists).
    def sig(sts):
        return hmac.new(SIGNING.signing_key, sts.encode(), hashlib.sha256).hexdigest()
    empty = hashlib.sha256(b"").hexdigest()
    prev = SIGNING.seed_signature
    out = b""
    for chunk in (SMALL_DATA, b""):
        s = sig("\n".join(["AWS4-HMAC-SHA256-PAYLOAD", SIGNING.amz_date, SIGNING.scope, prev,
                           empty, hashlib.sha256(chunk).hexdigest()]))
        out += f"{len(chunk):x};chunk-signature={s}\r\n".encode() + chunk
        out += b"\r\n" if chunk else b""
        prev = s
    tsig = sig("\n".join(["AWS4-HMAC-SHA256-TRAILER", SIGNING.amz_date, SIGNING.scope, prev,
                          hashlib.sha256(b"x-amz-checksum-crc32:ojUr7w==\n").hexdigest()]))
    out += f"x-amz-checksum-crc32:{trailer_value}\r\nx-amz-trailer-signature:{tsig}\r\n\r\n".encode()
    return out


def test_signed_trailer():
    body = _signed_trailer_body()
    for i in range(len(body) + 1):
        data, trailers = _run(body, [i], signing=SIGNING, trailer_names={"x-amz-checksum-crc32"},
                              expect_trailer_signature=True)
        assert data == SMALL_DATA and trailers == {"x-amz-checksum-crc32": "ojUr7w=="}
    with pytest.raises(GatewayError) as e:
        _run(_signed_trailer_body("AAAAAA=="), [], signing=SIGNING,
             trailer_names={"x-amz-checksum-crc32"}, expect_trailer_signature=True)
    assert to_s3(e.value).code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("body", [
    SMALL.replace(b"\r\n\r\n", b"\n\r\n"),            # bare LF after the trailer line
    SMALL.replace(b"\r\n\r\n", b"\r\n\n"),            # bare LF final line
    SMALL[:-2],                                        # no final blank line
    SMALL + b"\r\n",                                   # stray CRLF after the end
])
def test_trailer_variants_accepted(body):
    data, trailers = _run(body, [len(body) // 2], signing=None,
                          trailer_names={"x-amz-checksum-crc32"}, expect_trailer_signature=False)
    assert data == SMALL_DATA and trailers["x-amz-checksum-crc32"] == "ojUr7w=="


def test_no_trailer_body():
    body = b"5\r\nhello\r\n0\r\n\r\n"
    for i in range(len(body) + 1):
        assert _run(body, [i], signing=None, trailer_names=set(),
                    expect_trailer_signature=False) == (b"hello", {})


@pytest.mark.parametrize("body,code", [
    (b"zz\r\nhello\r\n0\r\n\r\n", "IncompleteBody"),
    (b"5\nhello\r\n0\r\n\r\n", "IncompleteBody"),
    (b"5\r\nhelloXX0\r\n\r\n", "IncompleteBody"),
    (b"5\r\nhello\r\n0\r\n\r\ngarbage", "IncompleteBody"),
    (f"{MAX_CHUNK_SIZE + 1:x}\r\n".encode(), "InvalidArgument"),
    (b"5\r\nhel", "IncompleteBody"),
    (b"5\r\nhello\r\n", "IncompleteBody"),
    (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32c:AAAAAA==\r\n\r\n", "MalformedTrailerError"),
    (b"5\r\nhello\r\n0\r\nnocolon\r\n\r\n", "MalformedTrailerError"),
    (b"5\r\nhello\r\n0\r\n\r\n", "MalformedTrailerError"),   # declared trailer missing
    (b"1" * 5000, "IncompleteBody"),
])
def test_malformed(body, code):
    with pytest.raises(GatewayError) as e:
        names = {"x-amz-checksum-crc32"} if code == "MalformedTrailerError" else set()
        _run(body, [len(body) // 3], signing=None, trailer_names=names,
             expect_trailer_signature=False)
    assert to_s3(e.value).code == code


def test_signed_requires_chunk_signature():
    with pytest.raises(GatewayError) as e:
        _run(b"5\r\nhello\r\n0\r\n\r\n", [], signing=SIGNING, trailer_names=set(),
             expect_trailer_signature=False)
    assert to_s3(e.value).code == "IncompleteBody"
