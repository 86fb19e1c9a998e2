"""Encoding an audit record cannot fail and is bounded (issue 11, finding 5; kms.audit.encode).

The fuzz cases throw arbitrary values at the encoder: strings with lone surrogates (what
aiohttp's surrogateescape decoding makes of non-UTF-8 header bytes), bytes, huge ints, NaN,
non-string keys, sets, deep nesting, objects of no JSON type. Encoding must never raise, the
line must be valid UTF-8 JSON of at most MAX_RECORD bytes, and bytes never appear raw.
"""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kms.audit import AuditEvent
from kms.audit.encode import (DEFAULT_BOUND, FIELD_BOUNDS, MAX_RECORD, bounded, encode_record,
                              sanitize)
from kms.audit.events import encode_event

FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                       blacklist_categories=()), max_size=24)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2 ** 63, max_value=2 ** 200),
    st.floats(allow_nan=True, allow_infinity=True), _text, st.binary(max_size=64),
    st.builds(bytearray, st.binary(max_size=8)), st.builds(object), st.just(Ellipsis),
    st.complex_numbers(allow_nan=True))
_keys = st.one_of(_text, st.integers(), st.none(), st.booleans(), st.binary(max_size=8),
                  st.tuples(st.integers()))
_flat = st.one_of(st.lists(_scalars, max_size=4), st.dictionaries(_keys, _scalars, max_size=4),
                  st.frozensets(st.integers(), max_size=3), st.tuples(_scalars, _scalars))
# Two levels of containers: depth and self-reference have their own cases below.
_values = st.one_of(_scalars, _flat, st.dictionaries(_text, _flat, max_size=3),
                    st.lists(_flat, max_size=3))


def _check(line: bytes) -> dict:
    assert isinstance(line, bytes) and line.endswith(b"\n")
    assert len(line) <= MAX_RECORD
    rec = json.loads(line.decode("utf-8"))          # strict UTF-8, strict JSON
    assert isinstance(rec, dict)
    return rec


@pytest.mark.fuzz
@FUZZ
@given(_values)
def test_encode_record_never_raises(value):
    _check(encode_record({"eventName": "X", "requestParameters": value, "userAgent": value}))
    _check(encode_record(value))


_EVENT_FIELDS = ("event_name", "event_time", "region", "request_id", "principal_arn",
                 "user_agent", "source_ip", "request_parameters", "response_elements",
                 "error_message", "resources", "authorization_decision", "invoked_by")


@pytest.mark.fuzz
@FUZZ
@given(st.sampled_from(_EVENT_FIELDS), _values, _text)
def test_encode_event_never_raises(name, value, ua):
    fields = dict(event_name="Decrypt", event_time=0.0, region="us-east-1", event_id="e",
                  request_id="r", read_only=True, account_id="111122223333",
                  principal_arn="arn:aws:iam::111122223333:root", user_agent=ua)
    fields[name] = value                              # any one field holding any value
    _check(encode_event(AuditEvent(**fields)))


def test_non_utf8_bytes_show_escaped_and_bounds_hold():
    assert bounded("x\udcff\udc80y") == "x\\xff\\x80y"
    assert bounded("\ud800") == "\ufffd"
    rec = _check(encode_record({"userAgent": "u" * 10_000, "requestParameters": {
        "Host": "h" * 10_000, "key": "k" * 5000, "other": "\u00e9" * 5000},
        "errorMessage": "m" * 9000}))
    assert len(rec["userAgent"].encode()) == FIELD_BOUNDS["userAgent"]
    assert len(rec["requestParameters"]["Host"].encode()) == FIELD_BOUNDS["Host"]
    assert len(rec["requestParameters"]["key"].encode()) == FIELD_BOUNDS["key"]
    assert len(rec["requestParameters"]["other"].encode()) <= DEFAULT_BOUND
    assert len(rec["errorMessage"].encode()) == FIELD_BOUNDS["errorMessage"]
    assert rec["userAgent"].endswith("...")


def test_bytes_never_written_and_odd_values_survive():
    loop: list = []
    loop.append(loop)
    rec = sanitize({"b": b"secret", "n": math.nan, "big": 10 ** 5000, "s": {1, 2},
                    1: "int key", "loop": loop, "o": object()})
    assert rec["b"] == "[bytes omitted: 6]" and "secret" not in json.dumps(rec)
    assert rec["n"] == "nan" and rec["big"].startswith("[int:")
    assert sorted(rec["s"]) == [1, 2] and rec["1"] == "int key" and rec["o"] == "[object]"
    assert "[too deep]" in json.dumps(rec["loop"])


def test_a_huge_record_is_cut_to_the_bound():
    rec = _check(encode_record({"eventName": "PutKeyPolicy", "requestID": "r",
                                "requestParameters": {f"k{i}": "v" * 2048 for i in range(100)}}))
    assert rec["eventName"] == "PutKeyPolicy" and rec["requestID"] == "r"
    assert rec["requestParameters"] == {"cofferTruncated": f"record exceeded {MAX_RECORD} bytes"}
