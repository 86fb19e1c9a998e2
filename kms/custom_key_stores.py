"""CloudHSM-style custom key stores (Origin AWS_CLOUDHSM) over PKCS#11. Mixed into
``kms.service.KMS``; uses its plumbing (``_call``, ``_resolve``, ``_store``, ``_backend``).

The mapping to AWS (DG/keystore-cloudhsm): a key store's ``CloudHsmClusterId`` is the label of a
PKCS#11 token on the module the server was given (``--pkcs11-module``); ``KeyStorePassword`` is
the token's user PIN (the ``kmsuser`` password in AWS), stored only sealed by the root key;
``TrustAnchorCertificate`` must be a PEM certificate and is recorded as given.

Connection states as AWS: a new store is DISCONNECTED; ConnectCustomKeyStore logs in to the
token and leaves it CONNECTED, or FAILED with a ConnectionErrorCode (INVALID_CREDENTIALS,
CLUSTER_NOT_FOUND, USER_LOCKED_OUT, NETWORK_ERRORS, INTERNAL_ERROR). Connecting runs
synchronously here, so CONNECTING is never observed. Update and Delete need DISCONNECTED; a
FAILED store must be disconnected before it is connected again. While a store is not
CONNECTED its keys read as ``Unavailable`` (their recorded state is kept and comes back on
reconnect) and every cryptographic use fails with KMSInvalidStateException.

Keys in a store: AES-256 generated in the token (sensitive, non-extractable, label = key ARN),
symmetric ENCRYPT_DECRYPT only, no rotation, no multi-Region, no import (as AWS). Their
``key_versions.material`` is a ``coffer-hsm-ref/1`` reference (kms.backends.pkcs11). Deleting
such a key destroys the token object at the deletion date; while the store is disconnected the
deletion waits.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import re
import threading
from typing import TYPE_CHECKING, Any

from kms import params as P
from kms.backends.base import KeyBackend
from kms.backends.pkcs11 import HSMBackend
from kms.crypto import pkcs11 as hsm
from kms.errors import (AlreadyExistsException, CloudHsmClusterInUseException,
                        CloudHsmClusterNotFoundException, CustomKeyStoreHasCMKsException,
                        CustomKeyStoreInvalidStateException, CustomKeyStoreNameInUseException,
                        CustomKeyStoreNotFoundException, IncorrectTrustAnchorException,
                        KMSInternalException, KMSInvalidStateException,
                        LimitExceededException, NotFoundException,
                        UnsupportedOperationException, ValidationException)
from kms.model import (Caller, ConnectionState, CustomKeyStore, Key, KeySpec, KeyState,
                       KeyUsage, KeyVersion, Origin)

if TYPE_CHECKING:
    from kms.service import KMS

__all__ = ["CustomKeyStoreOps"]

log = logging.getLogger("coffer.kms")

_NAME_RE = re.compile(r"^[a-zA-Z0-9:/_\s.-]{1,256}$")
_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*"
                      r"-----END CERTIFICATE-----")
MIN_PIN, MAX_PIN = 7, 32
MAX_STORES = 10
_DISCONNECTED = ConnectionState.DISCONNECTED
_CONNECTED = ConnectionState.CONNECTED
_FAILED = ConnectionState.FAILED


def _secret_name(store_id: str) -> str:
    return f"custom-key-store/{store_id}"


def _error_code(exc: Exception) -> str:
    if isinstance(exc, hsm.HSMBadPIN):
        return "INVALID_CREDENTIALS"
    if isinstance(exc, hsm.HSMPINLocked):
        return "USER_LOCKED_OUT"
    if isinstance(exc, hsm.HSMTokenNotFound):
        return "CLUSTER_NOT_FOUND"
    if isinstance(exc, hsm.HSMUnavailable):
        return "NETWORK_ERRORS"
    return "INTERNAL_ERROR"


class CustomKeyStoreOps:
    """The six custom key store operations, and the HSM path of keys in them."""

    def _init_custom_key_stores(self, pkcs11_module: str | None) -> None:
        self._pkcs11_module = pkcs11_module
        self._cks_backends: dict[str, HSMBackend] = {}
        self._cks_lock = threading.RLock()

    def _close_custom_key_stores(self) -> None:
        with self._cks_lock:
            backends, self._cks_backends = self._cks_backends, {}
        for b in backends.values():
            b.token.close()

    # -- helpers used by kms.service -----------------------------------------------------------

    def _hsm_view(self: KMS, key: Key) -> Key:
        """A key in a custom key store as DescribeKey shows it: its cluster id, and
        ``Unavailable`` while the store is not connected."""
        store_id = key.metadata.custom_key_store_id
        if store_id is None:
            return key
        cks = self._store.get_custom_key_store(store_id)
        meta = dataclasses.replace(key.metadata,
                                   cloud_hsm_cluster_id=cks.cluster_id if cks else None)
        if (cks is None or cks.connection_state is not _CONNECTED) and key.state in (
                KeyState.ENABLED, KeyState.DISABLED):
            meta = dataclasses.replace(meta, key_state=KeyState.UNAVAILABLE)
        return dataclasses.replace(key, metadata=meta)

    def _backend_for(self: KMS, key: Key) -> KeyBackend:
        store_id = key.metadata.custom_key_store_id
        if store_id is None:
            return self._backend
        return self._connected(store_id, key)

    def _connected(self: KMS, store_id: str, key: Key | None = None) -> HSMBackend:
        """The backend of a CONNECTED store, logging in again after a restart."""
        with self._cks_lock:
            backend = self._cks_backends.get(store_id)
            cks = self._store.get_custom_key_store(store_id)
            if cks is None or cks.connection_state is not _CONNECTED:
                if backend is not None:
                    self._cks_backends.pop(store_id, None)
                    backend.token.close()
                what = key.arn if key is not None else store_id
                if key is not None:
                    raise KMSInvalidStateException(f"{what} is unavailable.")
                raise CustomKeyStoreInvalidStateException(
                    f"Custom key store {store_id} is not connected.")
            if backend is None:
                try:
                    backend = HSMBackend(self._login(cks))
                except hsm.HSMError as exc:
                    self._set_connection(store_id, _FAILED, _error_code(exc))
                    log.warning("custom key store %s: reconnect failed: %s", store_id,
                                _error_code(exc))
                    if key is not None:
                        raise KMSInvalidStateException(f"{key.arn} is unavailable.") from None
                    raise CustomKeyStoreInvalidStateException(
                        f"Custom key store {store_id} is not connected.") from None
                self._cks_backends[store_id] = backend
            return backend

    def _login(self: KMS, cks: CustomKeyStore) -> hsm.Token:
        if not self._pkcs11_module:
            raise hsm.HSMUnavailable("no PKCS#11 module configured (--pkcs11-module)")
        try:
            pin = self._backend.unwrap_secret(_secret_name(cks.custom_key_store_id),
                                              cks.password).decode()
        except Exception:  # noqa: BLE001 - a record that does not open is an internal error
            raise hsm.HSMError("the stored key store password does not open") from None
        return hsm.Token(hsm.TokenConfig(self._pkcs11_module, cks.cluster_id, pin))

    def _set_connection(self: KMS, store_id: str, state: ConnectionState,
                        code: str | None = None) -> None:
        self._store.update_custom_key_store(
            store_id, lambda c, n: {"connection_state": state, "connection_error_code": code})

    def _deletable(self: KMS, key: Key) -> bool:
        """A key in a custom key store is deleted only while its store is connected, so the
        token object is destroyed with it (AWS waits the same way)."""
        if key.metadata.custom_key_store_id is None:
            return True
        try:
            self._connected(key.metadata.custom_key_store_id, key)
            return True
        except (KMSInvalidStateException, CustomKeyStoreInvalidStateException):
            return False

    def _forget(self: KMS, key: Key, version: int) -> None:
        try:
            self._backend_for(key).forget(key.wrap_arn, version)
        except (hsm.HSMError, KMSInvalidStateException) as exc:
            log.error("could not destroy the token object of %s: %s", key.arn,
                      type(exc).__name__)

    def _hsm_random(self: KMS, custom_key_store_id: str, n: int) -> bytes:
        P.text(custom_key_store_id, "customKeyStoreId")
        cks = self._store.get_custom_key_store(custom_key_store_id)
        if cks is None:
            raise CustomKeyStoreNotFoundException(
                f"Custom key store {custom_key_store_id} does not exist.")
        backend = self._connected(custom_key_store_id)
        try:
            return backend.token.random(n)
        except hsm.HSMError:
            raise KMSInternalException("The HSM did not answer.") from None

    def _check_hsm_key_request(self: KMS, caller: Caller, origin: Origin, spec: KeySpec,
                               usage: KeyUsage, multi_region: bool,
                               custom_key_store_id: object) -> None:
        if origin is not Origin.AWS_CLOUDHSM:
            raise UnsupportedOperationException(
                "CustomKeyStoreId requires Origin AWS_CLOUDHSM (EXTERNAL_KEY_STORE is not "
                "supported).")
        if custom_key_store_id is None:
            raise UnsupportedOperationException(
                "Origin AWS_CLOUDHSM requires a CustomKeyStoreId.")
        if spec is not KeySpec.SYMMETRIC_DEFAULT or usage is not KeyUsage.ENCRYPT_DECRYPT:
            raise UnsupportedOperationException(
                "Keys in an AWS CloudHSM key store must be SYMMETRIC_DEFAULT ENCRYPT_DECRYPT.")
        if multi_region:
            raise UnsupportedOperationException(
                "Multi-Region keys cannot be created in a custom key store.")
        cks = self._own_store(caller, custom_key_store_id)
        if cks.connection_state is not _CONNECTED:
            raise CustomKeyStoreInvalidStateException(
                f"Custom key store {cks.custom_key_store_id} is not connected.")

    def _create_hsm_version(self: KMS, key: Key) -> KeyVersion:
        backend = self._connected(key.metadata.custom_key_store_id)  # type: ignore[arg-type]
        try:
            record = backend.generate(key.arn, 1)
        except hsm.HSMError:
            raise CustomKeyStoreInvalidStateException(
                "The key could not be generated in the HSM.") from None
        return KeyVersion(key.key_id, 1, key.metadata.creation_date, None, record)

    def _own_store(self: KMS, caller: Caller, store_id: object) -> CustomKeyStore:
        if not isinstance(store_id, str) or not store_id:
            raise ValidationException("CustomKeyStoreId must be a non-empty string")
        P.text(store_id, "customKeyStoreId")    # a lone surrogate never reaches SQLite
        cks = self._store.get_custom_key_store(store_id)
        if cks is None or cks.account_id != caller.account_id:
            raise CustomKeyStoreNotFoundException(
                f"Custom key store {store_id} does not exist.")
        return cks

    # -- validation ----------------------------------------------------------------------------

    @staticmethod
    def _cks_name(name: object) -> str:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValidationException(
                "1 validation error detected: Value at 'customKeyStoreName' failed to satisfy "
                "constraint: Member must have length between 1 and 256 and match "
                "^[a-zA-Z0-9:/_\\s.-]+$")
        return name

    @staticmethod
    def _cks_pin(pin: object) -> str:
        if not isinstance(pin, str) or not MIN_PIN <= len(pin) <= MAX_PIN:
            raise ValidationException(
                "1 validation error detected: Value at 'keyStorePassword' failed to satisfy "
                f"constraint: Member must have length between {MIN_PIN} and {MAX_PIN}")
        return pin

    @staticmethod
    def _trust_anchor(pem: object) -> str:
        if not isinstance(pem, str) or not 1 <= len(pem) <= 5000:
            raise ValidationException("TrustAnchorCertificate must be 1..5000 characters")
        m = _CERT_RE.search(pem)
        try:
            der = base64.b64decode("".join(m.group(1).split()), validate=True) if m else b""
        except binascii.Error:
            der = b""
        if len(der) < 16 or der[0] != 0x30:
            raise IncorrectTrustAnchorException(
                "The trust anchor certificate is not a PEM-encoded X.509 certificate.")
        return pem

    def _probe_cluster(self: KMS, cluster_id: object, pin: str | None = None) -> str:
        """The token must exist on the module (CloudHsmClusterNotFoundException)."""
        if not isinstance(cluster_id, str) or not 1 <= len(cluster_id) <= 32:
            raise ValidationException("CloudHsmClusterId must be 1..32 characters "
                                      "(a PKCS#11 token label)")
        if not self._pkcs11_module or not hsm.available(self._pkcs11_module):
            raise CloudHsmClusterNotFoundException(
                "No PKCS#11 module is configured on this server (--pkcs11-module).")
        if not hsm.token_exists(self._pkcs11_module, cluster_id):
            raise CloudHsmClusterNotFoundException(
                f"AWS KMS cannot find the AWS CloudHSM cluster with the specified cluster ID "
                f"{cluster_id}.") from None
        return cluster_id

    # -- the operations ------------------------------------------------------------------------

    def create_custom_key_store(self: KMS, caller: Caller, custom_key_store_name: str, *,
                                cloud_hsm_cluster_id: str | None = None,
                                trust_anchor_certificate: str | None = None,
                                key_store_password: str | None = None,
                                custom_key_store_type: str = "AWS_CLOUDHSM"
                                ) -> dict[str, Any]:
        with self._call(caller, "CreateCustomKeyStore", {
                "customKeyStoreName": P.s(custom_key_store_name),
                "cloudHsmClusterId": P.s(cloud_hsm_cluster_id),
                "customKeyStoreType": P.s(custom_key_store_type),
                "trustAnchorCertificate": P.s(trust_anchor_certificate)},
                read_only=False) as call:
            if custom_key_store_type == "EXTERNAL_KEY_STORE":
                raise UnsupportedOperationException("External key stores are not supported.")
            if custom_key_store_type != "AWS_CLOUDHSM":
                raise ValidationException(
                    f"Value '{custom_key_store_type}' at 'customKeyStoreType' failed to "
                    "satisfy constraint: Member must satisfy enum value set: "
                    "[AWS_CLOUDHSM, EXTERNAL_KEY_STORE]")
            name = self._cks_name(custom_key_store_name)
            for value, param in ((cloud_hsm_cluster_id, "cloudHsmClusterId"),
                                 (trust_anchor_certificate, "trustAnchorCertificate"),
                                 (key_store_password, "keyStorePassword")):
                if value is None:
                    raise ValidationException(
                        f"{param} is required for an AWS_CLOUDHSM custom key store.")
            pin = self._cks_pin(key_store_password)
            anchor = self._trust_anchor(trust_anchor_certificate)
            cluster = self._probe_cluster(cloud_hsm_cluster_id)
            existing = self._store.list_custom_key_stores()
            if any(c.cluster_id == cluster for c in existing):
                raise CloudHsmClusterInUseException(
                    f"The cluster {cluster} is already associated with a custom key store.")
            if sum(c.account_id == caller.account_id for c in existing) >= MAX_STORES:
                raise LimitExceededException("Too many custom key stores in this account.")
            store_id = "cks-" + self._rand(9).hex()[:17]
            record = CustomKeyStore(
                custom_key_store_id=store_id, account_id=caller.account_id, name=name,
                cluster_id=cluster, trust_anchor_certificate=anchor,
                password=self._backend.wrap_secret(_secret_name(store_id), pin.encode()),
                connection_state=_DISCONNECTED, connection_error_code=None,
                creation_date=self._clock())
            try:
                self._store.create_custom_key_store(record)
            except AlreadyExistsException:
                raise CustomKeyStoreNameInUseException(
                    f"A custom key store with the name {name} already exists.") from None
            call.response = {"customKeyStoreId": store_id}
            return {"CustomKeyStoreId": store_id}

    def describe_custom_key_stores(self: KMS, caller: Caller, *,
                                   custom_key_store_id: str | None = None,
                                   custom_key_store_name: str | None = None,
                                   limit: int | None = None,
                                   marker: str | None = None) -> dict[str, Any]:
        with self._call(caller, "DescribeCustomKeyStores", {
                "customKeyStoreId": P.s(custom_key_store_id),
                "customKeyStoreName": P.s(custom_key_store_name), "limit": P.n(limit),
                "marker": P.s(marker)}, read_only=True):
            n = P.limit(limit)
            stores = self._store.list_custom_key_stores(caller.account_id)
            if custom_key_store_id is not None:
                stores = [c for c in stores if c.custom_key_store_id == custom_key_store_id]
                if not stores:
                    raise CustomKeyStoreNotFoundException(
                        f"Custom key store {custom_key_store_id} does not exist.")
            if custom_key_store_name is not None:
                stores = [c for c in stores if c.name == custom_key_store_name]
                if not stores:
                    raise CustomKeyStoreNotFoundException(
                        f"Custom key store {custom_key_store_name} does not exist.")
            after = P.marker(marker)
            if after:
                ids = [c.custom_key_store_id for c in stores]
                stores = stores[ids.index(after) + 1:] if after in ids else []
            out: dict[str, Any] = {"CustomKeyStores": [c.to_api() for c in stores[:n]],
                                   "Truncated": len(stores) > n}
            if len(stores) > n:
                out["NextMarker"] = stores[n - 1].custom_key_store_id
            return out

    def connect_custom_key_store(self: KMS, caller: Caller,
                                 custom_key_store_id: str) -> dict[str, Any]:
        with self._call(caller, "ConnectCustomKeyStore",
                        {"customKeyStoreId": P.s(custom_key_store_id)}, read_only=False):
            cks = self._own_store(caller, custom_key_store_id)
            if cks.connection_state is _CONNECTED:
                return {}
            if cks.connection_state is not _DISCONNECTED:
                raise CustomKeyStoreInvalidStateException(
                    f"Custom key store {cks.custom_key_store_id} is "
                    f"{cks.connection_state}; disconnect it before connecting it again.")
            with self._cks_lock:
                try:
                    backend = HSMBackend(self._login(cks))
                except hsm.HSMError as exc:
                    code = _error_code(exc)
                    log.warning("custom key store %s: connect failed: %s",
                                cks.custom_key_store_id, code)
                    self._set_connection(cks.custom_key_store_id, _FAILED, code)
                    return {}
                old = self._cks_backends.pop(cks.custom_key_store_id, None)
                if old is not None:
                    old.token.close()
                self._cks_backends[cks.custom_key_store_id] = backend
                self._set_connection(cks.custom_key_store_id, _CONNECTED)
            return {}

    def disconnect_custom_key_store(self: KMS, caller: Caller,
                                    custom_key_store_id: str) -> dict[str, Any]:
        with self._call(caller, "DisconnectCustomKeyStore",
                        {"customKeyStoreId": P.s(custom_key_store_id)}, read_only=False):
            cks = self._own_store(caller, custom_key_store_id)
            with self._cks_lock:
                self._set_connection(cks.custom_key_store_id, _DISCONNECTED)
                backend = self._cks_backends.pop(cks.custom_key_store_id, None)
                if backend is not None:
                    backend.token.close()
            return {}

    def update_custom_key_store(self: KMS, caller: Caller, custom_key_store_id: str, *,
                                new_custom_key_store_name: str | None = None,
                                key_store_password: str | None = None,
                                cloud_hsm_cluster_id: str | None = None) -> dict[str, Any]:
        with self._call(caller, "UpdateCustomKeyStore", {
                "customKeyStoreId": P.s(custom_key_store_id),
                "newCustomKeyStoreName": P.s(new_custom_key_store_name),
                "cloudHsmClusterId": P.s(cloud_hsm_cluster_id)}, read_only=False):
            cks = self._own_store(caller, custom_key_store_id)
            cols: dict[str, Any] = {}
            if new_custom_key_store_name is not None:
                cols["name"] = self._cks_name(new_custom_key_store_name)
            if key_store_password is not None:
                cols["password"] = self._backend.wrap_secret(
                    _secret_name(cks.custom_key_store_id),
                    self._cks_pin(key_store_password).encode())
            if cloud_hsm_cluster_id is not None and cloud_hsm_cluster_id != cks.cluster_id:
                cols["cluster_id"] = self._probe_cluster(cloud_hsm_cluster_id)

            def change(current: CustomKeyStore, n_keys: int) -> dict[str, Any]:
                # AWS: the name may change while connected; password and cluster may not.
                if set(cols) - {"name"} and current.connection_state is not _DISCONNECTED:
                    raise CustomKeyStoreInvalidStateException(
                        f"Custom key store {current.custom_key_store_id} is not "
                        "disconnected.")
                return cols
            try:
                self._store.update_custom_key_store(cks.custom_key_store_id, change)
            except AlreadyExistsException:
                raise CustomKeyStoreNameInUseException(
                    f"A custom key store with the name {new_custom_key_store_name} already "
                    "exists.") from None
            return {}

    def delete_custom_key_store(self: KMS, caller: Caller,
                                custom_key_store_id: str) -> dict[str, Any]:
        with self._call(caller, "DeleteCustomKeyStore",
                        {"customKeyStoreId": P.s(custom_key_store_id)}, read_only=False):
            cks = self._own_store(caller, custom_key_store_id)

            def check(current: CustomKeyStore, n_keys: int) -> None:
                if n_keys:
                    raise CustomKeyStoreHasCMKsException(
                        f"Custom key store {current.custom_key_store_id} has {n_keys} KMS "
                        "keys; schedule their deletion first.")
                if current.connection_state is not _DISCONNECTED:
                    raise CustomKeyStoreInvalidStateException(
                        f"Custom key store {current.custom_key_store_id} must be "
                        "disconnected before it is deleted.")
            try:
                self._store.delete_custom_key_store(cks.custom_key_store_id, check)
            except NotFoundException:
                raise CustomKeyStoreNotFoundException(
                    f"Custom key store {custom_key_store_id} does not exist.") from None
            return {}
