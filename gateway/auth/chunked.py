"""The aws-chunked body framing, as a push parser that accepts any split of its input.

Spec (S3 API Reference, "sigv4-streaming", "sigv4-streaming-trailers")::

    body      = *chunk last-chunk trailers CRLF
    chunk     = hex(size) [";chunk-signature=" 64HEX] CRLF data(size) CRLF
    last      = "0" [";chunk-signature=" 64HEX] CRLF
    trailers  = *(name ":" value CRLF)          ; e.g. x-amz-checksum-crc32:ojUr7w==
                                                ; signed: then x-amz-trailer-signature:64HEX CRLF

Signed chunks chain from the request's seed signature:

    sig_i = HMAC(kSigning, "AWS4-HMAC-SHA256-PAYLOAD" \n date \n scope \n sig_{i-1} \n
                           sha256("") \n hex(sha256(data_i)))
    trailer = HMAC(kSigning, "AWS4-HMAC-SHA256-TRAILER" \n date \n scope \n sig_last \n
                             hex(sha256("name:value\n" for each trailer)))

Lines may also end in a bare LF (clients differ around the trailer), and a body that ends
right after complete trailer lines, without the final blank line, is accepted.
"""
from __future__ import annotations

import hashlib
import hmac

from gateway.auth.types import StreamSigning
from gateway.errors import Kind, RequestError

__all__ = ["AwsChunkedDecoder", "MAX_CHUNK_SIZE"]

MAX_CHUNK_SIZE = 16 * 1024 * 1024     # boto3 sends 1 MiB, others a few MiB
_MAX_LINE = 4096                      # "<16 hex>;chunk-signature=<64 hex>" is ~100 bytes
_MAX_TRAILERS = 16 * 1024
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SIG_EXT = b"chunk-signature="
_HEX = frozenset(b"0123456789abcdefABCDEF")
_STRAY_AFTER_END = 2                  # tolerated CR/LF bytes after the final blank line

_HEADER, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


def _incomplete(detail: str) -> RequestError:
    return RequestError(
        Kind.INCOMPLETE_BODY, f"The request body is not valid aws-chunked encoding: "
        f"{detail}.")


def _bad_trailer(detail: str | None = None) -> RequestError:
    return RequestError(Kind.MALFORMED_TRAILER, None, **({"Detail": detail} if detail else {}))


