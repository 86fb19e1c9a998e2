"""Raw wire cases no stock client sends by default: signed aws-chunked bodies (with and without
trailers), unsigned trailers over plain HTTP, virtual-host addressing, hostile XML, bad input.

Requests are signed with botocore's own SigV4 signer (the seed signature) and the chunk
signatures are computed here from the AWS "sigv4-streaming" formulas, independently of Coffer.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import zlib
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

pytestmark = pytest.mark.wire

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class _FixedPayloadAuth(S3SigV4Auth):
    def __init__(self, creds, payload: str, region: str):
        super().__init__(creds, "s3", region)
        self._payload = payload

    def payload(self, request):  # noqa: D401 - botocore hook
        return self._payload


def _signed(server, method: str, url: str, headers: dict[str, str], payload: str):
    creds = Credentials(server.access_key, server.secret_key)
    req = AWSRequest(method=method, url=url, headers=headers)
    _FixedPayloadAuth(creds, payload, server.region).add_auth(req)
    return req


def _send(server, req: AWSRequest, body: bytes | None, host: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    parts = urlsplit(req.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.putrequest(req.method, path, skip_host=True, skip_accept_encoding=True)
    headers = dict(req.headers.items())
    headers.setdefault("Host", host or f"127.0.0.1:{server.port}")
    for k, v in headers.items():
        conn.putheader(k, v)
    if body is not None and "Content-Length" not in headers:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def _signing_key(secret: str, date: str, region: str) -> bytes:
    k = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def _seed(req: AWSRequest) -> tuple[str, str, str]:
    auth = req.headers["Authorization"]
    sig = auth.rsplit("Signature=", 1)[1]
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/", 1)[1]
    return sig, req.headers["X-Amz-Date"], scope


def _signed_chunks(server, req, data: bytes, chunk: int, trailer: bytes | None) -> bytes:
    seed, amz_date, scope = _seed(req)
    key = _signing_key(server.secret_key, amz_date[:8], server.region)
    prev, out = seed, bytearray()
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for piece in pieces:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256,
                         hashlib.sha256(piece).hexdigest()])
        prev = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        out += f"{len(piece):x};chunk-signature={prev}\r\n".encode() + piece
        out += b"\r\n" if piece or trailer is None else b""
    if trailer is not None:
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                         hashlib.sha256(trailer.replace(b"\r\n", b"\n")).hexdigest()])
        tsig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        out += trailer + f"x-amz-trailer-signature:{tsig}\r\n\r\n".encode()
    return bytes(out)


def _crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_signed_streaming_put(server, s3, bucket):
    data = bytes(range(256)) * 300          # 76800 bytes -> 2 data chunks of 64 KiB max
    url = f"{server.endpoint}/{bucket}/signed-stream"
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
    req = _signed(server, "PUT", url, headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    body = _signed_chunks(server, req, data, 65536, None)
    status, _, resp = _send(server, req, body)
    assert status == 200, resp
    got = s3.get_object(Bucket=bucket, Key="signed-stream")
    assert got["Body"].read() == data and "ContentEncoding" not in got

    # a tampered chunk fails its chunk signature and nothing is stored
    req = _signed(server, "PUT", f"{url}-bad", headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    body = bytearray(_signed_chunks(server, req, data, 65536, None))
    body[200] ^= 1
    status, _, resp = _send(server, req, bytes(body))
    assert status == 403 and b"SignatureDoesNotMatch" in resp
    assert s3.list_objects_v2(Bucket=bucket, Prefix="signed-stream-bad")["KeyCount"] == 0


def test_signed_streaming_with_trailer(server, s3, bucket):
    data = b"x" * 70000
    url = f"{server.endpoint}/{bucket}/signed-trailer"
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
               "x-amz-trailer": "x-amz-checksum-crc32"}
    req = _signed(server, "PUT", url, headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
    trailer = f"x-amz-checksum-crc32:{_crc32_b64(data)}\r\n".encode()
    status, hdrs, resp = _send(server, req, _signed_chunks(server, req, data, 65536, trailer))
    assert status == 200, resp
    assert s3.get_object(Bucket=bucket, Key="signed-trailer")["Body"].read() == data


@pytest.mark.parametrize("good", [True, False])
def test_unsigned_trailer_over_plain_http(server, s3, bucket, good):
    data = b"hello world, this is a small object\n"
    crc = _crc32_b64(data) if good else _crc32_b64(b"other")
    key = f"trailer-{good}"
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
               "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm": "CRC32"}
    req = _signed(server, "PUT", f"{server.endpoint}/{bucket}/{key}", headers,
                  "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    body = (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n"
            + f"x-amz-checksum-crc32:{crc}\r\n\r\n".encode())
    status, hdrs, resp = _send(server, req, body)
    if good:
        assert status == 200, resp
        assert hdrs.get("x-amz-checksum-crc32") == crc
        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert got["Body"].read() == data and got["ChecksumCRC32"] == crc
    else:
        assert status == 400 and b"BadDigest" in resp
        assert s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] == 0


def test_payload_hash_mismatch(server, bucket):
    req = _signed(server, "PUT", f"{server.endpoint}/{bucket}/h", {},
                  hashlib.sha256(b"something else").hexdigest())
    status, _, resp = _send(server, req, b"actual body")
    assert status == 400 and b"XAmzContentSHA256Mismatch" in resp


def test_virtual_host_addressing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="v/h.txt", Body=b"vhost")
    host = f"{bucket}.localhost:{server.port}"
    req = _signed(server, "GET", f"http://{host}/v/h.txt", {}, EMPTY_SHA256)
    status, _, body = _send(server, req, None, host=host)
    assert status == 200 and body == b"vhost"
    req = _signed(server, "GET", f"http://{host}/?list-type=2", {}, EMPTY_SHA256)
    status, _, body = _send(server, req, None, host=host)
    assert status == 200 and b"<Key>v/h.txt</Key>" in body


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Delete><Object><Key>&lol3;</Key></Object></Delete>"""


