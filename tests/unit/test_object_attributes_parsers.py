"""Seeded fuzzing of GetObjectAttributes' header parsers (x-amz-object-attributes,
x-amz-max-parts, x-amz-part-number-marker): only S3Error may come out."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.s3.errors import S3Error
from gateway.s3.object_attributes import ATTRIBUTES, parse_attributes, parse_part_paging
from gateway.s3.operations import OPERATIONS

FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
_TOKENS = [*ATTRIBUTES, ",", " ", "etag", "", "\u0662", "1", "-1", "+5", "0", "99999999999",
           "1000", "1001", "\x00", "é", "1_0"]


def test_attribute_lists():
    assert parse_attributes(" ETag,ObjectSize , Checksum") == {"ETag", "ObjectSize", "Checksum"}
    with pytest.raises(S3Error) as e:
        parse_attributes(" , ")
    assert e.value.code == "InvalidRequest"
    with pytest.raises(S3Error) as e:
        parse_attributes("ETag,Size")
    assert e.value.code == "InvalidArgument"
    assert parse_part_paging({}) == (1000, 0)
    assert parse_part_paging({"x-amz-max-parts": "5000", "x-amz-part-number-marker": "3"}) \
        == (1000, 3)


def test_needs_both_actions():
    spec = OPERATIONS["GetObjectAttributes"]
    assert (spec.action, spec.also) == ("s3:GetObjectAttributes", ("s3:GetObject",))


@pytest.mark.fuzz
@FUZZ
@given(st.binary(max_size=16))
def test_fuzz_header_parsers(draw):
    text = "".join(_TOKENS[b % len(_TOKENS)] for b in draw)
    half = len(draw) // 2
    headers = {"x-amz-max-parts": "".join(_TOKENS[b % len(_TOKENS)] for b in draw[:half]),
               "x-amz-part-number-marker": "".join(_TOKENS[b % len(_TOKENS)]
                                                   for b in draw[half:])}
    for parse in (lambda: parse_attributes(text), lambda: parse_part_paging(headers)):
        try:
            parse()
        except S3Error:
            pass
