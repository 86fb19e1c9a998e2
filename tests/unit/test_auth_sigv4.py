import time
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.auth import authenticate, peek_service
from gateway.auth.sigv4 import canonical_query, canonical_uri
from gateway.errors import GatewayError, to_s3
from gateway.s3.errors import S3Error
from tests.unit.test_auth_common import AKID, CRED, EPOCH, SECRET, VECTORS, headers, lookup

AWS_CREDS = Credentials(AKID, SECRET)


def _get_object_request(signature=None, **extra):
    v = VECTORS["get_object"]
    h = dict(v["headers"])
    h["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request,"
                          f"SignedHeaders={v['signed_headers']},"
                          f"Signature={signature or v['signature']}")
    h.update(extra)
    return v["method"], v["raw_path"], headers(h)


# --- AWS published examples ------------------------------------------------------------------

def test_aws_get_object_example():
    ctx = authenticate(*_get_object_request(), lookup, clock=lambda: EPOCH)
    assert ctx.credential == CRED
    assert (ctx.method, ctx.service, ctx.region) == ("sigv4-header", "s3", "us-east-1")
    assert ctx.payload_hash == VECTORS["get_object"]["headers"]["x-amz-content-sha256"]
    assert ctx.signing is None


def test_aws_get_object_example_spaces_after_commas():
    m, p, h = _get_object_request()
    h["Authorization"] = h["Authorization"].replace(",", ", ")
    authenticate(m, p, h, lookup, clock=lambda: EPOCH)


def test_aws_presigned_example():
    v = VECTORS["presigned_get"]
    ctx = authenticate(v["method"], v["raw_path"], headers(v["headers"]), lookup,
                       clock=lambda: EPOCH + 10)
    assert ctx.method == "sigv4-query"
    assert ctx.payload_hash == "UNSIGNED-PAYLOAD"


def test_aws_streaming_seed_signature():
    v = VECTORS["streaming_put"]
    h = dict(v["headers"])
    h["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request,"
                          f"SignedHeaders={v['signed_headers']},Signature={v['seed_signature']}")
    ctx = authenticate(v["method"], v["raw_path"], headers(h), lookup, clock=lambda: EPOCH)
    assert ctx.signing is not None
    assert ctx.signing.seed_signature == v["seed_signature"]
    assert ctx.signing.scope == "20130524/us-east-1/s3/aws4_request"
    assert ctx.payload_hash == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


# --- canonical pieces ------------------------------------------------------------------------

def test_canonical_uri_s3_keeps_dots_and_slashes():
    assert canonical_uri("/b/a//b/../c", "s3") == "/b/a//b/../c"
    assert canonical_uri("/b/a%20b+c%2Bd~e%7E", "s3") == "/b/a%20b%2Bc%2Bd~e~"
    assert canonical_uri("/b/%E2%82%AC", "s3") == "/b/%E2%82%AC"
    assert canonical_uri("/", "kms") == "/"


def test_canonical_query():
    assert canonical_query("b=2&a=1&a=0&uploads&c=x%2Fy") == "a=0&a=1&b=2&c=x%2Fy&uploads="
    assert canonical_query("prefix=a+b&X-Amz-Signature=f", drop_signature=True) == "prefix=a%20b"


# --- botocore as the signer ------------------------------------------------------------------

TRICKY_KEYS = ["plain.txt", "with space.txt", "plus+sign", "percent%25", "100%.csv", "üñí€",
               "a//double", "dots/../up", "./dot", "tilde~x", "semi;colon=eq&amp", "q?mark"]


def _botocore(auth_cls, method, url, hdrs=None, data=b"", service="s3", **kw):
    req = AWSRequest(method=method, url=url, headers=hdrs or {}, data=data)
    if auth_cls is S3SigV4QueryAuth:
        auth_cls(AWS_CREDS, service, "eu-west-1", expires=kw.get("expires", 3600)).add_auth(req)
    else:
        auth_cls(AWS_CREDS, service, "eu-west-1").add_auth(req)
    prepared = req.prepare()
    parts = urlsplit(prepared.url)
    raw = parts.path + ("?" + parts.query if parts.query else "")
    h = headers({k: v for k, v in prepared.headers.items()})
    h.setdefault("Host", parts.netloc)
    return method, raw, h


@pytest.mark.parametrize("key", TRICKY_KEYS)
def test_botocore_s3_header_signed(key):
    url = "http://127.0.0.1:9000/bkt/" + quote(key, safe="/~") + "?tagging&versionId=a%2Bb"
    ctx = authenticate(*_botocore(S3SigV4Auth, "PUT", url, {"x-amz-meta-a": "  x   y "},
                                  data=b"body"), lookup)
    assert ctx.region == "eu-west-1"
    assert len(ctx.payload_hash) == 64


