import time
from email.utils import formatdate
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.auth import authenticate
from gateway.auth.sigv2 import canonical_resource
from gateway.errors import GatewayError, to_s3
from tests.unit.test_auth_common import AKID, SECRET, headers, lookup

AWS_CREDS = Credentials(AKID, SECRET)
KEYS = ["plain.txt", "with space.txt", "plus+sign", "100%.csv", "üñí€", "a//b", "x/../y"]


def _sign(auth, method, url, hdrs=None):
    req = AWSRequest(method=method, url=url, headers=hdrs or {})
    auth.add_auth(req)
    prepared = req.prepare()
    parts = urlsplit(prepared.url)
    h = headers(dict(prepared.headers.items()))
    h.setdefault("Host", parts.netloc)
    return method, parts.path + ("?" + parts.query if parts.query else ""), h


@pytest.mark.parametrize("key", KEYS)
def test_botocore_header(key):
    url = "http://127.0.0.1:9000/bkt/" + quote(key, safe="/~") + "?acl&versionId=v%2B1&x=2"
    m, p, h = _sign(HmacV1Auth(AWS_CREDS), "PUT", url,
                    {"Content-Type": "text/plain", "x-amz-meta-b": "2", "X-Amz-Meta-A": " 1 "})
    ctx = authenticate(m, p, h, lookup, server_region="eu-central-1")
    assert (ctx.method, ctx.service, ctx.region) == ("sigv2-header", "s3", "eu-central-1")
    assert ctx.payload_hash == "UNSIGNED-PAYLOAD"


@pytest.mark.parametrize("key", KEYS)
def test_botocore_query(key):
    url = "http://127.0.0.1:9000/bkt/" + quote(key, safe="/~")
    m, p, h = _sign(HmacV1QueryAuth(AWS_CREDS, expires=60), "PUT", url,
                    {"x-amz-server-side-encryption": "aws:kms"})
    assert "x-amz-server-side-encryption=aws%3Akms" in p
    ctx = authenticate(m, p, headers({"Host": h["Host"]}), lookup)
    assert ctx.method == "sigv2-query"


def test_boto3_generate_presigned_url():
    s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:9000", region_name="us-east-1",
                      aws_access_key_id=AKID, aws_secret_access_key=SECRET)
    for op, params in [("get_object", {"Bucket": "bkt", "Key": "a b+c/ü.txt",
                                       "ResponseContentType": "text/plain"}),
                       ("put_object", {"Bucket": "bkt", "Key": "k",
                                       "ServerSideEncryption": "aws:kms"}),
                       ("upload_part", {"Bucket": "bkt", "Key": "k", "UploadId": "u/1",
                                        "PartNumber": 2})]:
        url = s3.generate_presigned_url(op, Params=params, ExpiresIn=300)
        parts = urlsplit(url)
        assert "AWSAccessKeyId=" in parts.query
        method = "GET" if op == "get_object" else "PUT"
        hdrs = headers({"Host": parts.netloc})
        ctx = authenticate(method, parts.path + "?" + parts.query, hdrs, lookup)
        assert ctx.method == "sigv2-query"
        # Signed with no Content-Type: a request that sends one does not match (finding 15).
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        assert _err(method, parts.path + "?" + parts.query, hdrs,
                    lookup).code == "SignatureDoesNotMatch"


def test_presigned_content_type_and_md5_are_the_headers_sent():
    url = "http://127.0.0.1:9000/bkt/k"
    m, p, h = _sign(HmacV1QueryAuth(AWS_CREDS, expires=60), "PUT", url,
                    {"Content-Type": "text/plain", "Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww=="})
    assert "content-type=text%2Fplain" in p
    host = {"Host": h["Host"]}
    authenticate(m, p, headers({**host, "Content-Type": "text/plain",
                                "Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww=="}), lookup)
    # The query copy botocore writes does not stand in for a header the client leaves out.
    assert _err(m, p, headers({**host, "Content-Type": "text/plain"}),
                lookup).code == "SignatureDoesNotMatch"
    assert _err(m, p, headers({**host, "Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww=="}),
                lookup).code == "SignatureDoesNotMatch"


