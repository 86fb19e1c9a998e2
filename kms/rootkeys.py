"""Which root key wraps a data dir's key material, and moving from one to another.

Providers: ``file`` (``<data_dir>/kms/root.key``, the default) and ``pkcs11`` (an AES-256 key
generated inside a PKCS#11 token, sensitive and non-extractable; ``kms.crypto.rootkey``).
The provider in use is recorded in ``kms.db`` (table ``settings``: ``root_provider``,
``root_token_label``, ``root_key_label``; never a PIN), in the same transaction that rewraps the
data, so a crash can never leave records wrapped by one root while the data dir names another.

``migrate_root_to_pkcs11`` unwraps every root-wrapped record with the file root key and wraps
it with the token's key, all in one SQLite transaction: key versions (AES material, asymmetric
and HMAC private keys), import wrapping keys, custom key store PINs. Key versions held in an HSM
(Origin AWS_CLOUDHSM) are references and stay as they are. Then ``root.key`` is overwritten and
unlinked. If the process dies between the commit and the deletion, the next open finds the
recorded provider is ``pkcs11`` and deletes the leftover file.
Outstanding import tokens (GetParametersForImport answers) were sealed by the old root key and
stop working; ask for new import parameters.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kms.backends.software import SoftwareBackend, material_aad, private_aad
from kms.crypto.pkcs11 import Token, TokenConfig
from kms.crypto.rootkey import FileRootKey, PKCS11RootKey, RootKey, RootKeyError, secure_delete
from kms.model import CustomKeyStore, Key, KeySpec, KeyVersion, Origin
from kms.store.sqlite import SQLiteKeyStore

__all__ = ["HSMSettings", "PROVIDERS", "DEFAULT_KEY_LABEL", "open_root", "init_hsm",
           "migrate_root_to_pkcs11", "root_provider"]

log = logging.getLogger("coffer.kms")

PROVIDERS = ("file", "pkcs11")
DEFAULT_KEY_LABEL = "coffer-root"
DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True, slots=True)
class HSMSettings:
    """PKCS#11 configuration (``--pkcs11-module`` / ``COFFER_PKCS11_*``). ``root_provider`` is
    the requested root key provider (None: whatever the data dir records, else ``file``)."""

    module_path: str | None = None
    token_label: str | None = None
    pin: str | None = field(default=None, repr=False)
    key_label: str = DEFAULT_KEY_LABEL
    root_provider: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, module_path: str | None = None,
                 root_provider: str | None = None) -> HSMSettings:
        """``COFFER_PKCS11_MODULE``, ``_TOKEN``, ``_PIN`` or ``_PIN_FILE``, ``_KEY_LABEL``,
        ``COFFER_ROOT_KEY``; explicit arguments win."""
        env = os.environ if env is None else env
        pin = env.get("COFFER_PKCS11_PIN")
        pin_file = env.get("COFFER_PKCS11_PIN_FILE")
        if pin is None and pin_file:
            try:
                pin = Path(pin_file).read_text().strip()
            except OSError as exc:
                raise RootKeyError(f"cannot read COFFER_PKCS11_PIN_FILE: {exc.strerror}"
                                   ) from None
        provider = root_provider or env.get("COFFER_ROOT_KEY") or None
        if provider is not None and provider not in PROVIDERS:
            raise RootKeyError(f"unknown root key provider {provider!r} (choose from "
                               f"{', '.join(PROVIDERS)})")
        return cls(module_path=module_path or env.get("COFFER_PKCS11_MODULE") or None,
                   token_label=env.get("COFFER_PKCS11_TOKEN") or None, pin=pin,
                   key_label=env.get("COFFER_PKCS11_KEY_LABEL") or DEFAULT_KEY_LABEL,
                   root_provider=provider)

    def token_config(self, token_label: str | None = None) -> TokenConfig:
        label = token_label or self.token_label
        missing = [name for name, value in (("--pkcs11-module / COFFER_PKCS11_MODULE",
                                             self.module_path),
                                            ("COFFER_PKCS11_TOKEN", label),
                                            ("COFFER_PKCS11_PIN or COFFER_PKCS11_PIN_FILE",
                                             self.pin)) if not value]
        if missing:
            raise RootKeyError("the pkcs11 root key needs " + ", ".join(missing))
        return TokenConfig(self.module_path, label, self.pin)  # type: ignore[arg-type]


def root_provider(store: SQLiteKeyStore, root_file: Path) -> str | None:
    """The recorded provider; ``file`` for a data dir from before the record existed."""
    recorded = store.get_setting("root_provider")
    if recorded is None and (root_file.exists() or store.has_keys()):
        return "file"
    return recorded


def open_root(data_dir: Path, store: SQLiteKeyStore, hsm: HSMSettings | None, *,
              rand: Callable[[int], bytes] = os.urandom) -> RootKey:
    """The data dir's root key, recording the provider on first use. Raises ``RootKeyError``
    when the requested provider differs from the recorded one, and lets ``HSMError`` through
    (wrong PIN, token missing)."""
    hsm = hsm or HSMSettings()
    root_file = Path(data_dir) / "kms" / "root.key"
    recorded = root_provider(store, root_file)
    wanted = hsm.root_provider
    if recorded is not None and wanted is not None and wanted != recorded:
        hint = (" (move it with `coffer kms migrate-root --to pkcs11`)"
                if wanted == "pkcs11" else "")
        raise RootKeyError(f"this data dir's keys are wrapped by the {recorded} root key, "
                           f"not {wanted}{hint}")
    provider = recorded or wanted or "file"
    if provider == "file":
        root = FileRootKey.open(root_file, rand=rand)
        if store.get_setting("root_provider") is None:
            store.set_settings({"root_provider": "file"})
        return root
    token_label = store.get_setting("root_token_label") or hsm.token_label
    key_label = store.get_setting("root_key_label") or hsm.key_label
    if hsm.token_label and token_label != hsm.token_label:
        raise RootKeyError(f"this data dir's root key is in token {token_label!r}, not "
                           f"{hsm.token_label!r}")
    token = Token(hsm.token_config(token_label))
    try:
        root = PKCS11RootKey.open(token, key_label, rand=rand)
    except BaseException:
        token.close()
        raise
    if recorded is None:
        store.set_settings({"root_provider": "pkcs11", "root_token_label": token.label,
                            "root_key_label": key_label})
    if root_file.exists():
        log.warning("removing %s left over from a root key migration", root_file)
        secure_delete(root_file)
    return root


def init_hsm(hsm: HSMSettings) -> tuple[str, bool]:
    """Create the root key in the token if absent: (root key id, created)."""
    token = Token(hsm.token_config())
    try:
        created = not token.has_key(hsm.key_label)
        root = PKCS11RootKey.open(token, hsm.key_label, create=True)
        return root.key_id, created
    finally:
        token.close()


def migrate_root_to_pkcs11(data_dir: Path, hsm: HSMSettings, *, region: str = "us-east-1",
                           rand: Callable[[int], bytes] = os.urandom) -> int:
    """Rewrap everything from the file root key to the token's (creating it if absent), in one
    transaction, then securely delete ``root.key``. Returns the number of records rewrapped.
    Run with the server stopped."""
    data_dir = Path(data_dir)
    root_file = data_dir / "kms" / "root.key"
    store = SQLiteKeyStore(data_dir / "kms" / "kms.db", region=region)
    token = None
    try:
        recorded = root_provider(store, root_file)
        if recorded == "pkcs11":
            raise RootKeyError("this data dir already uses the pkcs11 root key")
        old_root = FileRootKey.open(root_file, rand=rand)
        old = SoftwareBackend(old_root, rand=rand)
        token = Token(hsm.token_config())
        new_root = PKCS11RootKey.open(token, hsm.key_label, create=True, rand=rand)
        new_root.unwrap(new_root.wrap(b"probe", b"probe"), b"probe")
        new = SoftwareBackend(new_root, rand=rand)

        def versions(key: Key, kv: KeyVersion) -> bytes | None:
            if key.metadata.origin is Origin.AWS_CLOUDHSM:
                return None
            if key.metadata.key_spec is KeySpec.SYMMETRIC_DEFAULT:
                aad = material_aad(key.wrap_arn, kv.version)
            else:
                aad = private_aad(key.wrap_arn, kv.version)
            return new_root.wrap(old_root.unwrap(kv.material, aad), aad)

        def import_keys(key_id: str, token_id: str, record: bytes) -> bytes:
            name = f"import-private/{key_id}/{token_id}"
            return new.wrap_import(name, old.unwrap_import(name, record))

        def passwords(cks: CustomKeyStore) -> bytes:
            name = f"custom-key-store/{cks.custom_key_store_id}"
            return new.wrap_secret(name, old.unwrap_secret(name, cks.password))

        n = store.rewrap_all(versions, import_keys, passwords,
                             {"root_provider": "pkcs11", "root_token_label": token.label,
                              "root_key_label": hsm.key_label})
    finally:
        store.close()
        if token is not None:
            token.close()
    secure_delete(root_file)
    return n
