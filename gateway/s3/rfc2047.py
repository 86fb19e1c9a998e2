"""User metadata values as S3 carries them in headers: RFC 2047 encoded-words.

[S3 UG, "Working with object metadata", user-defined metadata]: "If the string contains
non-US-ASCII characters, values of such headers are character decoded as per RFC 2047 before
storing and encoded as per RFC 2047 to make them mail-safe before returning."

    inbound   a value made only of encoded-words  =?charset?B|Q?text?=  (whitespace between
              adjacent words dropped, RFC 2047 section 6.2) -> the decoded text; a value whose
              header bytes were not UTF-8 -> those bytes read as ISO-8859-1; anything else as is
    outbound  printable US-ASCII (and tab) as is; else  =?UTF-8?B?base64(utf-8 bytes)?=
"""
from __future__ import annotations

import base64
import binascii
import quopri
import re

__all__ = ["decode_value", "encode_value"]

_WORD = r"=\?([A-Za-z0-9_.:-]+)\?([BbQq])\?([^?\s]*)\?="
_WORDS_RE = re.compile(rf"^\s*{_WORD}(?:\s*{_WORD})*\s*$")
_ONE_RE = re.compile(_WORD)


def decode_value(value: str) -> str:
    """A metadata header value as stored. Never raises: what does not decode stays as sent."""
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
    if "=?" not in value or not _WORDS_RE.match(value):
        return value
    out = []
    for charset, kind, text in _ONE_RE.findall(value):
        try:
            if kind in "Bb":
                data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            else:
                data = quopri.decodestring(text.replace("_", " ").encode("ascii"), header=True)
            out.append(data.decode(charset))
        except (binascii.Error, ValueError, LookupError, UnicodeError):
            return value
    return "".join(out)


def encode_value(value: str) -> str:
    """A stored metadata value for a response header."""
    if all(c == "\t" or " " <= c <= "~" for c in value):
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:          # a lone surrogate no header byte could have made
        data = value.encode("utf-8", "replace")
    return "=?UTF-8?B?" + base64.b64encode(data).decode("ascii") + "?="
