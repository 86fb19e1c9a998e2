"""The KMS: one method per AWS operation; each resolves the key, authorizes, checks the key
state (kms-contract.md (b)), operates, and writes one audit record before returning.

Methods are synchronous (sqlite3 blocks anyway; the gateway calls them from a thread pool) and
thread-safe. Arguments are AWS's parameter names in snake_case; results are dicts shaped like
AWS responses with bytes as ``bytes`` (the JSON face base64-encodes them). Errors are
``kms.errors`` classes named by the AWS ``__type``. If the audit record cannot be written the
call fails with KMSInternalException (fail-closed).

Audit order for a state change (issue 11, finding 5): an intent record is durable before the
store commits (``KeyStore.before_commit`` -> ``_before_commit``), the outcome record follows;
see ``kms.calls``. Encoding a record cannot fail (``kms.audit.encode``).
"""
from __future__ import annotations

import copy
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kms import ciphertext as ct
from kms import context as ec
from kms import params as P
from kms.asymmetric import AsymmetricOps
from kms.audit import AuditEvent, AuditSink, TrailSink
from kms.calls import _Call, _ServiceCall
from kms.authz import aws_managed_key_policy, key_policy
from kms.iam.policy import resolve_principal_ids
from kms.grants import GrantOps, validate_grant_tokens
from kms.backends import KeyBackend, MaterialRef
from kms.backends.software import SoftwareBackend
from kms.crypto.aead import CryptoError
from kms.rootkeys import HSMSettings, open_root
from kms.custom_key_stores import CustomKeyStoreOps
from kms.errors import (AccessDeniedException, AlreadyExistsException, ConflictException,
                        DisabledException, IncorrectKeyException, InvalidAliasNameException,
                        InvalidCiphertextException, InvalidKeyUsageException,
                        KMSInternalException, KMSInvalidStateException, NotFoundException,
                        UnsupportedOperationException, ValidationException)
from kms.keyref import (RESERVED_ALIAS_PREFIX, alias_arn, key_arn, parse_key_ref,
                        validate_alias_name)
from kms.lifecycle import LifecycleOps
from kms.multi_region import MultiRegionOps
from kms.model import (STATE_MESSAGE, Caller, EncryptionAlgorithm, Key, KeyManager,
                       KeyMetadata, KeySpec, KeyState, KeyUsage, KeyVersion, Origin,
                       RotationType)
from kms.store.base import KeyStore
from kms.store.sqlite import SQLiteKeyStore

__all__ = ["KMS"]

log = logging.getLogger("coffer.kms")

MAX_PLAINTEXT = 4096
MAX_CIPHERTEXT_BLOB = 6144
MAX_DESCRIPTION = 8192
MAX_ALIASES_PER_KEY = 50
MAX_ON_DEMAND_ROTATIONS = 25
MIN_PENDING_DAYS, MAX_PENDING_DAYS, DEFAULT_PENDING_DAYS = 7, 30, 30
DAY = 86400.0
AWS_MANAGED_DESCRIPTIONS = {
    "s3": "Default key that protects my S3 objects when no other key is defined",
}
_SYM = EncryptionAlgorithm.SYMMETRIC_DEFAULT.value
_UNKNOWN_KEY_IN_BLOB = ("The ciphertext refers to a customer master key that does not exist, "
                        "does not exist in this region, or you are not allowed to access.")


_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


def _valid_region(name: str) -> bool:
    return bool(_REGION_RE.fullmatch(name))


def _camel(d: Mapping[str, Any]) -> dict[str, Any]:
    """AWS JSON names to CloudTrail's (``AWSAccountId`` -> ``aWSAccountId``, as CloudTrail)."""
    return {k[:1].lower() + k[1:]: v for k, v in d.items()}


