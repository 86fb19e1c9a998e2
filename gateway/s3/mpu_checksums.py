"""Multipart upload checksums: the COMPOSITE and FULL_OBJECT types.

AWS: userguide/checking-object-integrity.html ("Using part-level checksums for multipart
uploads", "Full object checksums"), API_CreateMultipartUpload.html (x-amz-checksum-type),
API_CompleteMultipartUpload.html; the recorded answers in shared/reference/s3-surface.md
section 10.

    algorithm   COMPOSITE   FULL_OBJECT   default type at CreateMultipartUpload
    CRC32       yes         yes           COMPOSITE
    CRC32C      yes         yes           COMPOSITE
    CRC64NVME   no          yes           FULL_OBJECT
    SHA1        yes         no            COMPOSITE
    SHA256      yes         no            COMPOSITE

    COMPOSITE   value = base64( H(raw part checksum 1 || ... || raw part checksum N) ) "-" N
    FULL_OBJECT value = base64( CRC(whole object) ), computed from the part CRCs and sizes:
                crc(A || B) = crc(A) * x^(8 |B|) mod P  xor  crc(B)

(the combination holds for the final, reflected, pre- and post-inverted CRC values; zlib's
``crc32_combine`` is the same identity). A checksum of the upload's algorithm is kept for every
part, computed by the gateway when the client sent none, so a FULL_OBJECT value exists even for
clients that checksum only the whole object.

The object record keeps each part's checksums for GET ?partNumber and GetObjectAttributes: in
clear as ``meta["mpu_parts"] = [{"n", "size", "checksums"}]``, or, for SSE-KMS / SSE-C objects,
as the part's sealed token in ``meta["sse"]["parts"][i]["sealed_checksums"]`` (same data key,
bucket, key and part number as at UploadPart, so it opens only after the caller's decrypt).
"""
from __future__ import annotations

import base64
from typing import Any, AsyncIterator, Mapping

from gateway.auth.checksums import is_valid_b64, make_checksum
from gateway.s3.errors import S3Error
from gateway.s3.xml import children, parse, text_of
from gateway.sse.envelope import part_checksums
from gateway.sse.record import SEALED_FIELD

__all__ = ["COMPOSITE", "FULL_OBJECT", "MODE_FIELD", "PARTS_FIELD", "creation_type",
           "part_algorithm_check", "with_part_checksum", "complete_type", "combine",
           "full_object_checksum", "composite_checksum", "verify_complete_checksum",
           "object_parts", "part_read_checksums", "body_headers", "parse_complete_checksums",
           "check_complete_parts"]

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"
MODE_FIELD = "checksum_mode"          # upload record: the type named at CreateMultipartUpload
PARTS_FIELD = "mpu_parts"             # object record: clear per-part checksums

_DEFAULT_TYPE = {"CRC32": COMPOSITE, "CRC32C": COMPOSITE, "CRC64NVME": FULL_OBJECT,
                 "SHA1": COMPOSITE, "SHA256": COMPOSITE}
_ALLOWED = {COMPOSITE: {"CRC32", "CRC32C", "SHA1", "SHA256"},
            FULL_OBJECT: {"CRC32", "CRC32C", "CRC64NVME"}}
# Reflected generator polynomials and widths (the CRC parameters S3 names).
_CRC = {"CRC32": (0xEDB88320, 32), "CRC32C": (0x82F63B78, 32),
        "CRC64NVME": (0x9A6C9329AC4BC9B5, 64)}


def _invalid(message: str) -> S3Error:
    return S3Error("InvalidRequest", message)


def creation_type(headers: Mapping[str, str], algorithm: str | None) -> str | None:
    """CreateMultipartUpload's checksum type: x-amz-checksum-type or the algorithm's default."""
    raw = headers.get("x-amz-checksum-type")
    if raw is None:
        return _DEFAULT_TYPE[algorithm] if algorithm else None
    kind = raw.strip().upper()
    if kind not in _ALLOWED:
        raise _invalid("Value for x-amz-checksum-type header is invalid.")
    if algorithm is None:
        raise _invalid("The x-amz-checksum-type header can only be used with the "
                       "x-amz-checksum-algorithm header.")
    if algorithm not in _ALLOWED[kind]:
        raise _invalid(f"The {kind} checksum type cannot be used with the {algorithm.lower()} "
                       "checksum algorithm.")
    return kind


