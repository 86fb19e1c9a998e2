"""IAM / STS Query-protocol XML: ``<XResponse><XResult>...</XResult><ResponseMetadata>``.

Lists are ``<Name><member>...</member></Name>`` (the awsquery protocol); policy documents
travel URL-encoded, as AWS returns them (botocore decodes them).
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["IAM_NS", "STS_NS", "render_result", "iso8601"]

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def iso8601(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _element(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    if isinstance(value, dict):
        inner = "".join(_element(k, v) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(_element("member", v) for v in value)
    else:
        inner = escape(str(value))
    return f"<{name}>{inner}</{name}>"


def render_result(action: str, result: dict[str, Any] | None, request_id: str,
                  namespace: str = IAM_NS) -> bytes:
    body = _element(f"{action}Result", result or {}) if result is not None else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{namespace}">'
            f"{body}<ResponseMetadata><RequestId>{escape(request_id)}</RequestId>"
            f"</ResponseMetadata></{action}Response>").encode()
