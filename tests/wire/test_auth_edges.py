"""Authentication at the edge of every face (issue 11 findings 3, 6, 7, 15, 16, 17).

Requests are built with botocore's own signers (``SigV4Auth``, ``S3SigV4QueryAuth``,
``SigV4QueryAuth``, ``HmacV1QueryAuth``) and then changed the way an attacker would, or sent
over a raw socket in several delayed pieces. Each test names the AWS behaviour it pins.
"""
from __future__ import annotations

import hashlib
import json
import socket
import time
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import requests
from botocore.auth import HmacV1QueryAuth, S3SigV4Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.wire.conftest import make_client

pytestmark = pytest.mark.wire

KMS_TARGET = "TrentService."
JSON_CT = "application/x-amz-json-1.1"
FORM_CT = "application/x-www-form-urlencoded; charset=utf-8"


def _creds(server) -> Credentials:
    return Credentials(server.access_key, server.secret_key)


def _sign(server, service: str, method: str, url: str, headers: dict[str, str],
          body: bytes = b"") -> AWSRequest:
    req = AWSRequest(method=method, url=url, headers=headers, data=body)
    SigV4Auth(_creds(server), service, server.region).add_auth(req)
    return req


def _raw(server, method: str, target: str, headers: dict[str, str], body: bytes = b"",
         pieces: int = 1, delay: float = 0.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request over a plain socket; the body goes out in ``pieces`` writes with
    ``delay`` seconds between them (so the server sees several TCP segments)."""
    head = [f"{method} {target} HTTP/1.1"]
    names = {k.lower() for k in headers}
    if "host" not in names:
        head.append(f"Host: 127.0.0.1:{server.port}")
    for k, v in headers.items():
        head.append(f"{k}: {v}")
    if "content-length" not in names:
        head.append(f"Content-Length: {len(body)}")
    head.append("Connection: close")
    data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "surrogateescape")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(data)
        step = max(1, -(-len(body) // pieces)) if body else 1
        for i in range(0, len(body), step):
            if delay:
                time.sleep(delay)
            sock.sendall(body[i:i + step])
        resp = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            resp += chunk
    head_bytes, _, payload = resp.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding") == "chunked":
        out, rest = b"", payload
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        payload = out
    return status, hdrs, payload


def _send_signed(server, req: AWSRequest, body: bytes | None = None, **kw):
    """Send ``req`` as signed, or with another ``body`` under the same signature."""
    parts = urlsplit(req.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    if body is None:
        body = req.body if isinstance(req.body, bytes) else (req.body or "").encode()
    headers = {k: v for k, v in req.headers.items() if k.lower() != "content-length"}
    return _raw(server, req.method, target, headers, body, **kw)


def _xml_code(body: bytes) -> str:
    root = ElementTree.fromstring(body)
    node = root.find("Code")
    if node is None:
        node = root.find("{*}Error/{*}Code")
    return node.text


# --- finding 3: every x-amz-* header present must be signed -----------------------------------

@pytest.fixture
def secret_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"the secret")
    return bucket


def _v4_presigner(server):
    return make_client(server, signature_version="s3v4")


def test_presigned_put_with_unsigned_copy_source_is_refused(server, s3, secret_object):
    """S3 answers 403 AccessDenied "There were headers present in the request which were not
    signed" with a HeadersNotSigned element (S3 API Reference, "Authenticating Requests:
    Using Query Parameters": x-amz-* headers a client sends must be in X-Amz-SignedHeaders)."""
    b = secret_object
    url = _v4_presigner(server).generate_presigned_url(
        "put_object", Params={"Bucket": b, "Key": "copy"}, ExpiresIn=300)
    resp = requests.put(url, data=b"", headers={"x-amz-copy-source": f"/{b}/secret"})
    assert resp.status_code == 403, resp.text
    root = ElementTree.fromstring(resp.content)
    assert root.findtext("Code") == "AccessDenied"
    assert root.findtext("Message") == ("There were headers present in the request which were "
                                        "not signed")
    assert root.findtext("HeadersNotSigned") == "x-amz-copy-source"
    assert "Contents" not in s3.list_objects_v2(Bucket=b, Prefix="copy")
    # The same URL, as signed, still works.
    assert requests.put(url, data=b"ok").status_code == 200


@pytest.mark.parametrize("name,value", [
    ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
    ("x-amz-meta-injected", "yes"),
    ("x-amz-server-side-encryption-aws-kms-key-id", "alias/aws/s3"),
])
def test_presigned_put_refuses_other_unsigned_amz_headers(server, bucket, name, value):
    url = _v4_presigner(server).generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    resp = requests.put(url, data=b"x", headers={name: value})
    assert resp.status_code == 403, resp.text
    assert ElementTree.fromstring(resp.content).findtext("HeadersNotSigned") == name


def test_header_auth_refuses_an_unsigned_amz_header(server, bucket):
    url = f"{server.endpoint}/{bucket}/hdr"
    req = AWSRequest(method="PUT", url=url, data=b"x")
    S3SigV4Auth(_creds(server), "s3", server.region).add_auth(req)
    headers = dict(req.headers.items())
    headers["x-amz-meta-added"] = "after signing"
    status, _, body = _raw(server, "PUT", urlsplit(url).path, headers, b"x")
    assert status == 403, body
    root = ElementTree.fromstring(body)
    assert root.findtext("Code") == "AccessDenied"
    assert root.findtext("HeadersNotSigned") == "x-amz-meta-added"


def test_sigv2_presigned_put_binds_amz_headers(server, s3, secret_object):
    """SigV2 signs every x-amz-* header in CanonicalizedAmzHeaders (S3 Developer Guide,
    RESTAuthentication): one added to a presigned URL breaks the signature."""
    b = secret_object
    v2 = make_client(server, signature_version="s3")
    url = v2.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "copy2"},
                                    ExpiresIn=300)
    assert "AWSAccessKeyId=" in url
    resp = requests.put(url, data=b"", headers={"x-amz-copy-source": f"/{b}/secret"})
    assert resp.status_code == 403, resp.text
    assert "Contents" not in s3.list_objects_v2(Bucket=b, Prefix="copy2")


