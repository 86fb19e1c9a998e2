"""Turning an audit record into one trail line: bounded, sanitised, and unable to fail.

A state change is audited before it commits (``kms.service``, ``gateway.audit_trail``), so an
encoder that raised would either refuse a legitimate call or, worse, let the change commit off
the record (issue 11, finding 5: a User-Agent holding ``\\xff`` reached ``json.dumps`` as the
lone surrogate ``\\udcff`` that aiohttp's ``surrogateescape`` decoding produces, and the UTF-8
encode raised after ScheduleKeyDeletion had committed). So the record is first rebuilt from
plain JSON values by ``sanitize``, which accepts *any* Python value, and only then serialised.

Line format (one record per line, ``trail/*.jsonl``)::

    line   = JSON(object, compact separators, ensure_ascii=False) "\\n"   UTF-8, <= MAX_RECORD
    object = CloudTrail record (eventVersion 1.08 marks the format; kms.audit.events)

What ``sanitize`` does, field by field:

* ``str``: a surrogate-escaped byte (``\\udc80``-``\\udcff``, i.e. a byte that was not valid
  UTF-8 on the wire) becomes the four characters ``\\xNN`` so the record still shows what the
  client sent; any other lone surrogate becomes U+FFFD. Then the string is cut to its bound in
  UTF-8 bytes (at a character boundary) and, when cut, ends in ``...``.
* bounds (UTF-8 bytes): ``userAgent`` 256, ``Host`` 256, ``sourceIPAddress`` 64, ``key``
  (S3 object key) 1024, ``errorMessage`` 1024, ``policy`` 32768 (a KMS key policy's limit),
  any other string 2048, any dict key 128.
* ``bytes``/``bytearray``/``memoryview``: never written (a secret or a blob must not slip in
  as raw bytes); replaced by ``"[bytes omitted: N]"``.
* ``int`` beyond 64 bits, non-finite ``float``: their ``str``/``"[int: N bits]"`` forms (JSON has
  no NaN, and CPython refuses to print huge ints).
* containers: lists/tuples/sets/frozensets become lists, mappings become objects with string
  keys; at most 128 items each (the rest dropped, noted by a ``"[N more]"`` item or key) and
  at most 8 levels deep (deeper: ``"[too deep]"``), which also ends a self-referencing value.
* anything else: ``"[<type name>]"`` (never ``repr``, which may raise or leak).

The whole record is held to ``MAX_RECORD`` bytes: a record that still exceeds it after the
per-field bounds (many long fields) keeps its identifying fields and has
``requestParameters``/``responseElements``/``additionalEventData`` replaced by a note, so its
size is bounded whatever the input. Imports nothing else from ``kms``.
"""
from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["sanitize", "encode_record", "bounded", "FIELD_BOUNDS", "DEFAULT_BOUND",
           "KEY_BOUND", "MAX_ITEMS", "MAX_DEPTH", "MAX_RECORD"]

FIELD_BOUNDS: dict[str, int] = {
    "userAgent": 256, "Host": 256, "sourceIPAddress": 64, "key": 1024, "errorMessage": 1024,
    "policy": 32768,
}
DEFAULT_BOUND = 2048
KEY_BOUND = 128
MAX_ITEMS = 128
MAX_DEPTH = 8
MAX_RECORD = 64 * 1024
_INT_BITS = 64
_ELLIPSIS = "..."
# Fields a record over MAX_RECORD gives up (the rest identify the call and its outcome).
_BULKY = ("requestParameters", "responseElements", "additionalEventData",
          "serviceEventDetails", "authorizationDecision", "authorizationDecisions")


def _clean_str(s: str) -> str:
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        pass
    out = []
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def bounded(value: object, limit: int = DEFAULT_BOUND) -> str:
    """``value`` as a clean string of at most ``limit`` UTF-8 bytes (see the module doc)."""
    s = _clean_str(value) if isinstance(value, str) else _scalar_str(value)
    if len(s) <= limit // 4:            # fast path: cannot exceed the bound in UTF-8
        return s
    raw = s.encode("utf-8")
    if len(raw) <= limit:
        return s
    cut = raw[:max(0, limit - len(_ELLIPSIS))].decode("utf-8", "ignore")
    return cut + _ELLIPSIS


def _scalar_str(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            n = len(value)
        except Exception:  # noqa: BLE001 - a released memoryview
            n = 0
        return f"[bytes omitted: {n}]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= _INT_BITS else f"[int: {value.bit_length()} bits]"
    if isinstance(value, float):
        return repr(value)
    return f"[{type(value).__name__}]"


def sanitize(value: Any, field: str | None = None, depth: int = 0) -> Any:
    """Any Python value -> plain JSON values within the bounds; never raises (short of
    MemoryError)."""
    try:
        return _sanitize(value, field, depth)
    except RecursionError:
        return "[too deep]"
    except Exception:  # noqa: BLE001 - a hostile __iter__/__len__ must not fail the record
        return f"[{type(value).__name__}]"


def _sanitize(value: Any, field: str | None, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return bounded(value, FIELD_BOUNDS.get(field or "", DEFAULT_BOUND))
    if isinstance(value, int):
        return int(value) if value.bit_length() <= _INT_BITS else _scalar_str(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _scalar_str(value)
    if depth >= MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out[f"[{len(value) - MAX_ITEMS} more]"] = None
                break
            name = bounded(k, KEY_BOUND) if isinstance(k, str) else bounded(_scalar_str(k),
                                                                             KEY_BOUND)
            out[name] = sanitize(v, name, depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = []
        for i, v in enumerate(value):
            if i >= MAX_ITEMS:
                items.append(f"[{len(value) - MAX_ITEMS} more]")
                break
            items.append(sanitize(v, field, depth + 1))
        return items
    return _scalar_str(value)


def encode_record(record: Any) -> bytes:
    """One trail line (with its newline) for ``record``; never raises, at most MAX_RECORD
    bytes."""
    clean = sanitize(record)
    if not isinstance(clean, dict):
        clean = {"eventVersion": "1.08", "eventName": "UnknownRecord",
                 "cofferEncodingNote": f"not an object: {type(record).__name__}"}
    line = _dumps(clean)
    if len(line) > MAX_RECORD:
        for name in _BULKY:
            if name in clean:
                clean[name] = {"cofferTruncated": "record exceeded "
                                                  f"{MAX_RECORD} bytes"}
        line = _dumps(clean)
    if len(line) > MAX_RECORD:          # 128 top-level keys of 2 KiB: keep the identity only
        keep = ("eventVersion", "eventTime", "eventSource", "eventName", "eventType",
                "requestID", "eventID", "errorCode", "intentEventID", "recipientAccountId")
        line = _dumps({k: clean[k] for k in keep if k in clean}
                      | {"cofferTruncated": f"record exceeded {MAX_RECORD} bytes"})
    return line


def _dumps(clean: dict[str, Any]) -> bytes:
    # ``sanitize`` left only str/int/float/bool/None/list/dict with str keys and no
    # surrogates, which json.dumps and the UTF-8 codec always accept.
    return (json.dumps(clean, separators=(",", ":"), ensure_ascii=False,
                       allow_nan=False) + "\n").encode("utf-8")