class KMS(LifecycleOps, AsymmetricOps, CustomKeyStoreOps, GrantOps, MultiRegionOps):
    """The embedded KMS. Build with ``KMS.open(data_dir)``; ``close()`` when done."""

    # Set by the gateway: key ARN -> a warning when the key still protects data (objects whose
    # data keys it wraps). ScheduleKeyDeletion succeeds regardless, as AWS, but says so.
    deletion_probe: Callable[[str], str | None] | None = None
    # Set by the gateway, which holds the IAM users: whether a key policy's user principal ARN
    # names an existing user (checked when a policy is saved, as AWS; kms.keypolicy).
    principal_exists: Callable[[str], bool] | None = None
    # Set by the gateway: a user ARN -> the unique id of the user it names now, saved beside
    # key policies and grants so a user re-created under the name inherits nothing
    # (kms.iam.policy, "Principals saved as unique ids"). None: principals match by ARN.
    principal_id: Callable[[str], str | None] | None = None
    # Set by the gateway's metrics: called after each audited call with (operation, key spec
    # of its first key or None, AWS error __type or None). Never given a parameter value.
    call_observer: Callable[[str, str | None, str | None], None] | None = None

    def __init__(self, *, store: KeyStore, backend: KeyBackend, audit: AuditSink,
                 region: str = "us-east-1", clock: Callable[[], float] = time.time,
                 rand: Callable[[int], bytes] = os.urandom,
                 pkcs11_module: str | None = None) -> None:
        self._store = store
        self._backend = backend
        self._audit = audit
        # The state-changing call running on each thread (_Call/_ServiceCall): the store's
        # commit hook writes its intent record before the transaction commits.
        self._active = threading.local()
        store.before_commit = self._before_commit
        self.region = region
        self._clock = clock
        self._rand = rand
        self._closers: list[Callable[[], None]] = []
        self._siblings: dict[str, KMS] = {}
        self._siblings_lock = threading.Lock()
        # Regions ReplicateKey / UpdatePrimaryRegion accept (the gateway narrows it).
        self.region_allowed: Callable[[str], bool] = _valid_region
        self._init_custom_key_stores(pkcs11_module)

    @classmethod
    def open(cls, data_dir: Path, *, region: str = "us-east-1",
             clock: Callable[[], float] = time.time,
             rand: Callable[[int], bytes] = os.urandom,
             audit: AuditSink | None = None, hsm: HSMSettings | None = None) -> KMS:
        """Open (creating on first use) ``<data_dir>/kms/{root.key,kms.db}`` and the audit
        trail ``<data_dir>/audit/trail/*.jsonl`` (``kms.audit.TrailSink``). The root key
        provider is the one the data dir records (``kms.rootkeys``; ``hsm.root_provider`` picks
        it for a new data dir). ``hsm.module_path`` also serves custom key stores. Raises
        ``RootKeyError`` if the root key file is accessible by group or others, or the provider does not match, and
        ``HSMError`` if the token cannot be used."""
        data_dir = Path(data_dir)
        store = SQLiteKeyStore(data_dir / "kms" / "kms.db", region=region)
        try:
            root = open_root(data_dir, store, hsm, rand=rand)
        except BaseException:
            store.close()
            raise
        backend = SoftwareBackend(root, rand=rand)
        if audit is None:
            try:
                audit = TrailSink(data_dir / "audit")
            except BaseException:
                store.close()
                getattr(root, "close", lambda: None)()
                raise
        kms = cls(store=store, backend=backend, audit=audit, region=region, clock=clock,
                  rand=rand, pkcs11_module=hsm.module_path if hsm else None)
        if hasattr(root, "close"):
            kms._closers.append(root.close)
        return kms

    def in_region(self, region: str) -> KMS:
        """This KMS as ``region`` serves it: that region's key namespace (a key id from one
        region is NotFound in another) and ARNs, audited with that awsRegion. Siblings share
        the database, backend, audit sink and custom key stores; only the first one closes."""
        if region == self.region:
            return self
        with self._siblings_lock:
            sibling = self._siblings.get(region)
            if sibling is None:
                sibling = copy.copy(self)
                sibling.region = region
                sibling._store = self._store.for_region(region)
                self._siblings[region] = sibling
            return sibling

    def check_ready(self) -> None:
        """Raise unless the KMS can serve: its database answers a read and the root key (file,
        passphrase or PKCS#11 token) wraps and unwraps a probe. Used by ``GET /ready``; the
        probe is random, bound to its own AAD, and never stored."""
        self._store.regions()
        self._backend.self_test()

    def regions_with_keys(self) -> list[KMS]:
        """One KMS per region that holds a key (the scheduler's round)."""
        names = set(self._store.regions()) | {self.region}
        return [self.in_region(r) for r in sorted(names)]

    def close(self) -> None:
        self._close_custom_key_stores()
        for closer in self._closers:
            closer()
        self._closers = []
        self._store.close()
        self._audit.close()

    def __enter__(self) -> KMS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _deletion_warning(self, key_arn: str) -> str | None:
        if self.deletion_probe is None:
            return None
        try:
            return self.deletion_probe(key_arn)
        except Exception:  # noqa: BLE001 - a failed probe never blocks the deletion
            log.exception("deletion probe failed for %s", key_arn)
            return None

    def _uuid(self) -> str:
        return str(uuid.UUID(bytes=self._rand(16), version=4))

    def _emit(self, event: AuditEvent) -> None:
        try:
            self._audit.emit(event)
        except Exception as exc:  # noqa: BLE001 - any failure to audit fails the call
            log.error("audit write failed for %s (request %s): %s", event.event_name,
                      event.request_id, exc)
            raise KMSInternalException("The audit trail is unavailable.") from None

    def _call(self, caller: Caller, name: str, params: dict[str, Any],
              read_only: bool) -> _Call:
        return _Call(self, caller, name, dict(params), read_only)

    def _service_call(self, name: str, key: Key, now: float) -> _ServiceCall:
        return _ServiceCall(self, name, key, now)

    def _before_commit(self) -> None:
        """KeyStore.before_commit: the active call's intent is durable before any commit.
        Raises KMSInternalException (rolling the transaction back) when it cannot be."""
        call = getattr(self._active, "call", None)
        if call is not None:
            call.write_intent()

    def _resolve(self, call: _Call, key_id: object, action: str, *,
                 param: str = "keyId") -> Key:
        """Key id / key ARN / alias name / alias ARN -> authorized Key."""
        ref = parse_key_ref(key_id, self.region, param=param)
        account = ref.account_id or call.caller.account_id
        if ref.kind == "alias":
            alias = self._store.get_alias(account, ref.name)
            key = self._store.get_key(alias.target_key_id) if alias else None
            if key is None:
                raise NotFoundException(
                    f"Alias {alias_arn(self.region, account, ref.name)} is not found.")
        else:
            key = self._store.get_key(ref.name)
            if key is None or key.account_id != account:
                raise NotFoundException(
                    f"Key '{key_arn(self.region, account, ref.name)}' does not exist")
        key = self._hsm_view(key)
        call.keys.append(key)
        self._authorize(call, action, key)
        return key

    @staticmethod
    def _require_usable(key: Key, op: str) -> None:
        """The crypto-operation column of the key-state matrix (footnotes 1, 3, 5, 11, 14)."""
        if key.state is KeyState.ENABLED:
            pass
        elif key.state is KeyState.DISABLED:
            raise DisabledException(f"{key.arn} is disabled.")
        else:
            raise KMSInvalidStateException(f"{key.arn} {STATE_MESSAGE[key.state]}")
        if key.metadata.key_usage is not KeyUsage.ENCRYPT_DECRYPT:
            raise InvalidKeyUsageException(
                f"{key.arn} key usage is {key.metadata.key_usage} which is not valid for {op}.")

    @staticmethod
    def _require_not_replica(key: Key) -> None:
        # Rotation of a multi-Region key is managed from its primary, for every replica
        # (DG/multi-region-keys-manage, rotating multi-Region keys).
        if key.metadata.is_replica:
            raise UnsupportedOperationException(
                f"{key.arn} is a multi-Region replica key; manage its rotation from the "
                f"primary key in {key.metadata.primary_region}.")

    @staticmethod
    def _require_not_pending_deletion(key: Key) -> None:
        if key.state in (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION):
            raise KMSInvalidStateException(f"{key.arn} {STATE_MESSAGE[key.state]}")

    @staticmethod
    def _algorithm(value: object) -> str:
        if value not in EncryptionAlgorithm.__members__.values():
            raise ValidationException(
                f"1 validation error detected: Value '{value}' at 'encryptionAlgorithm' failed "
                "to satisfy constraint: Member must satisfy enum value set: "
                f"{[a.value for a in EncryptionAlgorithm]}")
        if value != _SYM:
            raise InvalidKeyUsageException(
                f"Algorithm {value} is incompatible with key spec SYMMETRIC_DEFAULT.")
        return _SYM

    @staticmethod
    def _plaintext(value: object) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise ValidationException("Plaintext must be bytes")
        data = bytes(value)
        if len(data) < 1:
            raise P.length_error("plaintext", "greater than or equal to", 1)
        if len(data) > MAX_PLAINTEXT:
            raise P.length_error("plaintext", "less than or equal to", MAX_PLAINTEXT)
        return data

    @staticmethod
    def _blob(value: object) -> ct.CiphertextBlob:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise ValidationException("CiphertextBlob must be bytes")
        data = bytes(value)
        if len(data) < 1:
            raise P.length_error("ciphertextBlob", "greater than or equal to", 1)
        if len(data) > MAX_CIPHERTEXT_BLOB:
            raise P.length_error("ciphertextBlob", "less than or equal to", MAX_CIPHERTEXT_BLOB)
        return ct.deserialize(data)

    @staticmethod
    def _grant_tokens(tokens: Sequence[str] | None) -> None:
        # Grants take effect at once (kms.grants); a token only has to be one we issued.
        validate_grant_tokens(tokens)

    def _seal(self, key: Key, plaintext: bytes, context: dict[str, str]) -> bytes:
        if key.metadata.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
            raise InvalidKeyUsageException(
                f"{key.arn} key spec {key.metadata.key_spec} is not valid for this operation.")
        version = key.current_version
        kv = self._store.get_version(key.key_id, version)
        if kv is None:
            raise KMSInternalException(f"{key.arn} has no material for version {version}")
        nonce = self._rand(ct.NONCE_SIZE)
        header = ct.header(key.key_id, version, nonce)
        sealed = self._backend_for(key).seal(MaterialRef(key.wrap_arn, version, kv.material), nonce,
                                    plaintext, header + ec.canonical(context))
        return header + sealed

    def _open(self, key: Key, blob: ct.CiphertextBlob, context: dict[str, str]) -> bytes:
        kv = self._store.get_version(key.key_id, blob.key_version)
        if kv is None:
            raise InvalidCiphertextException("")
        try:
            return self._backend_for(key).open(MaterialRef(key.wrap_arn, blob.key_version,
                                                           kv.material),
                                      blob.nonce, blob.ciphertext,
                                      ct.aad(blob, ec.canonical(context)))
        except CryptoError:
            raise InvalidCiphertextException("") from None

    def _blob_key(self, call: _Call, blob: ct.CiphertextBlob, key_id: object, action: str,
                  param: str) -> Key:
        """The key a blob names, checked against an optional KeyId / SourceKeyId."""
        named = self._resolve(call, key_id, action, param=param) if key_id is not None else None
        key = self._store.get_key(blob.key_id)
        if key is None:
            raise AccessDeniedException(_UNKNOWN_KEY_IN_BLOB)
        key = self._hsm_view(key)
        if named is not None and named.key_id != key.key_id:
            raise IncorrectKeyException(
                "The key ID in the request does not identify a CMK that can perform this "
                "operation.")
        if named is None:
            call.keys.append(key)
            self._authorize(call, action, key)
        return key

    # -- key lifecycle -----------------------------------------------------------------------

    def create_key(self, caller: Caller, *, description: str = "",
                   key_usage: str = "ENCRYPT_DECRYPT", key_spec: str = "SYMMETRIC_DEFAULT",
                   origin: str = "AWS_KMS", policy: str | None = None,
                   tags: Sequence[Mapping[str, str]] | None = None,
                   multi_region: bool = False,
                   bypass_policy_lockout_safety_check: bool = False,
                   custom_key_store_id: str | None = None) -> dict[str, Any]:
        params = {"description": P.s(description),
                  "keyUsage": P.s(str(key_usage)), "keySpec": P.s(str(key_spec)),
                  "origin": P.s(str(origin)),
                  "multiRegion": bool(multi_region),
                  "customKeyStoreId": P.s(custom_key_store_id)}
        with self._call(caller, "CreateKey", params, read_only=False) as call:
            self._authorize_account(call, "CreateKey")
            usage = P.enum(KeyUsage, key_usage, "keyUsage")
            spec = P.enum(KeySpec, key_spec, "keySpec")
            orig = P.enum(Origin, origin, "origin")
            self._check_key_spec(spec, usage)
            if orig is Origin.AWS_CLOUDHSM or custom_key_store_id is not None:
                self._check_hsm_key_request(caller, orig, spec, usage, multi_region,
                                            custom_key_store_id)
            elif orig not in (Origin.AWS_KMS, Origin.EXTERNAL):
                raise UnsupportedOperationException(f"Origin {orig} is not supported yet.")
            if orig is Origin.EXTERNAL and spec is not KeySpec.SYMMETRIC_DEFAULT:
                raise UnsupportedOperationException(
                    f"KeySpec {spec} is not supported for Origin {orig}.")
            if multi_region is not None and not isinstance(multi_region, bool):
                raise ValidationException("MultiRegion must be a boolean")
            if multi_region and orig is not Origin.AWS_KMS:
                raise UnsupportedOperationException(
                    f"Multi-Region keys with Origin {orig} are not supported.")
            if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
                raise P.length_error("description", "less than or equal to", MAX_DESCRIPTION)
            P.text(description, "description")
            pol = P.policy(policy, caller.account_id, caller,
                           bypass_policy_lockout_safety_check is True, self.principal_exists)
            tag_pairs = P.tags(tags)
            call.params["tags"] = [{"tagKey": k, "tagValue": v} for k, v in tag_pairs] or None
            key = self._new_key(caller.account_id, description, pol, tag_pairs,
                                KeyManager.CUSTOMER, key_spec=spec, key_usage=usage,
                                origin=orig, custom_key_store_id=custom_key_store_id,
                                multi_region=bool(multi_region))
            key = self._hsm_view(key)
            call.keys.append(key)
            meta = key.metadata.to_api()
            call.response = {"keyMetadata": _camel(meta)}
            return {"KeyMetadata": meta}

    def _policy_principals(self, policy: str, *extra: str | None
                           ) -> tuple[tuple[str, str], ...] | None:
        """The ids of the users a key policy (or a grant: ``extra``) names, resolved now, at
        save time; None without the gateway's lookup."""
        if self.principal_id is None:
            return None
        return resolve_principal_ids(key_policy(policy) if policy else None,
                                     self.principal_id, extra)

    def _new_key(self, account_id: str, description: str, policy: str,
                 tags: tuple[tuple[str, str], ...], manager: KeyManager,
                 alias: str | None = None, *, key_spec: KeySpec = KeySpec.SYMMETRIC_DEFAULT,
                 key_usage: KeyUsage = KeyUsage.ENCRYPT_DECRYPT,
                 origin: Origin = Origin.AWS_KMS,
                 custom_key_store_id: str | None = None, multi_region: bool = False) -> Key:
        # Multi-Region key ids are "mrk-" and 32 hex digits (DG/multi-region-keys-overview).
        key_id = "mrk-" + self._rand(16).hex() if multi_region else self._uuid()
        arn = key_arn(self.region, account_id, key_id)
        now = self._clock()
        meta = KeyMetadata(account_id=account_id, key_id=key_id, arn=arn, creation_date=now,
                           description=description, key_usage=key_usage,
                           key_state=KeyState.PENDING_IMPORT if origin is Origin.EXTERNAL
                           else KeyState.ENABLED, origin=origin,
                           key_manager=manager, key_spec=key_spec,
                           custom_key_store_id=custom_key_store_id, multi_region=multi_region,
                           primary_region=self.region if multi_region else None)
        if origin is Origin.EXTERNAL:   # no material until ImportKeyMaterial (kms.lifecycle)
            key = Key(metadata=meta, policy=policy, tags=tags, current_version=0,
                      policy_principals=self._policy_principals(policy))
            self._store.create_key(key, None, alias)
            return key
        key = Key(metadata=meta, policy=policy, tags=tags, current_version=1,
                  policy_principals=self._policy_principals(policy))
        if custom_key_store_id is not None:     # generated in the token (custom_key_stores)
            version = self._create_hsm_version(key)
        else:
            version = KeyVersion(key_id, 1, now, None, self._new_material(arn, 1, key_spec))
        try:
            self._store.create_key(key, version, alias)
        except BaseException:
            self._forget(key, 1)
            raise
        return key

    def get_or_create_aws_managed_key(self, caller: Caller,
                                      alias: str = "alias/aws/s3") -> dict[str, Any]:
        """DescribeKey of the account's AWS-managed key for ``alias``, created on first use
        (AWS creates ``aws/s3`` the first time S3 needs it). Race-safe: the key and its alias
        are inserted in one transaction and the loser of a race reads the winner's key.
        Audited only when it creates the key."""
        validate_alias_name(alias, allow_reserved=True)
        if not alias.startswith(RESERVED_ALIAS_PREFIX) or "/" in alias[len(RESERVED_ALIAS_PREFIX):]:
            raise InvalidAliasNameException(f"{alias} is not an AWS-managed key alias")
        existing = self._managed(caller.account_id, alias)
        if existing is not None:
            return {"KeyMetadata": existing.metadata.to_api()}
        service = alias[len(RESERVED_ALIAS_PREFIX):]
        with self._call(caller, "CreateKey", {"aliasName": alias}, read_only=False) as call:
            description = AWS_MANAGED_DESCRIPTIONS.get(
                service, f"Default key that protects my {service} data when no other key is "
                         "defined")
            try:
                key = self._new_key(caller.account_id, description,
                                    aws_managed_key_policy(caller.account_id, service,
                                                           self.region),
                                    (), KeyManager.AWS, alias=alias)
            except AlreadyExistsException:
                key = self._managed(caller.account_id, alias)
                if key is None:
                    raise
            call.keys.append(key)
            meta = key.metadata.to_api()
            call.response = {"keyMetadata": _camel(meta)}
            return {"KeyMetadata": meta}

    def _managed(self, account_id: str, alias: str) -> Key | None:
        found = self._store.get_alias(account_id, alias)
        return self._store.get_key(found.target_key_id) if found else None

    def describe_key(self, caller: Caller, key_id: str,
                     grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        with self._call(caller, "DescribeKey", {"keyId": P.s(key_id)}, read_only=True) as call:
            self._grant_tokens(grant_tokens)
            key = self._resolve(call, key_id, "DescribeKey")
            return {"KeyMetadata": key.metadata.to_api()}

    def list_keys(self, caller: Caller, *, limit: int | None = None,
                  marker: str | None = None) -> dict[str, Any]:
        with self._call(caller, "ListKeys", {"limit": P.n(limit), "marker": P.s(marker)},
                        read_only=True) as call:
            self._authorize_account(call, "ListKeys")
            n = P.limit(limit)
            keys = self._store.list_keys(caller.account_id, n + 1, P.marker(marker))
            out: dict[str, Any] = {"Keys": [{"KeyId": k.key_id, "KeyArn": k.arn}
                                            for k in keys[:n]],
                                   "Truncated": len(keys) > n}
            if len(keys) > n:
                out["NextMarker"] = keys[n - 1].key_id
            return out

    def update_key_description(self, caller: Caller, key_id: str,
                               description: str) -> dict[str, Any]:
        with self._call(caller, "UpdateKeyDescription",
                        {"keyId": P.s(key_id), "description": P.s(description)},
                        read_only=False) as call:
            if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
                raise P.length_error("description", "less than or equal to", MAX_DESCRIPTION)
            P.text(description, "description")
            key = self._resolve(call, key_id, "UpdateKeyDescription")

            def change(k: Key) -> dict[str, Any]:
                self._require_not_pending_deletion(k)
                return {"description": description}
            self._store.update_key(key.key_id, change)
            return {}

    def enable_key(self, caller: Caller, key_id: str) -> dict[str, Any]:
        return self._set_enabled(caller, key_id, "EnableKey", KeyState.ENABLED)

    def disable_key(self, caller: Caller, key_id: str) -> dict[str, Any]:
        return self._set_enabled(caller, key_id, "DisableKey", KeyState.DISABLED)

    def _set_enabled(self, caller: Caller, key_id: str, op: str,
                     state: KeyState) -> dict[str, Any]:
        with self._call(caller, op, {"keyId": P.s(key_id)}, read_only=False) as call:
            key = self._resolve(call, key_id, op)

            def change(k: Key) -> dict[str, Any]:
                if k.state not in (KeyState.ENABLED, KeyState.DISABLED, KeyState.UNAVAILABLE):
                    raise KMSInvalidStateException(f"{k.arn} {STATE_MESSAGE[k.state]}")
                return {"key_state": state}
            self._store.update_key(key.key_id, change)
            return {}

    def schedule_key_deletion(self, caller: Caller, key_id: str, *,
                              pending_window_in_days: int = DEFAULT_PENDING_DAYS
                              ) -> dict[str, Any]:
        with self._call(caller, "ScheduleKeyDeletion",
                        {"keyId": P.s(key_id), "pendingWindowInDays": pending_window_in_days
                         if isinstance(pending_window_in_days, int) else None},
                        read_only=False) as call:
            days = pending_window_in_days
            if (not isinstance(days, int) or isinstance(days, bool)
                    or not MIN_PENDING_DAYS <= days <= MAX_PENDING_DAYS):
                raise ValidationException(
                    f"PendingWindowInDays must be between {MIN_PENDING_DAYS} and "
                    f"{MAX_PENDING_DAYS}")
            key = self._resolve(call, key_id, "ScheduleKeyDeletion")
            when = self._clock() + days * DAY
            # A multi-Region primary with replicas waits in PendingReplicaDeletion; its own
            # waiting period starts when the last replica is deleted (BC ScheduleKeyDeletion).
            waits = (not key.metadata.is_replica and bool(key.metadata.replica_regions))
            state = KeyState.PENDING_REPLICA_DELETION if waits else KeyState.PENDING_DELETION

            def change(k: Key) -> dict[str, Any]:
                self._require_not_pending_deletion(k)
                return {"key_state": state, "deletion_date": None if waits else when,
                        "pending_window_days": days}
            self._store.update_key(key.key_id, change)
            call.response = {"keyId": key.arn, "keyState": state.value,
                             "pendingWindowInDays": days}
            out = {"KeyId": key.arn, "KeyState": state.value, "PendingWindowInDays": days}
            if not waits:
                call.response["deletionDate"] = P.iso(when)
                out["DeletionDate"] = when
            warning = self._deletion_warning(key.arn)
            if warning:     # the key still protects data (audit trail issue): say so
                call.response["warning"] = out["Warning"] = warning
            return out

    def cancel_key_deletion(self, caller: Caller, key_id: str) -> dict[str, Any]:
        with self._call(caller, "CancelKeyDeletion", {"keyId": P.s(key_id)},
                        read_only=False) as call:
            key = self._resolve(call, key_id, "CancelKeyDeletion")

            def change(k: Key) -> dict[str, Any]:
                if k.state not in (KeyState.PENDING_DELETION,
                                   KeyState.PENDING_REPLICA_DELETION):
                    raise KMSInvalidStateException(f"{k.arn} is not pending deletion.")
                # AWS leaves a cancelled key Disabled (BC CancelKeyDeletion), or PendingImport
                # if its imported material was deleted or expired meanwhile.
                state = (KeyState.PENDING_IMPORT if k.metadata.origin is Origin.EXTERNAL
                         and k.current_version == 0 else KeyState.DISABLED)
                return {"key_state": state, "deletion_date": None,
                        "pending_window_days": None}
            self._store.update_key(key.key_id, change)
            call.response = {"keyId": key.arn}
            return {"KeyId": key.arn}

    def apply_due_deletions(self, now: float | None = None) -> list[str]:
        """Delete keys whose DeletionDate has passed: material, versions, aliases. Each is
        audited as the service event ``DeleteKey``. Returns the deleted key ARNs."""
        now = self._clock() if now is None else now
        deleted: list[str] = []
        for key in self._store.due_deletions(now):
            if not self._deletable(key):
                continue        # its custom key store is disconnected: AWS waits too
            def still_due(k: Key) -> None:
                if k.state is not KeyState.PENDING_DELETION or (k.metadata.deletion_date or 0) > now:
                    raise KMSInvalidStateException(f"{k.arn} is not pending deletion.")
            try:
                with self._service_call("DeleteKey", key, now):
                    versions = self._store.delete_key(key.key_id, still_due, now)
            except (NotFoundException, KMSInvalidStateException):
                continue        # cancelled or deleted by someone else meanwhile
            for v in versions:
                self._forget(key, v.version)
            deleted.append(key.arn)
        return deleted

    # -- rotation ----------------------------------------------------------------------------

    def rotate_key_on_demand(self, caller: Caller, key_id: str) -> dict[str, Any]:
        with self._call(caller, "RotateKeyOnDemand", {"keyId": P.s(key_id)},
                        read_only=False) as call:
            key = self._resolve(call, key_id, "RotateKeyOnDemand")
            self._require_not_replica(key)

            def check(k: Key) -> None:
                # Type before state: a PendingImport key gets footnote 6, as EnableKeyRotation.
                if (k.metadata.key_spec is not KeySpec.SYMMETRIC_DEFAULT
                        or k.metadata.origin is not Origin.AWS_KMS):
                    raise UnsupportedOperationException(
                        f"{k.arn} does not support on-demand rotation.")
                if k.state is KeyState.DISABLED:
                    raise DisabledException(f"{k.arn} is disabled.")
                if k.state is not KeyState.ENABLED:
                    raise KMSInvalidStateException(f"{k.arn} {STATE_MESSAGE[k.state]}")
                if (k.next_rotation_date is not None
                        and k.next_rotation_date - self._clock() < 20 * 60):
                    raise ConflictException(
                        f"{k.arn} has an automatic rotation due within 20 minutes.")
            made: list[int] = []

            def record(version: int) -> bytes:
                made.append(version)
                return self._backend.generate(key.wrap_arn, version)
            try:
                self._store.add_version(key.key_id, check, record, self._clock(),
                                        RotationType.ON_DEMAND, MAX_ON_DEMAND_ROTATIONS)
            except BaseException:
                for v in made:
                    self._backend.forget(key.wrap_arn, v)
                raise
            call.response = {"keyId": key.arn}
            return {"KeyId": key.arn}

    def list_key_rotations(self, caller: Caller, key_id: str) -> dict[str, Any]:
        with self._call(caller, "ListKeyRotations", {"keyId": P.s(key_id)},
                        read_only=True) as call:
            key = self._resolve(call, key_id, "ListKeyRotations")
            rotations = [{"KeyId": key.arn, "RotationDate": v.creation_date,
                          "RotationType": v.rotation_type.value}
                         for v in self._store.list_versions(key.key_id) if v.rotation_type]
            return {"Rotations": rotations, "Truncated": False}

    # -- aliases -----------------------------------------------------------------------------

    def create_alias(self, caller: Caller, alias_name: str, target_key_id: str
                     ) -> dict[str, Any]:
        with self._call(caller, "CreateAlias",
                        {"aliasName": P.s(alias_name), "targetKeyId": P.s(target_key_id)},
                        read_only=False) as call:
            validate_alias_name(alias_name)
            key = self._alias_target(call, target_key_id, "CreateAlias")
            self._store.create_alias(caller.account_id, alias_name, key.key_id, self._clock(),
                                     self._require_not_pending_deletion, MAX_ALIASES_PER_KEY)
            return {}

    def update_alias(self, caller: Caller, alias_name: str, target_key_id: str
                     ) -> dict[str, Any]:
        with self._call(caller, "UpdateAlias",
                        {"aliasName": P.s(alias_name), "targetKeyId": P.s(target_key_id)},
                        read_only=False) as call:
            self._authorize_alias_change(call, alias_name, "UpdateAlias")
            key = self._alias_target(call, target_key_id, "UpdateAlias")
            # Footnote 10: the current target may be pending deletion, the new one may not.
            self._store.update_alias(caller.account_id, alias_name, key.key_id, self._clock(),
                                     self._require_not_pending_deletion, MAX_ALIASES_PER_KEY)
            return {}

    def _authorize_alias_change(self, call: _Call, alias_name: str, action: str) -> None:
        """An existing alias may be moved or deleted by whoever may do so on its current key."""
        account = call.caller.account_id
        validate_alias_name(alias_name)
        current = self._store.get_alias(account, alias_name)
        if current is None:
            raise NotFoundException(
                f"Alias {alias_arn(self.region, account, alias_name)} is not found.")
        key = self._store.get_key(current.target_key_id)
        if key is not None:
            call.keys.append(key)
            self._authorize(call, action, key)

    def _alias_target(self, call: _Call, target_key_id: object, action: str) -> Key:
        ref = parse_key_ref(target_key_id, self.region, param="targetKeyId")
        if ref.kind == "alias":
            raise ValidationException("TargetKeyId must be a key ID or key ARN, not an alias")
        return self._resolve(call, target_key_id, action, param="targetKeyId")

    def delete_alias(self, caller: Caller, alias_name: str) -> dict[str, Any]:
        with self._call(caller, "DeleteAlias", {"aliasName": P.s(alias_name)},
                        read_only=False) as call:
            self._authorize_alias_change(call, alias_name, "DeleteAlias")
            self._store.delete_alias(caller.account_id, alias_name)
            return {}

    def list_aliases(self, caller: Caller, *, key_id: str | None = None,
                     limit: int | None = None, marker: str | None = None) -> dict[str, Any]:
        with self._call(caller, "ListAliases",
                        {"keyId": P.s(key_id), "limit": P.n(limit), "marker": P.s(marker)},
                        read_only=True) as call:
            n = P.limit(limit)
            if key_id is None:
                self._authorize_account(call, "ListAliases")
            target = self._resolve(call, key_id, "ListAliases") if key_id is not None else None
            aliases = self._store.list_aliases(caller.account_id,
                                               target.key_id if target else None, n + 1,
                                               P.marker(marker))
            out: dict[str, Any] = {"Aliases": [a.to_api() for a in aliases[:n]],
                                   "Truncated": len(aliases) > n}
            if len(aliases) > n:
                out["NextMarker"] = aliases[n - 1].alias_name
            return out

    # -- cryptographic operations --------------------------------------------------------------

    def encrypt(self, caller: Caller, key_id: str, plaintext: bytes, *,
                encryption_context: Mapping[str, str] | None = None,
                encryption_algorithm: str = _SYM,
                grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        with self._call(caller, "Encrypt", {"keyId": P.s(key_id),
                                            "encryptionAlgorithm": P.s(encryption_algorithm)},
                        read_only=True) as call:
            context = ec.validate(encryption_context)
            call.params["encryptionContext"] = context or None
            data = self._plaintext(plaintext)
            self._grant_tokens(grant_tokens)
            key = self._resolve(call, key_id, "Encrypt")
            self._require_usable(key, "Encrypt")
            if key.metadata.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
                return self._encrypt_asymmetric(key, data, context, encryption_algorithm)
            alg = self._algorithm(encryption_algorithm)
            return {"CiphertextBlob": self._seal(key, data, context), "KeyId": key.arn,
                    "EncryptionAlgorithm": alg}

    def decrypt(self, caller: Caller, ciphertext_blob: bytes, *,
                encryption_context: Mapping[str, str] | None = None,
                key_id: str | None = None, encryption_algorithm: str = _SYM,
                grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        # CloudTrail always records encryptionAlgorithm for Decrypt (DG/ct-decrypt).
        with self._call(caller, "Decrypt", {"keyId": P.s(key_id),
                                            "encryptionAlgorithm": P.s(encryption_algorithm)},
                        read_only=True) as call:
            context = ec.validate(encryption_context)
            call.params["encryptionContext"] = context or None
            self._grant_tokens(grant_tokens)
            if encryption_algorithm != _SYM:
                # RSA ciphertexts are raw OAEP output, named by KeyId (asymmetric.py).
                return self._decrypt_asymmetric(call, ciphertext_blob, key_id, context,
                                                encryption_algorithm)
            alg = self._algorithm(encryption_algorithm)
            blob = self._blob(ciphertext_blob)
            key = self._blob_key(call, blob, key_id, "Decrypt", "keyId")
            self._require_usable(key, "Decrypt")
            return {"KeyId": key.arn, "Plaintext": self._open(key, blob, context),
                    "EncryptionAlgorithm": alg}

    def re_encrypt(self, caller: Caller, ciphertext_blob: bytes, destination_key_id: str, *,
                   source_encryption_context: Mapping[str, str] | None = None,
                   destination_encryption_context: Mapping[str, str] | None = None,
                   source_key_id: str | None = None,
                   source_encryption_algorithm: str = _SYM,
                   destination_encryption_algorithm: str = _SYM,
                   grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        with self._call(caller, "ReEncrypt", {
                "sourceKeyId": P.s(source_key_id), "destinationKeyId": P.s(destination_key_id),
                "sourceEncryptionAlgorithm": P.s(source_encryption_algorithm),
                "destinationEncryptionAlgorithm": P.s(destination_encryption_algorithm)},
                read_only=True) as call:
            src_ctx = ec.validate(source_encryption_context)
            dst_ctx = ec.validate(destination_encryption_context)
            call.params["sourceEncryptionContext"] = src_ctx or None
            call.params["destinationEncryptionContext"] = dst_ctx or None
            self._grant_tokens(grant_tokens)
            src_alg = self._algorithm(source_encryption_algorithm)
            dst_alg = self._algorithm(destination_encryption_algorithm)
            blob = self._blob(ciphertext_blob)
            src = self._blob_key(call, blob, source_key_id, "ReEncryptFrom", "sourceKeyId")
            dst = self._resolve(call, destination_key_id, "ReEncryptTo",
                                param="destinationKeyId")
            self._require_usable(src, "ReEncrypt")
            self._require_usable(dst, "ReEncrypt")
            plaintext = self._open(src, blob, src_ctx)
            return {"CiphertextBlob": self._seal(dst, plaintext, dst_ctx),
                    "SourceKeyId": src.arn, "KeyId": dst.arn,
                    "SourceEncryptionAlgorithm": src_alg,
                    "DestinationEncryptionAlgorithm": dst_alg}

    def generate_data_key(self, caller: Caller, key_id: str, *, key_spec: str | None = None,
                          number_of_bytes: int | None = None,
                          encryption_context: Mapping[str, str] | None = None,
                          grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        return self._data_key(caller, "GenerateDataKey", key_id, key_spec, number_of_bytes,
                              encryption_context, grant_tokens, with_plaintext=True)

    def generate_data_key_without_plaintext(
            self, caller: Caller, key_id: str, *, key_spec: str | None = None,
            number_of_bytes: int | None = None,
            encryption_context: Mapping[str, str] | None = None,
            grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        return self._data_key(caller, "GenerateDataKeyWithoutPlaintext", key_id, key_spec,
                              number_of_bytes, encryption_context, grant_tokens,
                              with_plaintext=False)

    def authorize_key_use(self, caller: Caller, operation: str, key_id: str, *,
                          encryption_context: Mapping[str, str] | None = None) -> str:
        """Decide, as ``caller``, a ``Decrypt`` or ``GenerateDataKey`` of ``key_id`` under
        ``encryption_context`` exactly as the operation would (key policy, grants, identity
        policies, conditions, key state and usage) without doing it; returns the key ARN.

        For a data key the caller's service already holds (S3 Bucket Keys): the key material
        is not touched. A refusal raises the operation's error and is audited as that
        operation's failed call; an allowed reuse writes no record, as AWS logs no KMS event
        when S3 reuses a Bucket Key (S3 UG, "Reducing the cost of SSE-KMS with Amazon S3
        Bucket Keys": CloudTrail shows fewer KMS events).
        """
        if operation not in ("Decrypt", "GenerateDataKey"):
            raise ValidationException(f"{operation} is not a data key use")
        params: dict[str, Any] = {"keyId": P.s(key_id)}
        params.update({"keySpec": "AES_256"} if operation == "GenerateDataKey"
                      else {"encryptionAlgorithm": _SYM})
        call = self._call(caller, operation, params, read_only=True).__enter__()
        try:
            call.params["encryptionContext"] = ec.validate(encryption_context) or None
            key = self._resolve(call, key_id, operation)
            self._require_usable(key, operation)
        except BaseException as exc:
            call.__exit__(type(exc), exc, exc.__traceback__)     # audits the refusal
            raise
        return key.arn

    def _data_key(self, caller: Caller, op: str, key_id: object, key_spec: object,
                  number_of_bytes: object, encryption_context: Mapping[str, str] | None,
                  grant_tokens: Sequence[str] | None, *, with_plaintext: bool
                  ) -> dict[str, Any]:
        with self._call(caller, op, {
                "keyId": P.s(key_id), "keySpec": P.s(key_spec),
                "numberOfBytes": number_of_bytes if isinstance(number_of_bytes, int) else None},
                read_only=True) as call:
            context = ec.validate(encryption_context)
            call.params["encryptionContext"] = context or None
            self._grant_tokens(grant_tokens)
            size = P.data_key_size(key_spec, number_of_bytes)
            key = self._resolve(call, key_id, op)
            self._require_usable(key, op)
            plaintext = self._rand(size)
            out: dict[str, Any] = {"CiphertextBlob": self._seal(key, plaintext, context),
                                   "KeyId": key.arn}
            if with_plaintext:
                out["Plaintext"] = plaintext
            return out