# --- finding 15: SigV2 presigned Content-Type and Expires ---------------------------------------

def test_sigv2_presigned_put_binds_an_empty_content_type(server, bucket):
    """StringToSign carries Content-Type as sent; signed empty, a request that sends one does
    not match (S3 Developer Guide, RESTAuthentication, "Query String Request Authentication")."""
    v2 = make_client(server, signature_version="s3")
    url = v2.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "ct"},
                                    ExpiresIn=300)
    resp = requests.put(url, data=b"<html>", headers={"Content-Type": "text/html"})
    assert resp.status_code == 403, resp.text
    assert _xml_code(resp.content) == "SignatureDoesNotMatch"
    assert requests.put(url, data=b"plain").status_code == 200


def test_sigv2_presigned_expires_has_an_upper_bound(server, bucket):
    """SigV2 presigned URLs live at most a year (AWS SDK team, aws/aws-sdk-net#528: "Signature
    Version 4 has a max expiration of 7 days and Signature Version 2 has a max expiration of a
    year")."""
    req = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/x")
    HmacV1QueryAuth(_creds(server), expires=20 * 365 * 86400).add_auth(req)
    resp = requests.get(req.url)
    assert resp.status_code == 403, resp.text
    assert _xml_code(resp.content) == "AccessDenied"


# --- finding 6: the payload of non-S3 services is signed and checked ---------------------------

def test_presigned_iam_url_does_not_cover_a_form_body(server):
    """Non-S3 services sign the payload hash (AWS General Reference, "Create a canonical request
    for Signature Version 4": HashedPayload); botocore presigns an empty body, so a form body
    sent with the URL breaks the signature instead of choosing the action."""
    iam = make_client(server, "iam")
    url = iam.generate_presigned_url("get_user", Params={}, ExpiresIn=300)
    resp = requests.post(url, data="Action=ListAccessKeys&Version=2010-05-08",
                         headers={"Content-Type": FORM_CT})
    assert resp.status_code == 403, resp.text
    assert _xml_code(resp.content) == "SignatureDoesNotMatch"
    assert b"ListAccessKeysResult" not in resp.content


class _UnsignedPayloadQueryAuth(SigV4QueryAuth):
    """A presigner that leaves the payload out, as the S3 presigner does."""

    def payload(self, request):  # noqa: D401 - botocore hook
        return "UNSIGNED-PAYLOAD"


def test_iam_url_presigned_without_payload_cannot_carry_a_form_body(server):
    req = AWSRequest(method="POST", url=f"{server.endpoint}/?Action=GetUser&Version=2010-05-08")
    _UnsignedPayloadQueryAuth(_creds(server), "iam", server.region, expires=300).add_auth(req)
    resp = requests.post(req.url, data="Action=ListAccessKeys&Version=2010-05-08",
                         headers={"Content-Type": FORM_CT})
    assert resp.status_code == 403, resp.text
    assert _xml_code(resp.content) == "SignatureDoesNotMatch"


def test_botocore_presigned_sts_url_verifies(server):
    sts = make_client(server, "sts")
    url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=300)
    resp = requests.post(url)
    assert resp.status_code == 200, resp.text
    assert b"<Arn>" in resp.content


def test_kms_sent_content_sha256_must_match_the_body(server):
    body_signed = b"{}"
    req = _sign(server, "kms", "POST", f"{server.endpoint}/", {
        "X-Amz-Target": KMS_TARGET + "ListKeys", "Content-Type": JSON_CT,
        "x-amz-content-sha256": hashlib.sha256(body_signed).hexdigest()}, body_signed)
    status, _, body = _send_signed(server, req)
    assert status == 200, body
    status, _, body = _send_signed(server, req, b'{"Limit": 1}')
    assert status == 400, body
    assert json.loads(body)["__type"] == "InvalidSignatureException"


