"""Tag sets as S3 defines them: the ``x-amz-tagging`` header, the ``<Tagging>`` document, the
limits and the condition keys a request's tags produce (no I/O; gateway.s3.tagging stores them).

Limits [S3 UG, "Categorizing your storage using tags"; S3 API, PutObjectTagging /
PutBucketTagging]: 10 tags per object (more: BadRequest "Object tags cannot be greater than
10"), 50 per bucket, keys 1-128 and values 0-256 Unicode characters of letters, digits, spaces
and ``+ - = . _ : / @``, keys unique within a set (InvalidTag), no ``aws:`` prefix (reserved for
AWS). The header form is URL-encoded query parameters (``k1=v1&k2=v2``); an empty header is no
tags (backup tools send one).
"""
from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import parse_qsl

from gateway.s3.errors import S3Error
from gateway.s3.xml import children, parse, render, text_of

__all__ = ["TAGS_META", "MAX_OBJECT_TAGS", "MAX_BUCKET_TAGS", "EXISTING_TAG_OPERATIONS",
           "REQUEST_TAG_OPERATIONS", "parse_tagging_header", "parse_tagging_xml",
           "render_tagging", "request_tag_conditions", "existing_tag_conditions",
           "tagging_directive"]

TAGS_META = "tags"
MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256
_TAG_CHARS_RE = re.compile(r"^[\w\s+\-=.:/@]*$")
_HEADER_MESSAGE = ("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL "
                   "query parameters without tag name duplicates.")

# Operations whose authorization sees s3:ExistingObjectTag/<key> [S3 SAR, "Actions defined by
# Amazon S3", the condition keys column].
EXISTING_TAG_OPERATIONS = frozenset({
    "GetObject", "HeadObject", "GetObjectAcl", "PutObjectAcl", "GetObjectTagging",
    "PutObjectTagging", "DeleteObjectTagging"})
# Operations that set tags from the x-amz-tagging header (and so also need
# s3:PutObjectTagging when it names any [S3 API, PutObject, "Permissions"]).
REQUEST_TAG_OPERATIONS = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload"})


def _check(tags: list[tuple[str, str]], limit: int, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tags:
        if not key:
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid", TagKey="")
        if len(key) > MAX_KEY_CHARS:
            raise S3Error("InvalidTag", "The TagKey you have provided is too long, max "
                          f"{MAX_KEY_CHARS}", TagKey=key[:MAX_KEY_CHARS])
        if len(value) > MAX_VALUE_CHARS:
            raise S3Error("InvalidTag", "The TagValue you have provided is too long, max "
                          f"{MAX_VALUE_CHARS}", TagKey=key, TagValue=value[:MAX_VALUE_CHARS])
        if not _TAG_CHARS_RE.match(key):
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid", TagKey=key)
        if not _TAG_CHARS_RE.match(value):
            raise S3Error("InvalidTag", "The TagValue you have provided is invalid",
                          TagKey=key, TagValue=value)
        if key.lower().startswith("aws:"):
            raise S3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:", TagKey=key)
        if key in out:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key",
                          TagKey=key)
        out[key] = value
    if len(out) > limit:
        raise S3Error("BadRequest", f"{what} tags cannot be greater than {limit}")
    return out


def parse_tagging_header(value: str | None) -> dict[str, str] | None:
    """``x-amz-tagging`` -> tags; None when absent, {} when empty. Raises S3Error only
    (InvalidArgument for a header that is not query form or repeats a key, InvalidTag,
    BadRequest)."""
    if value is None:
        return None
    if not value.strip():
        return {}
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=True,
                          encoding="utf-8", errors="strict")
    except (ValueError, UnicodeError) as exc:
        raise S3Error("InvalidArgument", _HEADER_MESSAGE, ArgumentName="x-amz-tagging",
                      ArgumentValue=value[:256]) from exc
    if len({k for k, _ in pairs}) != len(pairs):
        raise S3Error("InvalidArgument", _HEADER_MESSAGE, ArgumentName="x-amz-tagging",
                      ArgumentValue=value[:256])
    return _check(pairs, MAX_OBJECT_TAGS, "Object")


def parse_tagging_xml(body: bytes, limit: int = MAX_OBJECT_TAGS,
                      what: str = "Object") -> dict[str, str]:
    """A ``<Tagging><TagSet><Tag><Key/><Value/></Tag>...`` body -> tags. Raises S3Error only
    (MalformedXML, InvalidTag, BadRequest)."""
    doc = parse(body)
    if doc.tag != "Tagging":
        raise S3Error("MalformedXML")
    sets = children(doc, "TagSet")
    if len(sets) != 1:
        raise S3Error("MalformedXML")
    pairs = []
    for elem in sets[0]:
        if elem.tag != "Tag":
            raise S3Error("MalformedXML")
        key, value = text_of(elem, "Key"), text_of(elem, "Value")
        if key is None or value is None or len(children(elem, "Key")) != 1:
            raise S3Error("MalformedXML")
        pairs.append((key, value))
    return _check(pairs, limit, what)


def render_tagging(tags: Mapping[str, str]) -> bytes:
    return render("Tagging", {"TagSet": {"Tag": [{"Key": k, "Value": v}
                                                 for k, v in tags.items()]} if tags else ""})


def request_tag_conditions(tags: Mapping[str, str] | None) -> dict[str, Any]:
    if tags is None:
        return {}
    ctx: dict[str, Any] = {f"s3:RequestObjectTag/{k}": v for k, v in tags.items()}
    ctx["s3:RequestObjectTagKeys"] = tuple(tags)
    return ctx


def existing_tag_conditions(tags: Mapping[str, str] | None) -> dict[str, Any]:
    return {f"s3:ExistingObjectTag/{k}": v for k, v in (tags or {}).items()}


def tagging_directive(headers: Mapping[str, str]) -> str:
    """CopyObject's ``x-amz-tagging-directive``: COPY (default) or REPLACE."""
    directive = headers.get("x-amz-tagging-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown tagging directive.",
                      ArgumentName="x-amz-tagging-directive", ArgumentValue=directive[:64])
    return directive
