"""Key lifecycle operations beyond create/enable/disable: automatic rotation, tags, key
policies, imported key material. Mixed into ``kms.service.KMS``; uses its plumbing (``_call``,
``_resolve``, ``_store``, ``_backend``, ``_clock``, ``_emit``, ``_uuid``).

Every operation resolves and authorizes the key, applies the key-state matrix
(kms-contract.md (b)) inside the store transaction that makes the change, and is audited by
``_call``. The scheduler methods (``apply_due_rotations``, ``apply_due_expirations``) write
CloudTrail ``AwsServiceEvent`` records, as ``apply_due_deletions`` does.

Import token, format ``coffer-import-token/1``: the root key's wrap (``coffer-rootwrap/1``,
versioned) of ``utf8(json({"v": 1, "t": token_id, "k": key_id, "e": parameters_valid_to}))``
under the name ``import-token``. The wrapping private key (DER PKCS#8) is kept in the store
wrapped by the root key under the name ``import-private/<key_id>/<token_id>``.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kms import params as P
from kms.audit.lookup import newest_first
from kms.audit.sinks import iter_trail
from kms.crypto import import_wrap
from kms.crypto.aead import CryptoError
from kms.errors import (DisabledException, ExpiredImportTokenException,
                        IncorrectKeyMaterialException, InvalidCiphertextException,
                        InvalidImportTokenException, InvalidMarkerException,
                        KMSInvalidStateException, LimitExceededException, NotFoundException,
                        TagException, UnsupportedOperationException, ValidationException)
from kms.model import (STATE_MESSAGE, Caller, Key, KeySpec, KeyState, KeyVersion, Origin,
                       RotationType)

if TYPE_CHECKING:
    from kms.service import KMS

__all__ = ["LifecycleOps", "MIN_ROTATION_DAYS", "MAX_ROTATION_DAYS", "DEFAULT_ROTATION_DAYS",
           "MAX_TAGS", "IMPORT_PARAMETERS_TTL"]

DAY = 86400.0
MIN_ROTATION_DAYS, MAX_ROTATION_DAYS, DEFAULT_ROTATION_DAYS = 90, 2560, 365   # [BC]
MAX_TAGS = 50                           # tags per key [DG/resource-limits]
MAX_TAGS_PAGE = 50                      # ListResourceTags Limit 1..50 [BC]
IMPORT_PARAMETERS_TTL = DAY             # "valid for 24 hours" [BC GetParametersForImport]
MAX_VALID_TO = 365 * DAY                # ValidTo at most 365 days ahead [BC ImportKeyMaterial]
_POLICY_NAME = re.compile(r"^[\w]{1,128}$")
_ALGORITHM_SPEC = ("RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256",
                   "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256", "SM2PKE")
_WRAPPING_KEY_SPEC = ("RSA_2048", "RSA_3072", "RSA_4096", "SM2")
_EXPIRES, _NO_EXPIRY = "KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"
_IMPORT_TYPES = ("NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL")
_TOKEN_NAME = "import-token"
_PENDING_DELETION = (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION)


def _invalid_state(k: Key) -> KMSInvalidStateException:
    return KMSInvalidStateException(f"{k.arn} {STATE_MESSAGE[k.state]}")


def _not_pending_deletion(k: Key) -> None:
    if k.state in _PENDING_DELETION:
        raise _invalid_state(k)


def _origin_not_valid(k: Key) -> UnsupportedOperationException:
    # Footnotes 6 and 9 of the key-state table.
    return UnsupportedOperationException(
        f"{k.arn} origin is {k.metadata.origin} which is not valid for this operation.")


def _rotatable(k: Key) -> None:
    """Automatic rotation: symmetric keys with KMS-generated material only [BC]."""
    if k.metadata.origin is not Origin.AWS_KMS:
        raise _origin_not_valid(k)
    if k.metadata.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
        raise UnsupportedOperationException(
            f"{k.arn} key spec {k.metadata.key_spec} is not valid for this operation.")


def _imported(k: Key) -> None:
    if k.metadata.origin is not Origin.EXTERNAL:
        raise _origin_not_valid(k)


def _range_error(param: str, value: object, lo: int, hi: int) -> ValidationException:
    return ValidationException(
        f"1 validation error detected: Value '{value}' at '{param}' failed to satisfy "
        f"constraint: Member must have value between {lo} and {hi}")


def _bytes_param(value: object, param: str, hi: int = 6144) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ValidationException(f"{param} must be bytes")
    data = bytes(value)
    if not 1 <= len(data) <= hi:
        raise P.length_error(param, "less than or equal to" if data else
                             "greater than or equal to", hi if data else 1)
    return data


def _timestamp(value: object, param: str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ValidationException(f"1 validation error detected: Value at '{param}' is not a "
                              "timestamp")


def _material_id(key_arn: str, material: bytes) -> str:
    """Names imported material without revealing it: a reimport must bring the same bytes
    [DG/importing-keys "reimport the same key material"]."""
    return hashlib.sha256(b"coffer-kmid/1\x00" + key_arn.encode() + b"\x00" + material
                          ).hexdigest()


# The operations GetKeyLastUsage tracks (botocore: KeyLastUsageTrackingOperation).
_TRACKED_OPERATIONS = frozenset({
    "Decrypt", "DeriveSharedSecret", "Encrypt", "GenerateDataKey", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "GenerateDataKeyWithoutPlaintext", "GenerateMac",
    "ReEncrypt", "Sign", "Verify", "VerifyMac"})


def _trail_records(sink: Any) -> tuple[Any, str]:
    """-> (the trail's records newest first, streamed; the oldest record's eventTime)."""
    inner = getattr(sink, "inner", sink)            # FailOpenSink wraps the trail
    if getattr(inner, "audit_dir", None) is not None:
        first = next(iter_trail(inner.audit_dir), {})
        return newest_first(inner.audit_dir), str(first.get("eventTime") or "")
    records = [r for r in getattr(inner, "records", ()) if r.get("eventType") != "CofferIntent"]
    records.sort(key=lambda r: r.get("eventTime", ""), reverse=True)
    return records, min((r.get("eventTime", "") for r in records), default="")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class LifecycleOps:
    """Rotation schedules, tags, key policies and imported material (AWS names)."""

    # -- automatic rotation --------------------------------------------------------------

    def enable_key_rotation(self: KMS, caller: Caller, key_id: str,
                            rotation_period_in_days: int | None = None) -> dict[str, Any]:
        days = DEFAULT_ROTATION_DAYS if rotation_period_in_days is None \
            else rotation_period_in_days
        with self._call(caller, "EnableKeyRotation", {
                "keyId": P.s(key_id), "rotationPeriodInDays": days
                if isinstance(days, int) and not isinstance(days, bool) else None},
                read_only=False) as call:
            if (not isinstance(days, int) or isinstance(days, bool)
                    or not MIN_ROTATION_DAYS <= days <= MAX_ROTATION_DAYS):
                raise _range_error("rotationPeriodInDays", days, MIN_ROTATION_DAYS,
                                   MAX_ROTATION_DAYS)
            key = self._resolve(call, key_id, "EnableKeyRotation")
            self._require_not_replica(key)
            now = self._clock()

            def change(k: Key) -> dict[str, Any]:
                self._rotation_state(k)
                if k.rotation_period_days is None or k.next_rotation_date is None:
                    due = now + days * DAY
                else:
                    # A new period counts from the last rotation, as AWS reschedules.
                    due = max(k.next_rotation_date - k.rotation_period_days * DAY + days * DAY,
                              now)
                return {"rotation_period_days": days, "next_rotation_date": due}
            self._store.update_key(key.key_id, change)
            return {}

    def disable_key_rotation(self: KMS, caller: Caller, key_id: str) -> dict[str, Any]:
        with self._call(caller, "DisableKeyRotation", {"keyId": P.s(key_id)},
                        read_only=False) as call:
            key = self._resolve(call, key_id, "DisableKeyRotation")
            self._require_not_replica(key)

            def change(k: Key) -> dict[str, Any]:
                self._rotation_state(k)
                return {"rotation_period_days": None, "next_rotation_date": None}
            self._store.update_key(key.key_id, change)
            return {}

    @staticmethod
    def _rotation_state(k: Key) -> None:
        """Enable/DisableKeyRotation column of the key-state table (footnotes 1, 3, 6, 7)."""
        _rotatable(k)
        if k.state is KeyState.DISABLED:
            raise DisabledException(f"{k.arn} is disabled.")
        if k.state not in (KeyState.ENABLED, KeyState.UPDATING):
            raise _invalid_state(k)

    def get_key_rotation_status(self: KMS, caller: Caller, key_id: str) -> dict[str, Any]:
        with self._call(caller, "GetKeyRotationStatus", {"keyId": P.s(key_id)},
                        read_only=True) as call:
            key = self._resolve(call, key_id, "GetKeyRotationStatus")
            _rotatable(key)
            if key.state is KeyState.UNAVAILABLE:
                raise _invalid_state(key)
            # While pending deletion rotation is suspended and shown as off; the setting is
            # kept and comes back on cancel [DG/rotate-keys].
            enabled = key.rotation_period_days is not None and key.state not in _PENDING_DELETION
            out: dict[str, Any] = {"KeyRotationEnabled": enabled, "KeyId": key.arn}
            if enabled:
                out["RotationPeriodInDays"] = key.rotation_period_days
                out["NextRotationDate"] = key.next_rotation_date
            return out

    def apply_due_rotations(self: KMS, now: float | None = None) -> list[str]:
        """Add a key version to every Enabled key whose NextRotationDate has passed, and
        schedule its next rotation. Each is audited as the service event ``RotateKey``.
        Disabled and pending-deletion keys wait: they rotate once enabled again if still due
        [DG/rotate-keys]. Also applies material expiries first (``apply_due_expirations``;
        the server's scheduler calls this method). Returns the rotated key ARNs."""
        now = self._clock() if now is None else now
        self.apply_due_expirations(now)
        rotated: list[str] = []
        for key in self._store.due_rotations(now):
            def still_due(k: Key) -> None:
                if (k.state is not KeyState.ENABLED or k.rotation_period_days is None
                        or (k.next_rotation_date or math.inf) > now):
                    raise KMSInvalidStateException(f"{k.arn} is not due for rotation.")

            def reschedule(k: Key) -> dict[str, Any]:
                return {"next_rotation_date": now + k.rotation_period_days * DAY}
            made: list[int] = []

            def record(version: int, arn: str = key.wrap_arn) -> bytes:
                made.append(version)
                return self._backend.generate(arn, version)
            try:
                with self._service_call("RotateKey", key, now):
                    self._store.add_version(key.key_id, still_due, record, now,
                                            RotationType.AUTOMATIC, sys.maxsize, reschedule)
            except (NotFoundException, KMSInvalidStateException):
                for v in made:
                    self._backend.forget(key.wrap_arn, v)
                continue        # disabled, deleted or rotated by someone else meanwhile
            except BaseException:
                for v in made:
                    self._backend.forget(key.wrap_arn, v)
                raise
            rotated.append(key.arn)
        return rotated

    # -- tags ----------------------------------------------------------------------------

    def tag_resource(self: KMS, caller: Caller, key_id: str,
                     tags: Sequence[Mapping[str, str]]) -> dict[str, Any]:
        with self._call(caller, "TagResource", {"keyId": P.s(key_id)},
                        read_only=False) as call:
            if not isinstance(tags, Sequence) or isinstance(tags, (str, bytes)):
                raise TagException("Tags must be a list of {TagKey, TagValue}.")
            pairs = P.tags(tags)
            call.params["tags"] = [{"tagKey": k, "tagValue": v} for k, v in pairs] or None
            key = self._resolve(call, key_id, "TagResource")

            def change(k: Key) -> dict[str, Any]:
                _not_pending_deletion(k)
                merged = dict(k.tags)
                merged.update(pairs)
                if len(merged) > MAX_TAGS:
                    raise LimitExceededException(
                        f"The request was rejected because {k.arn} would have more than "
                        f"{MAX_TAGS} tags.")
                return {"tags": tuple(merged.items())}
            self._store.update_key(key.key_id, change)
            return {}

    def untag_resource(self: KMS, caller: Caller, key_id: str,
                       tag_keys: Sequence[str]) -> dict[str, Any]:
        with self._call(caller, "UntagResource", {"keyId": P.s(key_id)},
                        read_only=False) as call:
            if not isinstance(tag_keys, Sequence) or isinstance(tag_keys, (str, bytes)):
                raise TagException("TagKeys must be a list of tag keys.")
            for t in tag_keys:
                if not isinstance(t, str) or not 1 <= len(t) <= 128:
                    raise TagException("TagKey must be 1 to 128 characters.")
                if t.startswith("aws:"):
                    raise TagException("Tag keys beginning with 'aws:' are reserved.")
            call.params["tagKeys"] = P.strs(list(tag_keys))
            key = self._resolve(call, key_id, "UntagResource")
            drop = set(tag_keys)

            def change(k: Key) -> dict[str, Any]:
                _not_pending_deletion(k)
                return {"tags": tuple((n, v) for n, v in k.tags if n not in drop)}
            self._store.update_key(key.key_id, change)
            return {}

    def get_key_last_usage(self: KMS, caller: Caller, key_id: str) -> dict[str, Any]:
        """The last successful cryptographic operation with the key, read from the audit
        trail (every call is recorded there before it returns). TrackingStartDate is when the
        trail's oldest record was written, or the key's creation if later."""
        with self._call(caller, "GetKeyLastUsage", {"keyId": P.s(key_id)},
                        read_only=True) as call:
            key = self._resolve(call, key_id, "GetKeyLastUsage")
            # Newest first and stop at the first match: memory stays bounded (issue 11).
            records, oldest = _trail_records(self._audit)
            last = None
            for rec in records:
                if (rec.get("eventName") in _TRACKED_OPERATIONS and not rec.get("errorCode")
                        and any(r.get("ARN") == key.arn for r in rec.get("resources") or ())):
                    last = rec
                    break
            created = float(key.metadata.creation_date)
            tracking = max(created, _epoch(oldest) if oldest else created)
            out: dict[str, Any] = {"KeyId": key.arn, "KeyCreationDate": created,
                                   "TrackingStartDate": tracking}
            if last is not None:
                out["KeyLastUsage"] = {
                    "Operation": last["eventName"], "Timestamp": _epoch(last["eventTime"]),
                    "CloudTrailEventId": last.get("eventID", ""),
                    "KmsRequestId": last.get("requestID", "")}
            return out

    def list_resource_tags(self: KMS, caller: Caller, key_id: str, *, limit: int | None = None,
                           marker: str | None = None) -> dict[str, Any]:
        with self._call(caller, "ListResourceTags",
                        {"keyId": P.s(key_id), "limit": P.n(limit), "marker": P.s(marker)},
                        read_only=True) as call:
            n = MAX_TAGS_PAGE if limit is None else limit
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_TAGS_PAGE:
                raise _range_error("limit", limit, 1, MAX_TAGS_PAGE)
            key = self._resolve(call, key_id, "ListResourceTags")
            start = self._offset(marker, len(key.tags))
            page = key.tags[start:start + n]
            out: dict[str, Any] = {"Tags": [{"TagKey": k, "TagValue": v} for k, v in page],
                                   "Truncated": start + n < len(key.tags)}
            if out["Truncated"]:
                out["NextMarker"] = str(start + n)
            return out

    @staticmethod
    def _offset(marker: object, size: int) -> int:
        if marker is None:
            return 0
        P.marker(marker)
        if not isinstance(marker, str) or not marker.isdigit() or int(marker) > size:
            raise InvalidMarkerException("The marker is invalid.")
        return int(marker)

    # -- key policies --------------------------------------------------------------------

    @staticmethod
    def _policy_name(name: object) -> None:
        if not isinstance(name, str) or not _POLICY_NAME.match(name):
            raise ValidationException(
                f"1 validation error detected: Value '{name}' at 'policyName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: [\\w]+")
        if name != "default":
            raise NotFoundException(f"No such policy exists: {name}")

    def get_key_policy(self: KMS, caller: Caller, key_id: str,
                       policy_name: str = "default") -> dict[str, Any]:
        # The response (the policy) is not logged [DG/logging-using-cloudtrail].
        with self._call(caller, "GetKeyPolicy",
                        {"keyId": P.s(key_id), "policyName": P.s(policy_name)},
                        read_only=True) as call:
            key = self._resolve(call, key_id, "GetKeyPolicy")
            self._policy_name(policy_name)
            return {"Policy": key.policy, "PolicyName": "default"}

    def put_key_policy(self: KMS, caller: Caller, key_id: str, policy: str,
                       policy_name: str = "default",
                       bypass_policy_lockout_safety_check: bool = False) -> dict[str, Any]:
        with self._call(caller, "PutKeyPolicy", {
                "keyId": P.s(key_id), "policyName": P.s(policy_name), "policy": P.s(policy),
                "bypassPolicyLockoutSafetyCheck": bypass_policy_lockout_safety_check is True},
                read_only=False) as call:
            key = self._resolve(call, key_id, "PutKeyPolicy")
            self._policy_name(policy_name)
            doc = P.policy(policy, caller.account_id, caller,
                           bypass_policy_lockout_safety_check is True, self.principal_exists)
            ids = self._policy_principals(doc)
            self._store.update_key(key.key_id, lambda k: {"policy": doc,
                                                          "policy_principals": ids})
            return {}

    def list_key_policies(self: KMS, caller: Caller, key_id: str, *, limit: int | None = None,
                          marker: str | None = None) -> dict[str, Any]:
        with self._call(caller, "ListKeyPolicies",
                        {"keyId": P.s(key_id), "limit": P.n(limit), "marker": P.s(marker)},
                        read_only=True) as call:
            P.limit(limit)
            start = self._offset(marker, 1)
            self._resolve(call, key_id, "ListKeyPolicies")
            names = ["default"][start:]
            return {"PolicyNames": names, "Truncated": False}

    # -- imported key material -----------------------------------------------------------

    def get_parameters_for_import(self: KMS, caller: Caller, key_id: str,
                                  wrapping_algorithm: str,
                                  wrapping_key_spec: str) -> dict[str, Any]:
        with self._call(caller, "GetParametersForImport", {
                "keyId": P.s(key_id), "wrappingAlgorithm": P.s(wrapping_algorithm),
                "wrappingKeySpec": P.s(wrapping_key_spec)}, read_only=True) as call:
            self._one_of(wrapping_algorithm, _ALGORITHM_SPEC, "wrappingAlgorithm")
            self._one_of(wrapping_key_spec, _WRAPPING_KEY_SPEC, "wrappingKeySpec")
            if wrapping_key_spec not in import_wrap.WRAPPING_KEY_BITS:
                raise UnsupportedOperationException(
                    f"WrappingKeySpec {wrapping_key_spec} is not supported in this region.")
            if wrapping_algorithm not in import_wrap.WRAPPING_ALGORITHMS:
                # RSAES_PKCS1_V1_5 was withdrawn by AWS (2023); SM2PKE is China-only.
                raise UnsupportedOperationException(
                    f"WrappingAlgorithm {wrapping_algorithm} is not supported.")
            key = self._resolve(call, key_id, "GetParametersForImport")
            self._import_state(key)
            now = self._clock()
            valid_to = now + IMPORT_PARAMETERS_TTL
            pair = import_wrap.generate(wrapping_key_spec)
            token_id = self._uuid()
            private = self._backend.wrap_import(
                f"import-private/{key.key_id}/{token_id}", pair.private_der)
            token = self._backend.wrap_import(_TOKEN_NAME, json.dumps(
                {"v": 1, "t": token_id, "k": key.key_id, "e": valid_to}).encode())
            self._store.put_import_token(token_id, key.key_id, wrapping_algorithm,
                                         wrapping_key_spec, private, valid_to, now,
                                         self._import_state)
            return {"KeyId": key.arn, "ImportToken": token, "PublicKey": pair.public_der,
                    "ParametersValidTo": valid_to}

    @staticmethod
    def _one_of(value: object, allowed: Sequence[str], param: str) -> None:
        if value not in allowed:
            raise ValidationException(
                f"1 validation error detected: Value '{value}' at '{param}' failed to satisfy "
                f"constraint: Member must satisfy enum value set: {list(allowed)}")

    @staticmethod
    def _import_state(k: Key) -> None:
        """GetParametersForImport / ImportKeyMaterial column (footnotes 8, 9, 14, 15)."""
        _imported(k)
        if k.state not in (KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_IMPORT):
            raise _invalid_state(k)

    def import_key_material(self: KMS, caller: Caller, key_id: str, import_token: bytes,
                            encrypted_key_material: bytes, valid_to: object = None,
                            expiration_model: str | None = None,
                            import_type: str | None = None,
                            key_material_description: str | None = None,
                            key_material_id: str | None = None) -> dict[str, Any]:
        with self._call(caller, "ImportKeyMaterial", {
                "keyId": P.s(key_id), "expirationModel": P.s(expiration_model),
                "importType": P.s(import_type)}, read_only=False) as call:
            token = _bytes_param(import_token, "importToken")
            blob = _bytes_param(encrypted_key_material, "encryptedKeyMaterial")
            if import_type is not None:
                self._one_of(import_type, _IMPORT_TYPES, "importType")
            model = expiration_model or (_NO_EXPIRY if valid_to is None else _EXPIRES)
            self._one_of(model, (_EXPIRES, _NO_EXPIRY), "expirationModel")
            now = self._clock()
            expires: float | None = None
            if model == _EXPIRES:
                if valid_to is None:
                    raise ValidationException(
                        "A validTo date must be set if the ExpirationModel is "
                        "KEY_MATERIAL_EXPIRES")
                expires = _timestamp(valid_to, "validTo")
                if not now < expires <= now + MAX_VALID_TO:
                    raise ValidationException(
                        "ValidTo must be a future date no more than 365 days from now.")
                call.params["validTo"] = P.iso(expires)
            elif valid_to is not None:
                raise ValidationException(
                    "ValidTo must not be set when the ExpirationModel is "
                    "KEY_MATERIAL_DOES_NOT_EXPIRE")
            key = self._resolve(call, key_id, "ImportKeyMaterial")
            self._import_state(key)
            material = self._unwrap_import(key, token, blob, now)
            if len(material) != 32:
                raise IncorrectKeyMaterialException(
                    "The key material must be 256 bits for a SYMMETRIC_DEFAULT key.")
            mid = _material_id(key.arn, material)
            if key_material_id is not None and key_material_id != mid:
                raise IncorrectKeyMaterialException(
                    "The key material does not match the KeyMaterialId.")

            def change(k: Key) -> dict[str, Any]:
                self._import_state(k)
                if k.material_id is not None and k.material_id != mid:
                    raise IncorrectKeyMaterialException(
                        "The key material does not match the key material previously "
                        f"imported into {k.arn}.")
                state = KeyState.ENABLED if k.state is KeyState.PENDING_IMPORT else k.state
                return {"key_state": state, "current_version": 1, "expiration_model": model,
                        "valid_to": expires, "material_id": mid}
            self._store.replace_material(
                key.key_id, change,
                lambda k: KeyVersion(k.key_id, 1, now, None,
                                     self._backend.adopt(k.wrap_arn, 1, material)))
            call.response = {"keyId": key.arn, "keyMaterialId": mid}
            return {"KeyId": key.arn, "KeyMaterialId": mid}

    def _unwrap_import(self: KMS, key: Key, token: bytes, blob: bytes, now: float) -> bytes:
        try:
            claims = json.loads(self._backend.unwrap_import(_TOKEN_NAME, token))
            token_id, token_key, valid_to = claims["t"], claims["k"], float(claims["e"])
        except (CryptoError, ValueError, KeyError, TypeError):
            raise InvalidImportTokenException("The import token is invalid.") from None
        row = self._store.get_import_token(token_id) if token_key == key.key_id else None
        if row is None or row[0] != key.key_id:
            raise InvalidImportTokenException(
                f"The import token is not valid for {key.arn}.")
        if now > valid_to:
            raise ExpiredImportTokenException("The import token has expired.")
        _, algorithm, _, private, _ = row
        try:
            der = self._backend.unwrap_import(f"import-private/{key.key_id}/{token_id}",
                                              private)
            return import_wrap.unwrap(algorithm, der, blob)
        except CryptoError:
            raise InvalidCiphertextException(
                "The EncryptedKeyMaterial could not be decrypted with the import "
                "parameters.") from None

    def delete_imported_key_material(self: KMS, caller: Caller, key_id: str,
                                     key_material_id: str | None = None) -> dict[str, Any]:
        with self._call(caller, "DeleteImportedKeyMaterial", {"keyId": P.s(key_id)},
                        read_only=False) as call:
            key = self._resolve(call, key_id, "DeleteImportedKeyMaterial")
            _imported(key)
            if key_material_id is not None and key_material_id != key.material_id:
                raise NotFoundException(f"Key material {key_material_id} is not found.")
            self._drop_material(key, None)
            out = {"KeyId": key.arn}
            if key.material_id:
                out["KeyMaterialId"] = key.material_id
            return out

    def _drop_material(self: KMS, key: Key, due: float | None) -> bool:
        """Delete a key's imported material in one transaction. With ``due`` (expiry), only if
        its ValidTo is still <= due. A key pending deletion stays so; others become
        PendingImport. Returns whether material was dropped."""
        def change(k: Key) -> dict[str, Any]:
            _imported(k)
            if due is not None and (k.metadata.valid_to is None or k.metadata.valid_to > due):
                raise KMSInvalidStateException(f"{k.arn} key material has not expired.")
            if k.current_version == 0:
                return {}
            state = k.state if k.state in _PENDING_DELETION else KeyState.PENDING_IMPORT
            return {"key_state": state, "current_version": 0, "expiration_model": None,
                    "valid_to": None}
        dropped = self._store.replace_material(key.key_id, change, lambda k: None)
        for v in dropped:
            self._backend.forget(key.wrap_arn, v.version)
        return bool(dropped)

    def apply_due_expirations(self: KMS, now: float | None = None) -> list[str]:
        """Delete imported material whose ValidTo has passed; the key becomes PendingImport.
        Audited as the service event ``DeleteExpiredKeyMaterial`` [DG/ct-deleteexpired...].
        Returns the key ARNs."""
        now = self._clock() if now is None else now
        expired: list[str] = []
        for key in self._store.due_expirations(now):
            try:
                with self._service_call("DeleteExpiredKeyMaterial", key, now):
                    if not self._drop_material(key, now):
                        continue
            except (NotFoundException, KMSInvalidStateException,
                    UnsupportedOperationException):
                continue        # reimported or deleted meanwhile
            expired.append(key.arn)
        return expired
