"""Every PKCS#11 call Coffer makes (python-pkcs11), in one room.

What the token holds: 256-bit AES secret keys generated inside it (``CKA_TOKEN``,
``CKA_SENSITIVE`` true, ``CKA_EXTRACTABLE`` false, so ``CKA_ALWAYS_SENSITIVE`` and
``CKA_NEVER_EXTRACTABLE`` hold), found by ``CKA_LABEL``. What runs there: AES-256-GCM with a
caller-chosen 96-bit nonce and a 128-bit tag (``CKM_AES_GCM``, output ``ciphertext ‖ tag``,
byte-identical to ``kms.crypto.aead``), random bytes, and destroying an object.

Concurrency (reference/pkcs11-softhsm.md 2.3): python-pkcs11 calls ``C_Initialize(NULL)``, so
SoftHSM2 turns its own locking off, and two sessions used at the same time corrupt its memory.
So there is **one session per (module, token label) per process**, shared by every ``Token``
that names it, and **one lock per module** around every call. A token keeps one login state per
application (a second ``C_Login`` answers ``CKR_USER_ALREADY_LOGGED_IN`` without checking the
PIN), so a second ``Token`` for an already open token must present the same PIN, compared in
constant time, or it is refused as a wrong PIN. A lost session (``SessionHandleInvalid``,
``SessionClosed``, device removed) is reopened once and the call retried.

Tokens are looked up by label, never by slot number (SoftHSM renumbers slots on re-init).
Errors: ``HSMError`` and its subclasses; ``CryptoError`` (opaque) when a GCM tag fails, which
SoftHSM reports as ``CKR_GENERAL_ERROR``.
"""
from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field

from kms.crypto.aead import NONCE_SIZE, TAG_SIZE, CryptoError

__all__ = ["HSMError", "HSMUnavailable", "HSMTokenNotFound", "HSMBadPIN", "HSMPINLocked",
           "HSMKeyNotFound", "HSMKeyExists", "Token", "TokenConfig", "available", "token_exists",
           "KEY_BITS"]

KEY_BITS = 256


class HSMError(Exception):
    """A PKCS#11 failure other than a failed authentication tag."""


class HSMUnavailable(HSMError):
    """The module cannot be loaded or the token cannot be reached (retryable)."""


class HSMTokenNotFound(HSMError):
    """No token with that label on the module."""


class HSMBadPIN(HSMError):
    """The token refused the user PIN."""


class HSMPINLocked(HSMError):
    """The user PIN is locked after too many failures."""


class HSMKeyNotFound(HSMError):
    """No secret key with that label in the token."""


class HSMKeyExists(HSMError):
    """A key with that label already exists in the token."""


def _p11():
    try:
        import pkcs11
    except ImportError as exc:   # the optional binding is missing
        raise HSMUnavailable("python-pkcs11 is not installed (pip install python-pkcs11)"
                             ) from exc
    return pkcs11


def available(module_path: str) -> bool:
    """True when the binding is installed and ``module_path`` loads."""
    try:
        _p11().lib(module_path)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


def token_exists(module_path: str, token_label: str) -> bool:
    """Whether the module has a token with that label (no login). Raises ``HSMUnavailable``
    when the module does not load."""
    p = _p11()
    with _module_lock(module_path):
        try:
            lib = p.lib(module_path)
        except Exception as exc:  # noqa: BLE001
            raise HSMUnavailable(f"cannot load PKCS#11 module {module_path}") from exc
        try:
            lib.get_token(token_label=token_label)
            return True
        except p.NoSuchToken:
            return False


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """Which token to use and how to log in. The PIN never appears in a repr."""

    module_path: str
    token_label: str
    pin: str = field(repr=False)


class _Shared:
    """The one session of one token in this process (see the module docstring)."""

    def __init__(self, module_path: str, token_label: str, pin: str) -> None:
        self.module_path, self.token_label, self.pin = module_path, token_label, pin
        self.session = None
        self.keys: dict[str, object] = {}
        self.users = 0


_modules_lock = threading.Lock()
_module_locks: dict[str, threading.RLock] = {}
_shared: dict[tuple[str, str], _Shared] = {}


def _module_lock(path: str) -> threading.RLock:
    with _modules_lock:
        return _module_locks.setdefault(path, threading.RLock())