def test_xml_bomb_refused(server, bucket):
    md5 = base64.b64encode(hashlib.md5(BOMB).digest()).decode()
    req = _signed(server, "POST", f"{server.endpoint}/{bucket}?delete", {"Content-MD5": md5},
                  hashlib.sha256(BOMB).hexdigest())
    status, _, resp = _send(server, req, BOMB)
    assert status == 400 and b"MalformedXML" in resp


def test_oversized_xml_refused(server, bucket):
    body = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 200_000 + b"</Delete>"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    req = _signed(server, "POST", f"{server.endpoint}/{bucket}?delete", {"Content-MD5": md5},
                  hashlib.sha256(body).hexdigest())
    status, _, resp = _send(server, req, body)
    assert status == 400 and b"<Code>" in resp


def test_delete_objects_needs_integrity_header(server, bucket):
    body = b"<Delete><Object><Key>k</Key></Object></Delete>"
    req = _signed(server, "POST", f"{server.endpoint}/{bucket}?delete", {},
                  hashlib.sha256(body).hexdigest())
    status, _, resp = _send(server, req, body)
    assert status == 400 and b"Content-MD5" in resp


def test_unimplemented_subresource_is_xml_error(server, bucket):
    req = _signed(server, "GET", f"{server.endpoint}/{bucket}?website", {}, EMPTY_SHA256)
    status, _, resp = _send(server, req, None)
    assert status == 501 and b"<Code>NotImplemented</Code>" in resp


def test_no_traceback_on_garbage(server, bucket):
    req = _signed(server, "POST", f"{server.endpoint}/{bucket}/k?uploadId=zzz", {},
                  hashlib.sha256(b"<not-xml").hexdigest())
    status, _, resp = _send(server, req, b"<not-xml")
    assert status == 404 and b"NoSuchUpload" in resp and b"Traceback" not in resp
