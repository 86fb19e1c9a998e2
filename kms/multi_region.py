"""Multi-Region keys: ReplicateKey and UpdatePrimaryRegion. Mixed into ``kms.service.KMS``.

A multi-Region key (CreateKey ``MultiRegion=true``, id ``mrk-`` + 32 hex digits) is a primary in
one region plus replicas in others with the same key id and the same key material
[DG/multi-region-keys-overview]. Each region keeps its own policy, description, tags, aliases,
grants and key state; material and rotation are shared, so rotating the primary rotates every
replica and a ciphertext made in one region decrypts with the related key in any other (the blob
names the key id, which is the same everywhere). Storage: ``kms.store.sqlite`` (``key_replicas``).

ReplicateKey is called in the primary's region and audited there; the replica appears in
``ReplicaRegion`` at once (AWS passes through the transient Creating state; nothing here is
asynchronous). UpdatePrimaryRegion is called on the primary and swaps roles.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kms import params as P
from kms.errors import (DisabledException, KMSInvalidStateException,
                        UnsupportedOperationException, ValidationException)
from kms.model import STATE_MESSAGE, Caller, Key, KeyState

if TYPE_CHECKING:
    from kms.service import KMS

__all__ = ["MultiRegionOps"]

MAX_DESCRIPTION = 8192


def _camel(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k[:1].lower() + k[1:]: v for k, v in d.items()}


def _primary_ready(k: Key) -> None:
    """kms-contract.md (b), ReplicateKey / UpdatePrimaryRegion rows: Enabled only."""
    if not k.metadata.multi_region:
        raise UnsupportedOperationException(f"{k.arn} is not a multi-Region key.")
    if k.metadata.is_replica:
        raise UnsupportedOperationException(
            f"{k.arn} is not a multi-Region primary key. Its primary key is in "
            f"{k.metadata.primary_region}.")
    if k.state is KeyState.DISABLED:
        raise DisabledException(f"{k.arn} is disabled.")
    if k.state is not KeyState.ENABLED:
        raise KMSInvalidStateException(f"{k.arn} {STATE_MESSAGE[k.state]}")


class MultiRegionOps:
    def _check_region(self: KMS, region: object, param: str) -> str:
        if not isinstance(region, str) or not 1 <= len(region) <= 32:
            raise ValidationException(
                f"1 validation error detected: Value at '{param}' failed to satisfy "
                "constraint: Member must have length between 1 and 32")
        if not self.region_allowed(region):
            raise ValidationException(f"{region} is not a valid region.")
        if region == self.region:
            raise ValidationException(
                f"The {param} must be different from the region of the key ({self.region}).")
        return region

    def replicate_key(self: KMS, caller: Caller, key_id: str, replica_region: str, *,
                      policy: str | None = None,
                      bypass_policy_lockout_safety_check: bool = False,
                      description: str | None = None,
                      tags: Sequence[Mapping[str, str]] | None = None) -> dict[str, Any]:
        with self._call(caller, "ReplicateKey",
                        {"keyId": P.s(key_id), "replicaRegion": P.s(replica_region),
                         "description": P.s(description)}, read_only=False) as call:
            region = self._check_region(replica_region, "replicaRegion")
            key = self._resolve(call, key_id, "ReplicateKey")
            _primary_ready(key)
            if description is not None and (not isinstance(description, str)
                                            or len(description) > MAX_DESCRIPTION):
                raise P.length_error("description", "less than or equal to", MAX_DESCRIPTION)
            pol = P.policy(policy, caller.account_id, caller,
                           bypass_policy_lockout_safety_check is True, self.principal_exists)
            tag_pairs = P.tags(tags)
            call.params["tags"] = [{"tagKey": k, "tagValue": v} for k, v in tag_pairs] or None
            # The replica starts with the primary's description unless one is given [BC].
            replica = self._store.create_replica(
                key.key_id, region, _primary_ready, now=self._clock(),
                description=key.metadata.description if description is None else description,
                policy=pol, tags=tag_pairs, policy_principals=self._policy_principals(pol))
            meta = replica.metadata.to_api()
            call.response = {"replicaKeyMetadata": _camel(meta)}
            return {"ReplicaKeyMetadata": meta, "ReplicaPolicy": pol,
                    "ReplicaTags": [{"TagKey": k, "TagValue": v} for k, v in tag_pairs]}

    def update_primary_region(self: KMS, caller: Caller, key_id: str,
                              primary_region: str) -> dict[str, Any]:
        with self._call(caller, "UpdatePrimaryRegion",
                        {"keyId": P.s(key_id), "primaryRegion": P.s(primary_region)},
                        read_only=False) as call:
            region = self._check_region(primary_region, "primaryRegion")
            key = self._resolve(call, key_id, "UpdatePrimaryRegion")
            _primary_ready(key)
            self._store.update_primary_region(key.key_id, region, _primary_ready)
            return {}
