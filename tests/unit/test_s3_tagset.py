"""gateway.s3.tagset and gateway.s3.rfc2047: the tag parsers and metadata encoded-words, with
known answers and fuzzing (only S3Error ever escapes a parser; decode never raises)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.s3.errors import S3Error
from gateway.s3.rfc2047 import decode_value, encode_value
from gateway.s3.tagset import (existing_tag_conditions, parse_tagging_header,
                               parse_tagging_xml, render_tagging, request_tag_conditions)

FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def test_header_known_answers():
    assert parse_tagging_header(None) is None
    assert parse_tagging_header("") == {} and parse_tagging_header("  ") == {}
    assert parse_tagging_header("a=1&b=%C3%A9+x&c=") == {"a": "1", "b": "é x", "c": ""}
    for bad, code in (("a=1&a=2", "InvalidArgument"), ("%FF=1", "InvalidArgument"),
                      ("&".join(f"k{i}=v" for i in range(11)), "BadRequest"),
                      ("k=" + "v" * 257, "InvalidTag"), ("aws:x=1", "InvalidTag"),
                      ("a%3Cb=1", "InvalidTag")):
        with pytest.raises(S3Error) as exc:
            parse_tagging_header(bad)
        assert exc.value.code == code, bad


def test_xml_round_trip_and_conditions():
    tags = {"a": "1", "Zürich": "", "k" * 128: "v" * 256}
    assert parse_tagging_xml(render_tagging(tags)) == tags
    assert parse_tagging_xml(render_tagging({})) == {}
    assert request_tag_conditions({"a": "1"}) == {"s3:RequestObjectTag/a": "1",
                                                  "s3:RequestObjectTagKeys": ("a",)}
    assert request_tag_conditions(None) == {}
    assert existing_tag_conditions({"c": "s"}) == {"s3:ExistingObjectTag/c": "s"}
    fifty = {f"k{i}": "v" for i in range(50)}
    assert parse_tagging_xml(render_tagging(fifty), 50, "Bucket") == fifty
    with pytest.raises(S3Error) as exc:
        parse_tagging_xml(render_tagging(fifty))
    assert exc.value.code == "BadRequest"


def test_rfc2047_known_answers():
    assert decode_value("=?UTF-8?B?Y2Fmw6k=?=") == "café"
    assert decode_value("=?utf-8?q?caf=C3=A9_au_lait?=") == "café au lait"
    assert decode_value("=?UTF-8?B?YQ==?= =?UTF-8?B?Yg==?=") == "ab"
    assert decode_value("plain =?UTF-8?B?YQ==?=") == "plain =?UTF-8?B?YQ==?="
    assert decode_value("=?UTF-8?B?!!!?=") == "=?UTF-8?B?!!!?="
    assert decode_value("=?nope?B?YQ==?=") == "=?nope?B?YQ==?="
    assert decode_value("\udcff") == "\xff"            # a non-UTF-8 header byte: ISO-8859-1
    assert encode_value("hello world") == "hello world"
    assert encode_value("café") == "=?UTF-8?B?Y2Fmw6k=?="
    assert decode_value(encode_value("☕ x")) == "☕ x"
    assert encode_value("\ud800").isascii()


@pytest.mark.fuzz
@FUZZ
@given(st.text(max_size=300))
def test_fuzz_header(value):
    try:
        tags = parse_tagging_header(value)
    except S3Error:
        return
    assert tags is not None and len(tags) <= 10


@pytest.mark.fuzz
@FUZZ
@given(st.one_of(st.binary(max_size=200),
                 st.builds(lambda k, v: render_tagging({k: v}), st.text(max_size=140),
                           st.text(max_size=260))))
def test_fuzz_xml(body):
    try:
        parse_tagging_xml(body)
    except S3Error:
        pass


@pytest.mark.fuzz
@FUZZ
@given(st.text(max_size=200))
def test_fuzz_rfc2047(value):
    out = decode_value(value)
    assert isinstance(out, str)
    encoded = encode_value(out)
    assert encoded.isascii()
