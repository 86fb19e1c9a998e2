"""Sealing a KMS backup under an operator passphrase (scrypt) or a PKCS#11 key (the hazmat room).

This module owns the outer layer of format ``coffer-kms-backup/1`` (the payload inside is
``kms.backup``'s)::

    file     = header ‖ sealed
    header   = "COFFERKB" (8 bytes, magic) ‖ 0x01 (format version) ‖ protector (1 byte)
               ‖ protector fields ‖ nonce (12 random bytes)
      protector 0x01 scrypt:  log2_n (1) ‖ r (1) ‖ p (1) ‖ salt (32 random bytes)
                backup_key  = scrypt(UTF-8 passphrase, salt, N = 2**log2_n, r, p, dklen = 32)
      protector 0x02 pkcs11:  uint8 len ‖ token label (UTF-8, 1..255 bytes)
                              ‖ uint8 len ‖ key label (UTF-8, 1..255 bytes)
                              ‖ wrap_nonce (12) ‖ wrapped_key (32 + 16-byte tag)
                backup_key  = 32 random bytes;
                wrapped_key = CKM_AES_GCM inside the token (key label, wrap_nonce, backup_key,
                              AAD = every header byte before wrap_nonce)
    sealed   = AES-256-GCM(backup_key, nonce, payload, AAD = header) (ciphertext ‖ 16-byte tag)

Writers use N = 2**15, r = 8, p = 1 (RFC 7914 section 2 and the OWASP password storage
cheat sheet's scrypt minimum; 32 MiB, ~0.1-0.3 s). Readers accept log2_n 15..17, r = 8,
p 1..2, so a crafted header cannot make a restore allocate more than 128 MiB before the tag
is checked; a stronger setting is a new format version. Binding the whole header as AAD means
a changed scrypt parameter, salt, label or nonce fails exactly like a wrong passphrase.
AESGCM accepts at most 2**31 - 1 bytes, so that bounds the payload.

Every failure to open (not a backup, unknown version, wrong passphrase, wrong token key, a
flipped bit anywhere) raises the one opaque ``BackupCryptoError`` (pyca's ``InvalidToken``
practice): the caller cannot tell a wrong passphrase from a tampered file, and neither can an
attacker probing with edited copies.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from kms.crypto.aead import NONCE_SIZE, TAG_SIZE, AEADKey, CryptoError

__all__ = ["MAGIC", "VERSION", "SCRYPT", "PKCS11", "MAX_PAYLOAD", "BackupCryptoError",
           "BackupProtector", "ScryptParams", "PassphraseProtector", "TokenProtector",
           "HeaderInfo", "read_header"]

MAGIC = b"COFFERKB"
VERSION = 0x01
SCRYPT = 0x01
PKCS11 = 0x02
MAX_PAYLOAD = 2**31 - 1
_KEY_SIZE = 32
_SALT_SIZE = 32
_LOG2_N = range(15, 18)
_R = (8,)
_P = range(1, 3)
_PREFIX = len(MAGIC) + 2


class BackupCryptoError(Exception):
    """Opaque: the backup cannot be opened (not one, altered, or the wrong passphrase / key)."""

    def __init__(self) -> None:
        super().__init__("the backup cannot be opened: wrong passphrase or key, or the file "
                         "is damaged or was altered")


@dataclass(frozen=True, slots=True)
class ScryptParams:
    log2_n: int = 15
    r: int = 8
    p: int = 1

    def check(self) -> None:
        if self.log2_n not in _LOG2_N or self.r not in _R or self.p not in _P:
            raise BackupCryptoError()


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    """What the header says, before anything is decrypted (which protector to ask for)."""

    protector: int
    scrypt: ScryptParams | None = None
    token_label: str | None = None
    key_label: str | None = None


class BackupProtector(Protocol):
    """Turns a payload into a sealed ``coffer-kms-backup/1`` file and back.

    ``seal`` returns the whole file. ``open`` returns the payload or raises
    ``BackupCryptoError`` for any failure, never partial or unauthenticated bytes.
    """

    def seal(self, payload: bytes) -> bytes: ...

    def open(self, data: bytes) -> bytes: ...


def _seal(header: bytes, key: bytes, payload: bytes, nonce: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a backup payload is at most {MAX_PAYLOAD} bytes")
    header += nonce
    return header + AEADKey(key).seal(nonce, payload, header)


def _open(data: bytes, header_len: int, key: bytes) -> bytes:
    header = data[:header_len]
    try:
        return AEADKey(key).open(header[-NONCE_SIZE:], data[header_len:], header)
    except CryptoError:
        raise BackupCryptoError() from None


def _label(data: bytes, i: int) -> tuple[str, int]:
    if i >= len(data) or data[i] == 0 or i + 1 + data[i] > len(data):
        raise BackupCryptoError()
    end = i + 1 + data[i]
    try:
        return data[i + 1:end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise BackupCryptoError() from None


def _encode_label(text: str) -> bytes:
    raw = text.encode("utf-8")
    if not 1 <= len(raw) <= 255:
        raise ValueError("a PKCS#11 label is 1..255 UTF-8 bytes")
    return bytes([len(raw)]) + raw


def _parse(data: bytes) -> tuple[HeaderInfo, int, bytes]:
    """(info, header length, protector-specific bytes: salt or wrap_nonce ‖ wrapped_key)."""
    if len(data) < _PREFIX or data[:len(MAGIC)] != MAGIC or data[len(MAGIC)] != VERSION:
        raise BackupCryptoError()
    kind = data[len(MAGIC) + 1]
    i = _PREFIX
    if kind == SCRYPT:
        if len(data) < i + 3 + _SALT_SIZE:
            raise BackupCryptoError()
        params = ScryptParams(data[i], data[i + 1], data[i + 2])
        params.check()
        i += 3
        extra = data[i:i + _SALT_SIZE]
        i += _SALT_SIZE
        info = HeaderInfo(SCRYPT, scrypt=params)
    elif kind == PKCS11:
        token_label, i = _label(data, i)
        key_label, i = _label(data, i)
        n = NONCE_SIZE + _KEY_SIZE + TAG_SIZE
        extra = data[i:i + n]
        i += n
        info = HeaderInfo(PKCS11, token_label=token_label, key_label=key_label)
    else:
        raise BackupCryptoError()
    i += NONCE_SIZE
    if len(data) < i + TAG_SIZE:
        raise BackupCryptoError()
    return info, i, extra


def read_header(data: bytes) -> HeaderInfo:
    """The header's protector and parameters; ``BackupCryptoError`` if it is not a
    ``coffer-kms-backup/1`` file. Nothing is authenticated yet."""
    return _parse(data)[0]


class PassphraseProtector:
    """The backup key derived from an operator passphrase with scrypt (RFC 7914)."""

    __slots__ = ("_passphrase", "_params", "_rand")

    def __init__(self, passphrase: str, *, params: ScryptParams = ScryptParams(),
                 rand: Callable[[int], bytes] = os.urandom) -> None:
        if not passphrase:
            raise ValueError("the passphrase is empty")
        params.check()
        self._passphrase = passphrase.encode("utf-8")
        self._params = params
        self._rand = rand

    def __repr__(self) -> str:
        return "PassphraseProtector(<secret>)"

    def _derive(self, salt: bytes, params: ScryptParams) -> bytes:
        return Scrypt(salt=salt, length=_KEY_SIZE, n=2**params.log2_n, r=params.r,
                      p=params.p).derive(self._passphrase)

    def seal(self, payload: bytes) -> bytes:
        salt = self._rand(_SALT_SIZE)
        p = self._params
        header = MAGIC + bytes([VERSION, SCRYPT, p.log2_n, p.r, p.p]) + salt
        return _seal(header, self._derive(salt, p), payload, self._rand(NONCE_SIZE))

    def open(self, data: bytes) -> bytes:
        info, n, salt = _parse(data)
        if info.protector != SCRYPT:
            raise BackupCryptoError()
        return _open(data, n, self._derive(salt, info.scrypt))


@dataclass(frozen=True, slots=True)
class TokenProtector:
    """The backup key wrapped by an AES key inside a PKCS#11 token (``kms.crypto.pkcs11``
    ``Token``); the key never leaves the token, so restoring needs the same token."""

    token: object = field(repr=False)
    key_label: str
    rand: Callable[[int], bytes] = field(default=os.urandom, repr=False)

    def seal(self, payload: bytes) -> bytes:
        head = (MAGIC + bytes([VERSION, PKCS11]) + _encode_label(self.token.label)
                + _encode_label(self.key_label))
        key, wrap_nonce = self.rand(_KEY_SIZE), self.rand(NONCE_SIZE)
        wrapped = self.token.encrypt_gcm(self.key_label, wrap_nonce, key, head)
        return _seal(head + wrap_nonce + wrapped, key, payload, self.rand(NONCE_SIZE))

    def open(self, data: bytes) -> bytes:
        info, n, extra = _parse(data)
        if (info.protector != PKCS11 or info.token_label != self.token.label
                or info.key_label != self.key_label):
            raise BackupCryptoError()
        head = data[:n - NONCE_SIZE - len(extra)]
        try:
            key = self.token.decrypt_gcm(self.key_label, extra[:NONCE_SIZE],
                                         extra[NONCE_SIZE:], head)
        except CryptoError:
            raise BackupCryptoError() from None
        if len(key) != _KEY_SIZE:
            raise BackupCryptoError()
        return _open(data, n, key)