@pytest.mark.parametrize("key", TRICKY_KEYS)
def test_botocore_s3_presigned(key):
    url = "http://127.0.0.1:9000/bkt/" + quote(key, safe="/~") + "?response-content-type=a%2Fb"
    ctx = authenticate(*_botocore(S3SigV4QueryAuth, "GET", url), lookup)
    assert ctx.method == "sigv4-query"


def test_botocore_kms_without_content_sha():
    import hashlib
    body = b'{"KeyId":"alias/x"}'
    m, p, h = _botocore(SigV4Auth, "POST", "http://127.0.0.1:9000/",
                        {"X-Amz-Target": "TrentService.DescribeKey",
                         "Content-Type": "application/x-amz-json-1.1"}, data=body, service="kms")
    assert "X-Amz-Content-SHA256" not in h
    assert peek_service(p, h) == "kms"
    ctx = authenticate(m, p, h, lookup, body_sha256=hashlib.sha256(body).hexdigest())
    assert (ctx.service, ctx.region) == ("kms", "eu-west-1")
    with pytest.raises(GatewayError) as e:
        authenticate(m, p, h, lookup, body_sha256=hashlib.sha256(b"other").hexdigest())
    assert to_s3(e.value).code == "SignatureDoesNotMatch"


def test_peek_service():
    m, p, h = _botocore(S3SigV4QueryAuth, "GET", "http://h/b/k")
    assert peek_service(p, h) == "s3"
    assert peek_service("/", headers({})) == "s3"
    assert peek_service("/?X-Amz-Credential=AK%2F20130524%2Fus-east-1%2Fsts%2Faws4_request",
                        headers({})) == "sts"
    assert peek_service("/", headers({"Authorization": "AWS AK:sig"})) == "s3"


def test_anonymous():
    ctx = authenticate("GET", "/b/k?x=1", headers({"Host": "h"}), lookup, server_region="r1")
    assert (ctx.credential, ctx.method, ctx.service, ctx.region) == (None, "anonymous", "s3", "r1")


# --- negatives -------------------------------------------------------------------------------

def _code(*args, **kw) -> S3Error:
    with pytest.raises(GatewayError) as e:
        authenticate(*args, **kw)
    return to_s3(e.value)


def test_bad_signature_fields():
    err = _code(*_get_object_request(signature="0" * 64), lookup, clock=lambda: EPOCH)
    assert err.code == "SignatureDoesNotMatch" and err.status == 403
    assert err.fields["AWSAccessKeyId"] == AKID
    assert err.fields["SignatureProvided"] == "0" * 64
    assert err.fields["CanonicalRequest"].startswith("GET\n/test.txt\n\nhost:")
    assert err.fields["StringToSign"].startswith("AWS4-HMAC-SHA256\n20130524T000000Z\n")
    text = repr(err.fields) + err.message
    assert SECRET not in text and VECTORS["get_object"]["signature"] not in text


def test_tampered_header():
    m, p, h = _get_object_request()
    h["Range"] = "bytes=0-10"
    assert _code(m, p, h, lookup, clock=lambda: EPOCH).code == "SignatureDoesNotMatch"


def test_unknown_key():
    m, p, h = _get_object_request()
    h["Authorization"] = h["Authorization"].replace(AKID, "AKIDUNKNOWN")
    assert _code(m, p, h, lookup, clock=lambda: EPOCH).code == "InvalidAccessKeyId"


def test_skew():
    assert _code(*_get_object_request(), lookup,
                 clock=lambda: EPOCH + 901).code == "RequestTimeTooSkewed"
    authenticate(*_get_object_request(), lookup, clock=lambda: EPOCH - 899)


@pytest.mark.parametrize("auth", [
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3, SignedHeaders=host,"
    " Signature=abc",
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws5_request, "
    "SignedHeaders=host, Signature=abc",
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130525/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=abc",
    "AWS4-HMAC-SHA256Credential=x",
    "AWS4-HMAC-SHA256 garbage",
])
def test_malformed_header(auth):
    m, p, h = _get_object_request()
    h["Authorization"] = auth
    assert _code(m, p, h, lookup, clock=lambda: EPOCH).code == "AuthorizationHeaderMalformed"


