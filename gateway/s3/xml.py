"""S3 XML in and out.

Inbound documents are parsed with defusedxml (no DTDs, no entity expansion: XML bombs are
refused) after a size cap, and namespaces are dropped: clients differ (s3cmd sends no xmlns,
rclone writes ETag quotes as ``&#34;``, the JS SDK adds a prolog). Outbound documents are built
with xmltodict from ordered dicts.
"""
from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any
from xml.etree.ElementTree import Element

import xmltodict
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from gateway.s3.errors import S3Error

__all__ = ["S3_NS", "render", "parse", "children", "text_of", "iso8601", "http_date"]

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def render(root: str, body: dict[str, Any], *, namespace: bool = True) -> bytes:
    """Serialise ``{root: body}``; lists become repeated elements, None values are skipped."""
    doc = {root: _clean({"@xmlns": S3_NS, **body} if namespace else body)}
    return xmltodict.unparse(doc, encoding="UTF-8", full_document=True).encode()


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _strip_ns(elem: Element) -> None:
    for e in elem.iter():
        if isinstance(e.tag, str) and "}" in e.tag:
            e.tag = e.tag.split("}", 1)[1]


def parse(body: bytes) -> Element:
    """Parse a request document; anything malformed or dangerous is ``MalformedXML``."""
    if not body.strip():
        raise S3Error("MalformedXML")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (SafeET.ParseError, DefusedXmlException, ValueError, LookupError) as exc:
        # LookupError: an XML declaration naming an encoding Python does not know.
        raise S3Error("MalformedXML") from exc
    _strip_ns(root)
    return root


def children(elem: Element, tag: str) -> list[Element]:
    return [c for c in elem if c.tag == tag]


def text_of(elem: Element, tag: str, default: str | None = None) -> str | None:
    found = elem.find(tag)
    if found is None:
        return default
    return found.text or ""


def iso8601(ts: float) -> str:
    """S3's XML timestamp form, e.g. 2009-10-12T17:50:30.000Z."""
    t = time.gmtime(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int((ts % 1) * 1000):03d}Z"


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)