class Token:
    """A logged-in handle on one token. Thread-safe; ``close()`` when done."""

    def __init__(self, config: TokenConfig) -> None:
        self._cfg = config
        self._lock = _module_lock(config.module_path)
        self._closed = False
        with self._lock:
            slot = _shared.get((config.module_path, config.token_label))
            if slot is None:
                slot = _Shared(config.module_path, config.token_label, config.pin)
                self._open(slot)
                _shared[(config.module_path, config.token_label)] = slot
            elif not hmac.compare_digest(slot.pin.encode(), config.pin.encode()):
                raise HSMBadPIN("the token refused the PIN")
            slot.users += 1
            self._slot = slot

    def __repr__(self) -> str:
        return f"Token({self._cfg.token_label!r})"

    @property
    def label(self) -> str:
        return self._cfg.token_label

    # -- sessions ----------------------------------------------------------------------------

    @staticmethod
    def _open(slot: _Shared) -> None:
        p = _p11()
        try:
            lib = p.lib(slot.module_path)
        except Exception as exc:  # noqa: BLE001 - OSError, RuntimeError from the loader
            raise HSMUnavailable(f"cannot load PKCS#11 module {slot.module_path}") from exc
        try:
            token = lib.get_token(token_label=slot.token_label)
        except p.NoSuchToken:
            raise HSMTokenNotFound(f"no token labelled {slot.token_label!r}") from None
        except p.PKCS11Error as exc:
            raise HSMUnavailable(f"token {slot.token_label!r}: {type(exc).__name__}") from None
        try:
            slot.session = token.open(rw=True, user_pin=slot.pin)
        except p.PinIncorrect:
            raise HSMBadPIN("the token refused the PIN") from None
        except p.PinLocked:
            raise HSMPINLocked("the token's user PIN is locked") from None
        except (p.PinInvalid, p.PinLenRange):
            raise HSMBadPIN("the token refused the PIN") from None
        except p.PKCS11Error as exc:
            raise HSMUnavailable(f"cannot open a session on {slot.token_label!r}: "
                                 f"{type(exc).__name__}") from None
        slot.keys = {}

    def _run(self, fn):
        """Run ``fn(session)`` under the module lock; reopen a lost session once."""
        p = _p11()
        lost = (p.SessionHandleInvalid, p.SessionClosed, p.DeviceRemoved, p.TokenNotPresent,
                p.DeviceError, p.UserNotLoggedIn, p.ObjectHandleInvalid, p.KeyHandleInvalid)
        with self._lock:
            if self._closed:
                raise HSMUnavailable("token handle is closed")
            for attempt in (0, 1):
                if self._slot.session is None:
                    self._open(self._slot)
                try:
                    return fn(self._slot.session)
                except lost:
                    self._drop_session()
                    if attempt:
                        raise HSMUnavailable(f"lost the session to {self.label!r}") from None

    def _drop_session(self) -> None:
        session, self._slot.session, self._slot.keys = self._slot.session, None, {}
        if session is not None:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - it is already gone
                pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._slot.users -= 1
            if self._slot.users == 0:
                _shared.pop((self._slot.module_path, self._slot.token_label), None)
                self._drop_session()

    def __enter__(self) -> Token:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys --------------------------------------------------------------------------------

    def _find(self, session, label: str):
        p = _p11()
        key = self._slot.keys.get(label)
        if key is None:
            try:
                key = session.get_key(object_class=p.ObjectClass.SECRET_KEY,
                                      key_type=p.KeyType.AES, label=label)
            except p.NoSuchKey:
                raise HSMKeyNotFound(f"no AES key labelled {label!r}") from None
            except p.MultipleObjectsReturned:
                raise HSMError(f"several keys labelled {label!r}") from None
            self._slot.keys[label] = key
        return key

    def has_key(self, label: str) -> bool:
        def run(session):
            try:
                self._find(session, label)
                return True
            except HSMKeyNotFound:
                return False
        return self._run(run)

    def generate_key(self, label: str) -> None:
        """A 256-bit AES key that never leaves the token. Raises ``HSMKeyExists``."""
        p = _p11()
        A = p.Attribute

        def run(session):
            try:
                self._find(session, label)
                raise HSMKeyExists(f"a key labelled {label!r} exists")
            except HSMKeyNotFound:
                pass
            key = session.generate_key(
                p.KeyType.AES, KEY_BITS, label=label, store=True,
                template={A.TOKEN: True, A.PRIVATE: True, A.SENSITIVE: True,
                          A.EXTRACTABLE: False, A.ENCRYPT: True, A.DECRYPT: True,
                          A.WRAP: False, A.UNWRAP: False, A.SIGN: False, A.VERIFY: False,
                          A.DERIVE: False, A.MODIFIABLE: False})
            self._slot.keys[label] = key
        self._run(run)

    def destroy_key(self, label: str) -> bool:
        """Destroy the key object; False if there was none."""
        def run(session):
            try:
                key = self._find(session, label)
            except HSMKeyNotFound:
                return False
            key.destroy()
            self._slot.keys.pop(label, None)
            return True
        return self._run(run)

    def key_attributes(self, label: str) -> dict[str, bool]:
        """SENSITIVE, EXTRACTABLE, ALWAYS_SENSITIVE, NEVER_EXTRACTABLE of a key (for checks)."""
        A = _p11().Attribute
        names = ("SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE")
        return self._run(lambda s: {n: bool(self._find(s, label)[getattr(A, n)])
                                    for n in names})

    # -- operations --------------------------------------------------------------------------

    def encrypt_gcm(self, label: str, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        p = _p11()
        if len(nonce) != NONCE_SIZE:
            raise ValueError("nonce must be 12 bytes")
        param = p.GCMParams(nonce, aad, TAG_SIZE * 8)
        return bytes(self._run(lambda s: self._find(s, label).encrypt(
            plaintext, mechanism=p.Mechanism.AES_GCM, mechanism_param=param)))

    def decrypt_gcm(self, label: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Raises ``CryptoError`` when the tag does not verify (SoftHSM: GeneralError)."""
        p = _p11()
        if len(nonce) != NONCE_SIZE or len(ciphertext) < TAG_SIZE:
            raise CryptoError()
        param = p.GCMParams(nonce, aad, TAG_SIZE * 8)

        def run(session):
            try:
                return bytes(self._find(session, label).decrypt(
                    ciphertext, mechanism=p.Mechanism.AES_GCM, mechanism_param=param))
            except (p.GeneralError, p.EncryptedDataInvalid, p.EncryptedDataLenRange,
                    p.DataInvalid, p.DataLenRange, p.FunctionFailed):
                raise CryptoError() from None
        return self._run(run)

    def random(self, n: int) -> bytes:
        return bytes(self._run(lambda s: s.generate_random(n * 8)))