def test_presigned_expires_at_most_a_year_ahead():
    now = time.time()
    for expires, ok in ((364 * 86400, True), (366 * 86400, False)):
        m, p, h = _sign(HmacV1QueryAuth(AWS_CREDS, expires=expires), "GET", "http://h/bkt/k")
        if ok:
            authenticate(m, p, headers({"Host": "h"}), lookup, clock=lambda: now)
        else:
            err = _err(m, p, headers({"Host": "h"}), lookup, clock=lambda: now)
            assert err.code == "AccessDenied" and err.status == 403
    m, p, h = _sign(HmacV1QueryAuth(AWS_CREDS, expires=60), "GET", "http://h/bkt/k")
    huge = p.split("Expires=")[0] + "Expires=" + "9" * 5000
    assert _err(m, huge, headers({"Host": "h"}), lookup).code == "AccessDenied"


def test_added_amz_header_breaks_a_presigned_signature():
    m, p, h = _sign(HmacV1QueryAuth(AWS_CREDS, expires=60), "PUT", "http://h/bkt/k")
    hdrs = headers({"Host": "h", "x-amz-copy-source": "/bkt/secret"})
    assert _err(m, p, hdrs, lookup).code == "SignatureDoesNotMatch"


def test_header_bytes_that_are_not_utf8_are_signed_as_sent():
    raw = "caf\udce9"            # the byte 0xE9 as aiohttp hands it over (surrogateescape)
    m, p, h = _sign(HmacV1Auth(AWS_CREDS), "PUT", "http://h/bkt/k", {"x-amz-meta-a": "x"})
    h2 = headers({**dict(h), "x-amz-meta-a": raw})
    assert _err(m, p, h2, lookup).code == "SignatureDoesNotMatch"


def test_vhost_bucket():
    req = AWSRequest(method="GET", url="http://bkt.s3.test/k.txt")
    req.auth_path = "/bkt/k.txt"
    HmacV1Auth(AWS_CREDS).add_auth(req)
    pr = req.prepare()
    h = headers(dict(pr.headers.items()))
    authenticate("GET", "/k.txt", h, lookup, vhost_bucket="bkt")
    with pytest.raises(GatewayError):
        authenticate("GET", "/k.txt", h, lookup)


def test_canonical_resource():
    assert canonical_resource("/b/k", "uploadId=a%2Fb&partNumber=1&foo=x&acl", None) == \
        "/b/k?acl&partNumber=1&uploadId=a/b"
    assert canonical_resource("/k", "", "b") == "/b/k"


def test_x_amz_date_empties_date_line():
    import base64, hashlib, hmac
    date = formatdate(usegmt=True)
    sts = "GET\n\n\n\nx-amz-date:" + date + "\n/bkt/k"
    sig = base64.b64encode(hmac.new(SECRET.encode(), sts.encode(), hashlib.sha1).digest()).decode()
    h = headers({"Host": "h", "x-amz-date": date, "Authorization": f"AWS {AKID}:{sig}"})
    authenticate("GET", "/bkt/k", h, lookup)


def _err(*a, **kw):
    with pytest.raises(GatewayError) as e:
        authenticate(*a, **kw)
    return to_s3(e.value)


def test_negatives():
    m, p, h = _sign(HmacV1Auth(AWS_CREDS), "GET", "http://h/bkt/k")
    h2 = headers(dict(h))
    h2["Authorization"] = h["Authorization"][:-4] + "AAA="
    err = _err(m, p, h2, lookup)
    assert err.code == "SignatureDoesNotMatch" and err.fields["StringToSign"].startswith("GET\n")
    h2["Authorization"] = h["Authorization"].replace(AKID, "NOPE")
    assert _err(m, p, h2, lookup).code == "InvalidAccessKeyId"
    assert _err(m, p, h, lookup, clock=lambda: time.time() + 1000).code == "RequestTimeTooSkewed"
    h2 = headers(dict(h))
    del h2["Date"]
    assert _err(m, p, h2, lookup).code == "AccessDenied"
    h2["Authorization"] = "AWS nocolon"
    assert _err(m, p, h2, lookup).code == "InvalidArgument"
    assert _err(m, p + "?tagging", h, lookup).code == "SignatureDoesNotMatch"


def test_query_expired():
    m, p, h = _sign(HmacV1QueryAuth(AWS_CREDS, expires=60), "GET", "http://h/bkt/k")
    err = _err(m, p, headers({"Host": "h"}), lookup, clock=lambda: time.time() + 61)
    assert err.code == "AccessDenied" and err.message == "Request has expired"
    assert _err(m, p.replace("Expires=", "Expires=x"), headers({"Host": "h"}),
                lookup).code == "AccessDenied"