def test_iam_sent_content_sha256_must_match_the_body(server):
    signed = b"Action=GetUser&Version=2010-05-08"
    req = _sign(server, "iam", "POST", f"{server.endpoint}/", {
        "Content-Type": FORM_CT, "x-amz-content-sha256": hashlib.sha256(signed).hexdigest()},
        signed)
    status, _, body = _send_signed(server, req, b"Action=ListAccessKeys&Version=2010-05-08")
    assert status == 403, body
    assert _xml_code(body) == "SignatureDoesNotMatch"


# --- finding 7: bodies in several TCP segments ---------------------------------------------------

def test_kms_body_in_several_segments(server):
    body = b'{"Limit": 5' + b" " * 25_000 + b"}"
    req = _sign(server, "kms", "POST", f"{server.endpoint}/", {
        "X-Amz-Target": KMS_TARGET + "ListKeys", "Content-Type": JSON_CT}, body)
    status, _, out = _send_signed(server, req, pieces=5, delay=0.05)
    assert status == 200, out
    assert "Keys" in json.loads(out)


def test_iam_body_in_several_segments(server):
    body = b"Action=GetUser&Version=2010-05-08&Padding=" + b"x" * 25_000
    req = _sign(server, "iam", "POST", f"{server.endpoint}/", {"Content-Type": FORM_CT}, body)
    status, _, out = _send_signed(server, req, pieces=5, delay=0.05)
    assert status == 200, out
    assert b"GetUserResult" in out


def test_cloudtrail_body_in_several_segments(server):
    body = b'{"MaxResults": 1' + b" " * 20_000 + b"}"
    req = _sign(server, "cloudtrail", "POST", f"{server.endpoint}/", {
        "X-Amz-Target": "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        "Content-Type": JSON_CT}, body)
    status, _, out = _send_signed(server, req, pieces=4, delay=0.05)
    assert status == 200, out
    assert "Events" in json.loads(out)


def test_kms_body_over_the_cap_is_refused(server):
    body = b'{"Limit": 5' + b" " * (1024 * 1024 + 10) + b"}"
    req = _sign(server, "kms", "POST", f"{server.endpoint}/", {
        "X-Amz-Target": KMS_TARGET + "ListKeys", "Content-Type": JSON_CT}, body)
    status, _, out = _send_signed(server, req)
    assert status == 413, out
    assert json.loads(out)["__type"] == "ValidationException"


# --- finding 16: deeply nested JSON -------------------------------------------------------------

@pytest.mark.parametrize("service,target", [
    ("kms", KMS_TARGET + "Encrypt"),
    ("cloudtrail", "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"),
])
def test_deeply_nested_json_is_a_serialization_error(server, service, target):
    body = b'{"a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    req = _sign(server, service, "POST", f"{server.endpoint}/", {
        "X-Amz-Target": target, "Content-Type": JSON_CT}, body)
    status, hdrs, out = _send_signed(server, req)
    assert status == 400, out
    assert hdrs["content-type"].startswith(JSON_CT)
    assert json.loads(out)["__type"] == "SerializationException"


# --- finding 17: bytes that are not UTF-8 in Authorization ---------------------------------------

def test_non_utf8_authorization_is_a_400_on_s3(server, bucket):
    auth = (f"AWS4-HMAC-SHA256 Credential=AKIA\udcff/{time.strftime('%Y%m%d', time.gmtime())}"
            "/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + "0" * 64)
    status, _, body = _raw(server, "GET", f"/{bucket}", {
        "Authorization": auth, "x-amz-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        "x-amz-content-sha256": hashlib.sha256(b"").hexdigest()})
    assert status == 400, body
    ElementTree.fromstring(body)


def test_non_utf8_signature_is_a_400_on_kms(server):
    auth = (f"AWS4-HMAC-SHA256 Credential={server.access_key}/"
            f"{time.strftime('%Y%m%d', time.gmtime())}/us-east-1/kms/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=\udce9" + "0" * 63)
    status, hdrs, body = _raw(server, "POST", "/", {
        "Authorization": auth, "x-amz-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        "X-Amz-Target": KMS_TARGET + "ListKeys", "Content-Type": JSON_CT}, b"{}")
    assert 400 <= status < 500, body
    assert "__type" in json.loads(body)


def test_error_render_survives_undecodable_bytes(server):
    """Any byte a client sends may come back in an error field (here ArgumentValue): the
    document stays well-formed UTF-8 XML. (aiohttp itself refuses control characters in
    header values with a 400 before any handler runs.)"""
    status, _, body = _raw(server, "GET", "/", {"Authorization": "Foo \udcfe\udcff bar"})
    assert status == 400, body
    root = ElementTree.fromstring(body)
    assert root.findtext("Code") == "InvalidArgument"
    assert root.findtext("ArgumentValue") == "Foo \ufffd\ufffd bar"


def test_large_key_policy_over_tls(tls_server):
    """The report: a 25 KB key policy over TLS failed 3 times in 5 (the face read only the first
    buffered piece of the body)."""
    kms = make_client(tls_server, "kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    account = make_client(tls_server, "sts").get_caller_identity()["Account"]
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "kms:*", "Resource": "*"}]}, indent=1)
    policy = policy[:-1] + " " * (25_000 - len(policy)) + "}"
    for _ in range(5):
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    assert json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