class AwsChunkedDecoder:
    """Decode an aws-chunked body fed in arbitrary pieces.

    ``feed(data)`` returns the payload bytes decoded so far (a list of ``bytes``);
    ``finish()`` returns the trailers (lower-case name -> value) once the body has ended.
    With ``signing`` set every chunk signature is verified when its data is complete, and
    with ``expect_trailer_signature`` the trailer signature too. Raises ``RequestError``:
    INCOMPLETE_BODY (framing, early end), INVALID_PAYLOAD_ARGUMENT (chunk over MAX_CHUNK_SIZE),
    MALFORMED_TRAILER, CHUNK_SIGNATURE_MISMATCH.
    """

    def __init__(self, signing: StreamSigning | None, trailer_names: set[str],
                 expect_trailer_signature: bool) -> None:
        self._signing = signing
        self._trailer_names = {n.strip().lower() for n in trailer_names if n.strip()}
        self._expect_trailer_sig = expect_trailer_signature and signing is not None
        self._state = _HEADER
        self._line = bytearray()
        self._remaining = 0
        self._crlf = 0
        self._prev_sig = signing.seed_signature if signing else ""
        self._chunk_sig = ""
        self._hash = None
        self._trailers: dict[str, str] = {}
        self._trailer_lines: list[str] = []
        self._trailer_bytes = 0
        self._stray = 0
        self.decoded_size = 0

    # -- feeding --------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == _DATA:
                n = min(self._remaining, end - pos)
                piece = data if (pos == 0 and n == end) else bytes(view[pos:pos + n])
                out.append(piece)
                if self._hash is not None:
                    self._hash.update(piece)
                self._remaining -= n
                self.decoded_size += n
                pos += n
                if self._remaining == 0:
                    self._state = _DATA_END
                    self._crlf = 0
            elif state == _DATA_END:
                expected = 13 if self._crlf == 0 else 10
                if data[pos] != expected:
                    raise _incomplete("chunk data is not followed by CRLF")
                pos += 1
                self._crlf += 1
                if self._crlf == 2:
                    self._end_chunk()
                    self._state = _HEADER
            elif state in (_HEADER, _TRAILER):
                nl = data.find(b"\n", pos)
                stop = end if nl < 0 else nl
                self._line += view[pos:stop]
                limit = _MAX_LINE if state == _HEADER else _MAX_TRAILERS
                if len(self._line) > limit:
                    if state == _HEADER:
                        raise _incomplete("chunk header line too long")
                    raise _bad_trailer("trailer too long")
                if nl < 0:
                    break
                pos = nl + 1
                line = bytes(self._line)
                self._line.clear()
                if state == _HEADER:
                    if not line.endswith(b"\r"):
                        raise _incomplete("chunk header is not terminated by CRLF")
                    self._start_chunk(line[:-1])
                else:
                    self._trailer_line(line[:-1] if line.endswith(b"\r") else line)
            else:  # _DONE
                rest = data[pos:]
                self._stray += len(rest)
                if rest.strip(b"\r\n") or self._stray > _STRAY_AFTER_END:
                    raise _incomplete("data after the final chunk")
                break
        return out

    def _start_chunk(self, line: bytes) -> None:
        size_text, semi, ext = line.partition(b";")
        if not size_text or len(size_text) > 16 or any(c not in _HEX for c in size_text):
            raise _incomplete("invalid chunk size")
        size = int(size_text, 16)
        if size > MAX_CHUNK_SIZE:
            raise RequestError(
                Kind.INVALID_PAYLOAD_ARGUMENT, f"Chunk size {size} exceeds the maximum "
                f"{MAX_CHUNK_SIZE}", ArgumentName="chunk-size",
                ArgumentValue=str(size))
        if self._signing is not None:
            sig = ext[len(_SIG_EXT):] if ext.startswith(_SIG_EXT) else b""
            if not semi or len(sig) != 64 or any(c not in _HEX for c in sig):
                raise _incomplete("missing or malformed chunk-signature")
            self._chunk_sig = sig.decode("ascii").lower()
            self._hash = hashlib.sha256()
        if size == 0:
            self._end_chunk()
            self._state = _TRAILER
        else:
            self._remaining = size
            self._state = _DATA

    def _end_chunk(self) -> None:
        if self._signing is None:
            return
        s = self._signing
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", s.amz_date, s.scope, self._prev_sig,
                         _EMPTY_SHA256, self._hash.hexdigest()])
        expected = hmac.new(s.signing_key, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), self._chunk_sig.encode()):
            raise RequestError(Kind.CHUNK_SIGNATURE_MISMATCH, StringToSign=sts,
                          SignatureProvided=self._chunk_sig)
        self._prev_sig = expected
        self._hash = None

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            self._close_trailers()
            self._state = _DONE
            return
        self._trailer_bytes += len(line)
        if self._trailer_bytes > _MAX_TRAILERS:
            raise _bad_trailer("trailer too long")
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise _bad_trailer("trailer is not ASCII") from None
        name, colon, value = text.partition(":")
        name, value = name.strip().lower(), value.strip()
        if not colon or not name or any(c in name for c in " \t") or name in self._trailers:
            raise _bad_trailer()
        if name == "x-amz-trailer-signature":
            if not self._expect_trailer_sig:
                raise _bad_trailer("unexpected x-amz-trailer-signature")
        elif name not in self._trailer_names:
            raise _bad_trailer(f"trailer {name} was not declared in x-amz-trailer")
        else:
            self._trailer_lines.append(f"{name}:{value}\n")
        self._trailers[name] = value

    def _close_trailers(self) -> None:
        missing = self._trailer_names - self._trailers.keys()
        if missing:
            raise _bad_trailer(f"missing trailer {sorted(missing)[0]}")
        if self._expect_trailer_sig:
            provided = self._trailers.pop("x-amz-trailer-signature", None)
            if provided is None:
                raise _bad_trailer("missing x-amz-trailer-signature")
            s = self._signing
            digest = hashlib.sha256("".join(self._trailer_lines).encode()).hexdigest()
            sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", s.amz_date, s.scope, self._prev_sig,
                             digest])
            expected = hmac.new(s.signing_key, sts.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected.encode(), provided.lower().encode()):
                raise RequestError(Kind.CHUNK_SIGNATURE_MISMATCH, StringToSign=sts,
                              SignatureProvided=provided)

    # -- the end --------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def finish(self) -> dict[str, str]:
        """The trailers, once the body is complete; raises INCOMPLETE_BODY if it ended early."""
        if self._state == _TRAILER and not self._line and self._trailers:
            # Complete trailer lines but no final blank line: accepted (clients differ).
            self._close_trailers()
            self._state = _DONE
        if self._state != _DONE:
            raise RequestError(Kind.INCOMPLETE_BODY)
        return dict(self._trailers)