def test_content_sha256_rules():
    m, p, h = _get_object_request()
    del h["x-amz-content-sha256"]
    assert _code(m, p, h, lookup, clock=lambda: EPOCH).code == "InvalidRequest"
    h["x-amz-content-sha256"] = "abc"
    err = _code(m, p, h, lookup, clock=lambda: EPOCH)
    assert err.code == "InvalidArgument" and err.fields["ArgumentName"] == "x-amz-content-sha256"
    h["x-amz-content-sha256"] = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
    assert _code(m, p, h, lookup, clock=lambda: EPOCH).code == "NotImplemented"
    m, p, h = _get_object_request()
    h["Authorization"] = h["Authorization"].replace("range;x-amz-content-sha256;", "range;")
    err = _code(m, p, h, lookup, clock=lambda: EPOCH)
    assert err.code == "AccessDenied" and "x-amz-content-sha256" in err.fields["HeadersNotSigned"]


def test_no_date():
    m, p, h = _get_object_request()
    del h["x-amz-date"]
    assert _code(m, p, h, lookup, clock=lambda: EPOCH).code == "AccessDenied"


def test_two_mechanisms():
    m, p, h = _get_object_request()
    assert _code(m, p + "?X-Amz-Algorithm=AWS4-HMAC-SHA256", h, lookup,
                 clock=lambda: EPOCH).code == "InvalidArgument"


def _presigned(raw_path=None, **replace):
    v = VECTORS["presigned_get"]
    p = raw_path or v["raw_path"]
    for k, val in replace.items():
        import re
        p = re.sub(rf"{k}=[^&]*", f"{k}={val}", p)
    return v["method"], p, headers(v["headers"])


def test_presign_expired_and_not_yet_valid():
    err = _code(*_presigned(), lookup, clock=lambda: EPOCH + 86401)
    assert err.code == "AccessDenied" and err.message == "Request has expired"
    err = _code(*_presigned(), lookup, clock=lambda: EPOCH - 901)
    assert err.code == "AccessDenied" and "not valid yet" in err.message
    authenticate(*_presigned(), lookup, clock=lambda: EPOCH - 899)


@pytest.mark.parametrize("k,v", [("X-Amz-Expires", "604801"), ("X-Amz-Expires", "0"),
                                 ("X-Amz-Expires", "x"), ("X-Amz-Algorithm", "AWS4-HMAC-SHA1"),
                                 ("X-Amz-Date", "2013-05-24"),
                                 ("X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE%2F20130524"),
                                 ("X-Amz-SignedHeaders", "")])
def test_presign_bad_params(k, v):
    assert _code(*_presigned(**{k: v}), lookup,
                 clock=lambda: EPOCH).code == "AuthorizationQueryParametersError"


def test_presign_bad_signature_and_key():
    assert _code(*_presigned(**{"X-Amz-Signature": "1" * 64}), lookup,
                 clock=lambda: EPOCH).code == "SignatureDoesNotMatch"
    m, p, h = _presigned()
    assert _code(m, p.replace("AKIAIOSFODNN7EXAMPLE", "AKIANOPE"), h, lookup,
                 clock=lambda: EPOCH).code == "InvalidAccessKeyId"
    m, p, h = _presigned()
    assert _code(m, p + "&extra=1", h, lookup, clock=lambda: EPOCH).code == \
        "SignatureDoesNotMatch"


def test_botocore_presign_expires_limit():
    m, p, h = _botocore(S3SigV4QueryAuth, "GET", "http://h/b/k", expires=604800)
    authenticate(m, p, h, lookup)
    err = _code(m, p, h, lookup, clock=lambda: time.time() + 604801)
    assert err.message == "Request has expired"


# --- every x-amz-* header is signed (finding 3) -----------------------------------------------

def test_header_auth_names_every_unsigned_amz_header():
    m, p, h = _botocore(S3SigV4Auth, "PUT", "http://h/b/k", {"x-amz-meta-a": "1"}, data=b"x")
    authenticate(m, p, h, lookup)
    h["x-amz-copy-source"] = "/b/secret"
    h["X-Amz-Meta-B"] = "2"
    h["x-amzn-trace-id"] = "Root=1"        # not x-amz-: SDKs leave it unsigned on purpose
    err = _code(m, p, h, lookup)
    assert (err.code, err.status) == ("AccessDenied", 403)
    assert err.message == "There were headers present in the request which were not signed"
    assert err.fields["HeadersNotSigned"] == "x-amz-copy-source, x-amz-meta-b"