def part_algorithm_check(algorithm: str | None, sent: Mapping[str, str]) -> None:
    """UploadPart of an upload created with ``algorithm``: a checksum in another algorithm is
    refused (AWS: "Checksum Type mismatch occurred")."""
    for other in sent:
        if algorithm is not None and other != algorithm:
            raise _invalid(f"Checksum Type mismatch occurred, expected checksum Type: "
                           f"{algorithm.lower()}, actual checksum Type: {other.lower()}")


async def with_part_checksum(chunks: AsyncIterator[bytes], algorithm: str,
                             out: dict[str, str]) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through; at the end ``out[algorithm]`` is their base64 checksum."""
    running = make_checksum(algorithm)
    async for chunk in chunks:
        running.update(chunk)
        yield chunk
    out[algorithm] = running.b64()


def complete_type(headers: Mapping[str, str], created: str | None) -> None:
    """Complete must name the type the upload was created with, or none (aws-cli 2.23 sends
    none: clients-on-the-wire.md)."""
    raw = headers.get("x-amz-checksum-type")
    if raw is None or raw.strip().upper() == (created or ""):
        return
    mode = f"the {created}" if created else "a null"
    raise _invalid(f"The upload was created using {mode} checksum mode. The complete request "
                   "must use the same checksum mode.")


def body_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """CompleteMultipartUpload's headers as its XML body's reader should see them: without
    the object-level x-amz-checksum-* values (API_CompleteMultipartUpload.html)."""
    return {k: v for k, v in headers.items()
            if not k.lower().startswith("x-amz-checksum-")}


def _mult(a: int, b: int, poly: int, width: int) -> int:
    """a * b modulo the reflected polynomial (bit width-1 is x^0)."""
    m = 1 << (width - 1)
    product = 0
    while m:
        if a & m:
            product ^= b
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1
    return product


def combine(algorithm: str, crc1: int, crc2: int, len2: int) -> int:
    """CRC(A || B) from CRC(A), CRC(B) and |B| in bytes."""
    poly, width = _CRC[algorithm]
    power, base = 1 << (width - 1), (1 << (width - 1)) >> 8     # x^0, x^8
    n = len2
    while n:
        if n & 1:
            power = _mult(power, base, poly, width)
        base = _mult(base, base, poly, width)
        n >>= 1
    return _mult(power, crc1, poly, width) ^ crc2


def full_object_checksum(algorithm: str, parts: list[tuple[str, int]]) -> str:
    """The FULL_OBJECT value from [(part base64 checksum, part plaintext size)]."""
    width = _CRC[algorithm][1] // 8
    crc = None
    for value, size in parts:
        part = int.from_bytes(base64.b64decode(value), "big")
        crc = part if crc is None else combine(algorithm, crc, part, size)
    return base64.b64encode((crc or 0).to_bytes(width, "big")).decode()


def composite_checksum(algorithm: str, values: list[str]) -> str:
    running = make_checksum(algorithm)
    for value in values:
        running.update(base64.b64decode(value))
    return f"{running.b64()}-{len(values)}"


def verify_complete_checksum(headers: Mapping[str, str], algorithm: str | None,
                             kind: str | None, value: str | None) -> None:
    """The whole-object checksum a client may send on Complete: InvalidRequest when
    malformed, BadDigest when it differs from the one computed from the parts."""
    for name, sent in headers.items():
        lname = name.lower()
        if not lname.startswith("x-amz-checksum-") or lname == "x-amz-checksum-type":
            continue
        alg = lname[len("x-amz-checksum-"):].upper()
        bare = sent.strip()
        if alg not in _DEFAULT_TYPE:
            continue                # not an object checksum (e.g. x-amz-checksum-algorithm)
        if kind == COMPOSITE and "-" in bare:
            bare = bare.rsplit("-", 1)[0]
        if not is_valid_b64(alg, bare):
            raise _invalid(f"Value for {lname} header is invalid.")
        if alg != algorithm or value is None or bare != value.split("-")[0]:
            raise S3Error("BadDigest", f"The {alg.lower()} you specified did not match the "
                          "calculated checksum.")


def object_parts(meta: Mapping[str, Any], data_key, bucket: str,
                 key: str) -> list[tuple[int, int, dict[str, str]]]:
    """[(part number, plaintext size, checksums)] of a multipart object uploaded with a
    checksum algorithm, in order ([] otherwise). Sealed part checksums need ``data_key``
    (AccessDenied without)."""
    clear = meta.get(PARTS_FIELD)
    if clear:
        return [(p["n"], p["size"], dict(p.get("checksums") or {})) for p in clear]
    record = meta.get("sse")
    parts = record.get("parts") if isinstance(record, Mapping) else None
    if not parts or not any(SEALED_FIELD in p for p in parts):
        return []
    return [(p["n"], p["plain"], part_checksums(p, data_key, bucket, key, p["n"])
             if SEALED_FIELD in p else {}) for p in parts]


def part_read_checksums(meta: Mapping[str, Any], readable: Mapping[str, Any], data_key,
                        bucket: str, key: str, number: int) -> dict[str, Any]:
    """Checksums for GET/HEAD ?partNumber: a COMPOSITE object's part answers with that part's
    checksum; FULL_OBJECT (and single-part objects) only when the part is the whole object
    (s3-surface.md section 10)."""
    parts = object_parts(meta, data_key, bucket, key) if readable.get("checksums") else []
    if not parts:
        return readable if number == 1 else {}
    if readable.get("checksum_type") == COMPOSITE and 1 <= number <= len(parts):
        return {"checksums": parts[number - 1][2], "checksum_type": COMPOSITE}
    return readable if len(parts) == 1 else {}


def parse_complete_checksums(body: bytes) -> dict[int, dict[str, str]]:
    """Part number -> {ALGORITHM: value} named in a CompleteMultipartUpload body (the body
    already passed ``parse_complete_request``). Raises S3Error (MalformedXML) only."""
    out: dict[int, dict[str, str]] = {}
    for elem in children(parse(body), "Part"):
        try:
            number = int((text_of(elem, "PartNumber") or "").strip())
        except ValueError as exc:
            raise S3Error("MalformedXML") from exc
        sums = {alg: value.strip() for alg in _DEFAULT_TYPE
                if (value := text_of(elem, f"Checksum{alg}")) is not None}
        if sums:
            out[number] = sums
    return out


def check_complete_parts(algorithm: str | None, kind: str | None, upload_id: str,
                         requested: list[tuple[int, str]], listed: dict[int, dict[str, str]],
                         stored: Mapping[int, Mapping[str, str]]) -> None:
    """The part checksums a Complete request lists must be the parts' (InvalidPart), in the
    upload's algorithm (BadDigest); a COMPOSITE upload must list every one (InvalidRequest)."""
    if algorithm is None:
        return
    for number, etag in requested:
        sent = listed.get(number, {})
        for alg, value in sent.items():
            if alg != algorithm:
                raise S3Error("BadDigest", f"The {alg.lower()} you specified for part "
                              f"{number} did not match what we received.")
            have = stored.get(number, {}).get(alg)
            if have is not None and value != have:
                raise S3Error("InvalidPart", UploadId=upload_id, PartNumber=str(number),
                              ETag=etag)
        if kind == COMPOSITE and algorithm not in sent:
            raise _invalid(f"The upload was created using a {algorithm.lower()} checksum. The "
                           "complete request must include the checksum for each part. It was "
                           f"missing for part {number} in the request.")
