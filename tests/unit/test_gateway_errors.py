"""gateway.errors: every neutral error has a code and status in every face, and no text can
break a renderer (issue 11: "the error renderer can never fail")."""
from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import errors
from gateway.errors import (JSON_TYPES, QUERY_CODES, S3_CODES, AuthError, GatewayError, Kind,
                            RequestError)
from gateway.s3.errors import ERRORS

FACES = {"s3": S3_CODES, "json": JSON_TYPES, "query": QUERY_CODES}


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_has_a_code_and_status_in_every_face(kind):
    s3 = errors.to_s3(GatewayError(kind))
    assert kind in S3_CODES and s3.code in ERRORS, kind
    assert 400 <= s3.status < 600 and s3.message
    for name, table in (("json", JSON_TYPES), ("query", QUERY_CODES)):
        assert kind in table, (name, kind)
        code, status, _ = table[kind]
        assert code and 400 <= status < 600, (name, kind)


@pytest.mark.parametrize("cls", [GatewayError, AuthError, RequestError])
@pytest.mark.parametrize("kind", list(Kind))
def test_every_error_class_renders_in_every_face(cls, kind):
    err = cls(kind, "detail", Extra="x")
    body = errors.render_s3_xml(errors.to_s3(err).code, "m", err.fields, "RID")
    assert ElementTree.fromstring(body).findtext("Extra") == "x"
    resp = errors.json_response(err)
    assert json.loads(resp.body)["__type"] == JSON_TYPES[kind][0]
    assert resp.status == JSON_TYPES[kind][1]
    resp = errors.query_response(err, "RID")
    root = ElementTree.fromstring(resp.body)
    assert root.findtext("{*}Error/{*}Code") == QUERY_CODES[kind][0]
    assert resp.status == QUERY_CODES[kind][1]


def test_s3_face_keeps_the_s3_table():
    err = errors.to_s3(AuthError(Kind.UNSIGNED_HEADERS, "There were headers present in the "
                                 "request which were not signed",
                                 HeadersNotSigned="x-amz-copy-source"))
    assert (err.code, err.status) == ("AccessDenied", 403)
    assert err.fields == {"HeadersNotSigned": "x-amz-copy-source"}
    default = errors.to_s3(AuthError(Kind.SIGNATURE_MISMATCH))
    assert default.message == ERRORS["SignatureDoesNotMatch"][1]


def test_face_wording_for_fixed_messages():
    type_, status, message = errors._face_entry(JSON_TYPES, AuthError(Kind.UNKNOWN_ACCESS_KEY,
                                                                      "ignored"), ("X", 500))
    assert (type_, status) == ("UnrecognizedClientException", 400)
    assert message == "The security token included in the request is invalid."
    code, status, message = errors.query_entry(AuthError(Kind.MALFORMED_AUTHORIZATION, "why"))
    assert (code, status, message) == ("IncompleteSignature", 400, "why")


def test_same_document_as_before_for_plain_text():
    body = errors.render_s3_xml("NoSuchKey", "The specified key does not exist.",
                                {"Key": "a&b<c>"}, "0123456789ABCDEF")
    assert body == (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
                    b"<Message>The specified key does not exist.</Message>"
                    b"<Key>a&amp;b&lt;c&gt;</Key><RequestId>0123456789ABCDEF</RequestId>"
                    b"<HostId>MDEyMzQ1Njc4OUFCQ0RFRg==</HostId></Error>")


def test_hostile_text_is_made_safe_and_bounded():
    nasty = "\x00\x01\udcff\ufffe\U0001f600" + "x" * 10_000
    body = errors.render_s3_xml("InvalidArgument", nasty, {"ArgumentValue": nasty,
                                                           "bad name": "v", "1x": "v"}, "r")
    root = ElementTree.fromstring(body)
    assert root.findtext("Message").startswith("\ufffd\ufffd\ufffd\ufffd\U0001f600")
    assert len(root.findtext("Message")) <= errors.MAX_MESSAGE + 3
    assert root.find("bad name") is None and len(root) == 5
    assert errors.safe_text(b"\xff\xfe ok") == "\ufffd\ufffd ok"


_text = st.one_of(st.text(max_size=40),
                  st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")))


@pytest.mark.fuzz
@settings(max_examples=10_000, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(message=_text, value=_text, kind=st.sampled_from(list(Kind)))
def test_renderers_never_fail(message, value, kind):
    ElementTree.fromstring(errors.render_s3_xml(value, message, {value: value, "K": value},
                                                message))
    ElementTree.fromstring(errors.render_query_xml(value, message, value))
    err = GatewayError(kind, message, F=value)
    json.loads(errors.json_response(err).body)
    ElementTree.fromstring(errors.s3_response(errors.to_s3(err), value).body)
