"""Root keys: what wraps every key version's material before it touches disk.

``RootKey`` is the seam; ``FileRootKey`` is the default provider; ``PKCS11RootKey`` keeps the
root key in a PKCS#11 token (a sensitive, non-extractable AES-256 key; wrap and unwrap run
inside the token, Coffer never sees the key). A passphrase provider (scrypt) comes later.

File ``<data_dir>/kms/root.key``, format ``coffer-rootkey/1`` (49 bytes, mode 0600)::

    0x01 ‖ root_key_id (16 random bytes) ‖ key (32 random bytes)

Wrapped blob, format ``coffer-rootwrap/1``::

    header = 0x01 ‖ root_key_id (16) ‖ nonce (12)
    blob   = header ‖ AES-256-GCM(key, nonce, plaintext, AAD = header ‖ aad) ‖ tag (16)

Wrapped blob, format ``coffer-rootwrap/2`` (``PKCS11RootKey``)::

    root_key_id = SHA-256("coffer-pkcs11-root/1" ‖ 0x00 ‖ token label ‖ 0x00 ‖ key label)[:16]
    header = 0x02 ‖ root_key_id (16) ‖ nonce (12)
    blob   = header ‖ CKM_AES_GCM in the token (nonce, plaintext, AAD = header ‖ aad) ‖ tag (16)

The caller's ``aad`` names what is wrapped (the software backend binds key ARN and version),
so a wrapped record moved to another key or version does not unwrap.
"""
from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from kms.crypto.aead import NONCE_SIZE, TAG_SIZE, AEADKey, CryptoError

__all__ = ["RootKey", "RootKeyError", "FileRootKey", "PKCS11RootKey", "FILE_VERSION",
           "WRAP_VERSION", "PKCS11_WRAP_VERSION", "secure_delete"]

FILE_VERSION = 0x01
WRAP_VERSION = 0x01
PKCS11_WRAP_VERSION = 0x02
_ID_SIZE = 16
_KEY_SIZE = 32
_FILE_SIZE = 1 + _ID_SIZE + _KEY_SIZE
_HEADER_SIZE = 1 + _ID_SIZE + NONCE_SIZE


class RootKeyError(Exception):
    """The root key cannot be loaded safely (unsafe mode, corrupt or unknown format)."""


@runtime_checkable
class RootKey(Protocol):
    """Wraps and unwraps small secrets (key material) under a key that never leaves the provider.

    ``key_id`` names the root key (recorded so a future re-wrap knows which key sealed what).
    ``wrap`` returns a self-describing, versioned blob. ``unwrap`` raises ``CryptoError`` on any
    failure (wrong root key, tampered blob, wrong ``aad``), never returns garbage.
    """

    @property
    def key_id(self) -> str: ...

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, blob: bytes, aad: bytes) -> bytes: ...


class FileRootKey:
    """Root key held in a 0600 file. Loading refuses a file readable by group or others."""

    __slots__ = ("_id", "_aead", "_rand")

    def __init__(self, root_id: bytes, key: bytes, rand: Callable[[int], bytes]) -> None:
        self._id = root_id
        self._aead = AEADKey(key)
        self._rand = rand

    def __repr__(self) -> str:
        return f"FileRootKey({self.key_id})"

    @property
    def key_id(self) -> str:
        return "file:" + self._id.hex()

    @classmethod
    def open(cls, path: Path, *, rand: Callable[[int], bytes] = os.urandom) -> FileRootKey:
        """Load ``path``, creating it (0600, atomically) on first use."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            cls._create(path, rand)
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise RootKeyError(f"{path} is not a regular file")
        if st.st_mode & 0o077:
            raise RootKeyError(
                f"{path} has mode {stat.S_IMODE(st.st_mode):04o}; refusing to use a root key "
                "that group or others can access (chmod 600 it)")
        data = path.read_bytes()
        if len(data) != _FILE_SIZE or data[0] != FILE_VERSION:
            raise RootKeyError(f"{path}: unknown or corrupt root key format")
        return cls(data[1:1 + _ID_SIZE], data[1 + _ID_SIZE:], rand)

    @staticmethod
    def _create(path: Path, rand: Callable[[int], bytes]) -> None:
        data = bytes([FILE_VERSION]) + rand(_ID_SIZE) + rand(_KEY_SIZE)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{rand(4).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link() fails if another process won the race; theirs is the root key.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        head = bytes([WRAP_VERSION]) + self._id + self._rand(NONCE_SIZE)
        return head + self._aead.seal(head[1 + _ID_SIZE:], plaintext, head + aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        if (len(blob) < _HEADER_SIZE + TAG_SIZE or blob[0] != WRAP_VERSION
                or blob[1:1 + _ID_SIZE] != self._id):
            raise CryptoError()
        head = blob[:_HEADER_SIZE]
        return self._aead.open(head[1 + _ID_SIZE:], blob[_HEADER_SIZE:], head + aad)


class PKCS11RootKey:
    """Root key held in a PKCS#11 token (``kms.crypto.pkcs11``); only its label is known here.

    ``open`` fails with ``RootKeyError`` when the key is missing (run ``coffer kms init-hsm``)
    and lets ``HSMError`` through for an unreachable token or a wrong PIN.
    """

    __slots__ = ("_token", "_label", "_id", "_rand")

    def __init__(self, token, key_label: str, rand: Callable[[int], bytes]) -> None:
        self._token = token
        self._label = key_label
        self._id = hashlib.sha256(b"coffer-pkcs11-root/1\x00" + token.label.encode() + b"\x00"
                                  + key_label.encode()).digest()[:_ID_SIZE]
        self._rand = rand

    def __repr__(self) -> str:
        return f"PKCS11RootKey({self.key_id})"

    @property
    def key_id(self) -> str:
        return f"pkcs11:{self._token.label}/{self._label}"

    @classmethod
    def open(cls, token, key_label: str, *, create: bool = False,
             rand: Callable[[int], bytes] = os.urandom) -> PKCS11RootKey:
        if not token.has_key(key_label):
            if not create:
                raise RootKeyError(f"no root key {key_label!r} in token {token.label!r} "
                                   "(create it with `coffer kms init-hsm`)")
            token.generate_key(key_label)
        return cls(token, key_label, rand)

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        head = bytes([PKCS11_WRAP_VERSION]) + self._id + self._rand(NONCE_SIZE)
        return head + self._token.encrypt_gcm(self._label, head[1 + _ID_SIZE:], plaintext,
                                              head + aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        if (len(blob) < _HEADER_SIZE + TAG_SIZE or blob[0] != PKCS11_WRAP_VERSION
                or blob[1:1 + _ID_SIZE] != self._id):
            raise CryptoError()
        head = blob[:_HEADER_SIZE]
        return self._token.decrypt_gcm(self._label, head[1 + _ID_SIZE:], blob[_HEADER_SIZE:],
                                       head + aad)

    def close(self) -> None:
        self._token.close()


def secure_delete(path: Path) -> None:
    """Overwrite a key file with random bytes, fsync, then unlink it and fsync the directory.
    (On copy-on-write or journaling media old blocks may survive; the data dir's filesystem
    is the operator's to choose, see README.)"""
    path = Path(path)
    if not path.exists():
        return
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, os.urandom(max(size, 1)))
        os.fsync(fd)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, bytes(max(size, 1)))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