def test_presigned_refuses_unsigned_amz_headers_but_binds_content_sha256():
    m, p, h = _botocore(S3SigV4QueryAuth, "PUT", "http://h/b/k")
    authenticate(m, p, h, lookup)
    for name in ("x-amz-copy-source", "x-amz-server-side-encryption-customer-key",
                 "x-amz-server-side-encryption-aws-kms-key-id", "x-amz-date"):
        h2 = headers({**dict(h), name: "v"})
        assert _code(m, p, h2, lookup).fields["HeadersNotSigned"] == name
    # x-amz-content-sha256 unsigned is tolerated: it is the canonical request's payload line,
    # so a value other than the one signed (UNSIGNED-PAYLOAD) breaks the signature.
    ok = headers({**dict(h), "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    authenticate(m, p, ok, lookup)
    bad = headers({**dict(h), "x-amz-content-sha256": "a" * 64})
    assert _code(m, p, bad, lookup).code == "SignatureDoesNotMatch"


def test_presigned_with_signed_amz_header():
    m, p, h = _botocore(S3SigV4QueryAuth, "PUT", "http://h/b/k",
                        {"x-amz-server-side-encryption": "aws:kms"})
    assert "x-amz-server-side-encryption" in p
    authenticate(m, p, h, lookup)


# --- non-S3 services sign the payload (finding 6) --------------------------------------------

def _sha(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


def test_botocore_presigned_sts_and_iam_verify_with_the_empty_body():
    from botocore.auth import SigV4QueryAuth
    for service in ("sts", "iam"):
        req = AWSRequest(method="POST", url="http://h/",
                         data={"Action": "GetCallerIdentity", "Version": "2011-06-15"})
        SigV4QueryAuth(AWS_CREDS, service, "us-east-1", expires=60).add_auth(req)
        prepared = req.prepare()
        parts = urlsplit(prepared.url)
        raw = parts.path + "?" + parts.query
        h = headers({"Host": parts.netloc})
        ctx = authenticate("POST", raw, h, lookup, body_sha256=_sha(b""))
        assert (ctx.method, ctx.service, ctx.payload_hash) == ("sigv4-query", service, _sha(b""))
        err = _code("POST", raw, h, lookup, body_sha256=_sha(b"Action=ListAccessKeys"))
        assert err.code == "SignatureDoesNotMatch"
        # The face must hash the body: without it nothing non-S3 verifies.
        assert _code("POST", raw, h, lookup).code == "InvalidArgument"


def test_non_s3_sent_content_sha256_must_be_the_body_hash():
    body = b'{"KeyId":"alias/x"}'
    m, p, h = _botocore(SigV4Auth, "POST", "http://h/", {
        "X-Amz-Target": "TrentService.DescribeKey", "x-amz-content-sha256": _sha(body)},
        data=body, service="kms")
    ctx = authenticate(m, p, h, lookup, body_sha256=_sha(body))
    assert ctx.payload_hash == _sha(body)
    err = _code(m, p, h, lookup, body_sha256=_sha(b"{}"))
    assert err.code == "XAmzContentSHA256Mismatch"
    m, p, h = _botocore(SigV4Auth, "POST", "http://h/", {
        "X-Amz-Target": "TrentService.DescribeKey", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"},
        data=body, service="kms")
    assert _code(m, p, h, lookup, body_sha256=_sha(body)).code == "XAmzContentSHA256Mismatch"


# --- bytes that are not UTF-8 (finding 17) ----------------------------------------------------

def test_non_utf8_authorization_is_malformed():
    m, p, h = _get_object_request(signature="\udcff" + "0" * 63)
    err = _code(m, p, h, lookup, clock=lambda: EPOCH)
    assert (err.code, err.status) == ("AuthorizationHeaderMalformed", 400)
    h["Authorization"] = "AWS AKID:\udce9sig"
    assert _code(m, p, h, lookup, clock=lambda: EPOCH).status == 400


def test_non_utf8_signed_header_is_hashed_as_sent():
    m, p, h = _botocore(S3SigV4Auth, "PUT", "http://h/b/k", {"x-amz-meta-a": "x"}, data=b"x")
    h["x-amz-meta-a"] = "\udce9"
    assert _code(m, p, h, lookup).code == "SignatureDoesNotMatch"
    assert canonical_uri("/b/\udcff", "s3") == "/b/%FF"
    assert canonical_uri("/\udcff", "kms") == "/%FF"


def test_huge_expires_is_a_parameter_error():
    m, p, h = _presigned(**{"X-Amz-Expires": "9" * 5000})
    assert _code(m, p, h, lookup, clock=lambda: EPOCH).code == \
        "AuthorizationQueryParametersError"
