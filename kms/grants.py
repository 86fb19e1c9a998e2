"""Grants (CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant) and the
authorization step every KMS call goes through (``_authorize``), as a mixin of ``kms.service.KMS``.

A grant covers one key and only allows: its grantee principal may perform the listed operations,
optionally only when the request's encryption context equals (``EncryptionContextEquals``) or
includes (``EncryptionContextSubset``) the constraint's pairs, keys compared case-insensitively
[DG/grants, API GrantConstraints]. A grantee holding CreateGrant through a grant may create
only grants that are equally or more restrictive: a subset of its operations, constraints at
least as strict [DG/create-grant-overview#grant-creategrant]. A retiring principal, the grantee
(when the grant lists RetireGrant) or the issuing account may retire it; key admins
(``kms:RevokeGrant`` in the key policy / IAM) revoke it. ListRetirableGrants names a principal
of the caller's own account (the grants may be on any account's keys). ``Name`` makes
CreateGrant retries idempotent. Grants live in SQLite and take effect at once, so a grant token
only has to be well-formed (``InvalidGrantTokenException`` otherwise) and is never logged or
listed. A grant whose grantee is an account root allows that root only: AWS documents no
delegation to the account's IAM principals through a grant (as the key policy's root has).
A grantee or retiring principal that is an IAM user is saved with the user's unique id and
matches only that user, never one re-created under the same name (kms.iam.policy,
"Principals saved as unique ids").

``_authorize(call, action, key)``: the key policy and identity policies decide first
(``kms.authz``); an explicit Deny there is final; otherwise, if they do not allow, a matching
grant does. The decision (policy + statement Sid, or grant id) goes into the call's audit
record as ``authorizationDecision``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kms import params as P
from kms.authz import authorize_account, decision_record, denied, evaluate_key
from kms.errors import (AccessDeniedException, DisabledException, InvalidGrantIdException,
                        KMSInvalidStateException, NotFoundException, ValidationException)
from kms.iam import Reason
from kms.iam.evaluate import names_principal
from kms.model import Caller, Key, KeySpec, KeyState

if TYPE_CHECKING:
    from kms.service import KMS, _Call

__all__ = ["GrantOps", "GRANT_OPERATIONS", "InvalidGrantIdException", "validate_grant_tokens"]

MAX_GRANTS_PER_KEY = 50000
GRANT_OPERATIONS = (
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
    "ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant",
    "DescribeKey", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac",
    "VerifyMac", "DeriveSharedSecret")
# Operations that take an encryption context, to which grant constraints apply; the context
# each reads from the call's audit parameters.
_EC_PARAM = {"Encrypt": "encryptionContext", "Decrypt": "encryptionContext",
             "GenerateDataKey": "encryptionContext",
             "GenerateDataKeyWithoutPlaintext": "encryptionContext",
             "GenerateDataKeyPair": "encryptionContext",
             "GenerateDataKeyPairWithoutPlaintext": "encryptionContext",
             "ReEncryptFrom": "sourceEncryptionContext",
             "ReEncryptTo": "destinationEncryptionContext"}
_ALWAYS = {"DescribeKey", "CreateGrant", "RetireGrant"}
_FOR_USAGE = {
    "SYMMETRIC": {"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
                  "ReEncryptFrom", "ReEncryptTo", "GenerateDataKeyPair",
                  "GenerateDataKeyPairWithoutPlaintext"},
    "ENCRYPT_DECRYPT": {"Decrypt", "Encrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"},
    "SIGN_VERIFY": {"Sign", "Verify", "GetPublicKey"},
    "GENERATE_VERIFY_MAC": {"GenerateMac", "VerifyMac"},
    "KEY_AGREEMENT": {"DeriveSharedSecret", "GetPublicKey"},
}
_PRINCIPAL = re.compile(r"^(arn:aws[a-z-]*:(iam|sts)::\d{12}:[\w+=,.@/:-]+"
                        r"|\d{12}|[a-z0-9.-]+\.amazonaws\.com)$")
_NAME = re.compile(r"^[a-zA-Z0-9:/_-]+$")
_GRANT_ID = re.compile(r"[0-9a-f]{64}")
_TOKEN_MAGIC = b"coffer-grant-token/1\x00"


def _token(grant_id: str, nonce: bytes) -> str:
    return base64.b64encode(_TOKEN_MAGIC + grant_id.encode() + b"\x00" + nonce).decode()


def _token_grant(token: str) -> str | None:
    try:
        raw = base64.b64decode(token, validate=True)
    except (ValueError, TypeError):
        return None
    if not raw.startswith(_TOKEN_MAGIC):
        return None
    gid, sep, _ = raw[len(_TOKEN_MAGIC):].partition(b"\x00")
    return gid.decode(errors="replace") if sep else None


def validate_grant_tokens(tokens: Sequence[str] | None) -> None:
    """AWS's shape limits, then each token must be one CreateGrant issued."""
    from kms.errors import InvalidGrantTokenException
    if tokens is None:
        return
    if not isinstance(tokens, (list, tuple)) or len(tokens) > 10 or any(
            not isinstance(t, str) or not 1 <= len(t) <= 8192 for t in tokens):
        raise ValidationException("GrantTokens: at most 10 tokens of 1..8192 characters")
    for t in tokens:
        if _token_grant(t) is None:
            raise InvalidGrantTokenException("The grant token is not valid.")


def _principal_account(principal: str) -> str | None:
    """The account of an IAM/STS principal ARN (``arn:aws:iam::<acct>:...``); None for a
    service principal."""
    parts = principal.split(":", 5)
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else None


def _grant_id(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def _row_to_api(row: tuple, key_arn: str) -> dict[str, Any]:
    (gid, _key_id, issuing, name, created, grantee, retiring, ops, cons) = row
    out: dict[str, Any] = {"KeyId": key_arn, "GrantId": gid, "CreationDate": float(created),
                           "GranteePrincipal": grantee, "IssuingAccount": f"arn:aws:iam::"
                           f"{issuing}:root", "Operations": json.loads(ops)}
    if name:
        out["Name"] = name
    if retiring:
        out["RetiringPrincipal"] = retiring
    if cons:
        out["Constraints"] = json.loads(cons)
    return out


def _folded(pairs: Mapping[str, str]) -> set[tuple[str, str]]:
    # In a grant constraint "the key in each key-value pair is not case sensitive, but the
    # value is case sensitive" [API GrantConstraints]; pairs are compared with keys folded.
    return {(k.lower(), v) for k, v in pairs.items()}


def _constraints_hold(constraints: Mapping[str, Any] | None,
                      context: Mapping[str, str] | None) -> bool:
    """Whether a request's encryption context satisfies a grant's constraints."""
    if not constraints:
        return True
    ctx = _folded(context or {})
    equals = constraints.get("EncryptionContextEquals")
    if equals is not None and (ctx != _folded(equals) or len(context or {}) != len(equals)):
        return False
    subset = constraints.get("EncryptionContextSubset")
    if subset is not None and not _folded(subset) <= ctx:
        return False
    return True


def _constraints_imply(child: Mapping[str, Any] | None,
                       parent: Mapping[str, Any] | None) -> bool:
    """Whether every context ``child`` allows is one ``parent`` allows: a grant created
    through a grant must be "equally restrictive or more restrictive" [DG/create-grant-
    overview#grant-creategrant]. The child may add pairs to a Subset or turn it into an
    Equals that holds those pairs, "but not the reverse"."""
    if not parent:
        return True
    child = child or {}
    equals = child.get("EncryptionContextEquals")
    if equals is not None:
        # The child allows only this one context (or none, if its own Subset is not in it).
        return _constraints_hold(parent, equals)
    if parent.get("EncryptionContextEquals") is not None:
        return False        # a Subset (or no) constraint allows more than one context
    return _folded(parent.get("EncryptionContextSubset") or {}) <= _folded(
        child.get("EncryptionContextSubset") or {})


class GrantOps:
    """Mixin for ``kms.service.KMS`` (uses ``_store``, ``_call``, ``_resolve``, ``_clock``)."""

    # -- authorization of every call -------------------------------------------------------

    @staticmethod
    def _call_context(call: _Call, action: str) -> dict[str, str] | None:
        param = _EC_PARAM.get(action, "encryptionContext")
        ctx = call.params.get(param)
        return ctx if isinstance(ctx, dict) else None

    def _authorize(self: KMS, call: _Call, action: str, key: Key) -> None:
        """Raise AccessDeniedException unless the key policy + IAM, or a grant, allow
        ``kms:<action>`` on ``key`` for the call's caller; record the decision."""
        context = self._call_context(call, action)
        extra = getattr(call, "authz_extra", None)
        decision, request = evaluate_key(call.caller, action, key, context, extra, self._clock)
        if decision.allowed:
            call.decision = decision_record(decision)
            return
        if decision.reason not in (Reason.EXPLICIT_DENY_IDENTITY,
                                   Reason.EXPLICIT_DENY_RESOURCE):
            grant = self._matching_grant(call.caller, action, key, context)
            if grant is not None:
                call.decision = decision_record(None, grant_id=grant)
                return
        call.decision = decision_record(decision)
        raise denied(decision, request)

    def _authorize_account(self: KMS, call: _Call, action: str, *, resource: str = "*",
                           account_id: str | None = None) -> None:
        """Operations on no key: an IAM user needs an identity-policy Allow on ``resource``
        (``*`` unless the operation names one, in ``account_id``)."""
        try:
            d = authorize_account(call.caller, action, account_id, clock=self._clock,
                                  resource=resource)
        except AccessDeniedException as exc:
            call.decision = decision_record(getattr(exc, "decision", None))
            raise
        call.decision = decision_record(d)

    def _names_caller(self: KMS, grant_id: str, principal: str | None,
                      caller: Caller) -> bool:
        """Whether the grant's grantee or retiring ``principal`` is the caller: a user ARN
        matches only the user whose unique id was saved with the grant (a user re-created
        under the name is another principal; kms.iam.evaluate.names_principal)."""
        if not principal:
            return False
        return names_principal(principal, caller.principal_arn,
                               getattr(caller, "user_id", None),
                               self._store.grant_principals(grant_id))

    def _matching_grant(self: KMS, caller: Caller, action: str, key: Key,
                        context: Mapping[str, str] | None,
                        child: tuple[list[str], Mapping[str, Any] | None] | None = None
                        ) -> str | None:
        """The id of a grant of ``key`` to the caller that allows ``action`` here. For a
        CreateGrant, ``child`` = (operations, constraints) of the grant being made: the
        parent must hold every one of its operations, and the child's constraints must be at
        least as strict as the parent's."""
        if action not in GRANT_OPERATIONS:
            return None
        for row in self._store.list_grants(key_id=key.key_id,
                                           grantee=caller.principal_arn):
            if not self._names_caller(row[0], row[5], caller):
                continue
            ops = json.loads(row[7])
            if action not in ops:
                continue
            cons = json.loads(row[8]) if row[8] else None
            if action in _EC_PARAM and not _constraints_hold(cons, context):
                continue
            if child is not None and not (set(child[0]) <= set(ops)
                                          and _constraints_imply(child[1], cons)):
                continue
            return row[0]
        return None

    # -- CreateGrant -----------------------------------------------------------------------

    @staticmethod
    def _check_operations(key: Key, operations: object) -> list[str]:
        if not isinstance(operations, list) or not operations or not all(
                isinstance(o, str) for o in operations):
            raise ValidationException(
                "1 validation error detected: Value null at 'operations' failed to satisfy "
                "constraint: Member must not be null")
        bad = [o for o in operations if o not in GRANT_OPERATIONS]
        if bad:
            raise ValidationException(
                f"1 validation error detected: Value '{bad}' at 'operations' failed to "
                "satisfy constraint: Member must satisfy constraint: [Member must satisfy enum "
                f"value set: {list(GRANT_OPERATIONS)}]")
        meta = key.metadata
        usage = ("SYMMETRIC" if meta.key_spec is KeySpec.SYMMETRIC_DEFAULT
                 else str(meta.key_usage))
        fits = _ALWAYS | _FOR_USAGE.get(usage, set())
        misfit = [o for o in operations if o not in fits]
        if misfit:
            raise ValidationException(
                f"Grant operations {misfit} are not valid for a KMS key with KeySpec "
                f"{meta.key_spec} and KeyUsage {meta.key_usage}.")
        return list(dict.fromkeys(operations))

    @staticmethod
    def _check_constraints(key: Key, constraints: object) -> dict[str, dict[str, str]] | None:
        if constraints is None:
            return None
        if not isinstance(constraints, Mapping) or set(constraints) - {
                "EncryptionContextEquals", "EncryptionContextSubset"}:
            raise ValidationException("Constraints may hold EncryptionContextEquals and "
                                      "EncryptionContextSubset.")
        out: dict[str, dict[str, str]] = {}
        for name, pairs in constraints.items():
            if pairs is None:
                continue
            if not isinstance(pairs, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()):
                raise ValidationException(f"{name} must map strings to strings.")
            out[name] = dict(pairs)
        if out and key.metadata.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
            raise ValidationException("Encryption context grant constraints are valid only "
                                      "for symmetric encryption KMS keys.")
        return out or None

    @staticmethod
    def _check_principal(value: object, what: str, required: bool) -> str | None:
        if value is None and not required:
            return None
        if not isinstance(value, str) or not 1 <= len(value) <= 256 \
                or not _PRINCIPAL.match(value):
            raise ValidationException(f"1 validation error detected: Value '{value}' at "
                                      f"'{what}' failed to satisfy constraint: Member must be a "
                                      "valid principal")
        if value.isdigit():
            value = f"arn:aws:iam::{value}:root"
        return value

    def create_grant(self: KMS, caller: Caller, key_id: str, grantee_principal: str,
                     operations: list[str], *, retiring_principal: str | None = None,
                     constraints: Mapping[str, Any] | None = None,
                     grant_tokens: Sequence[str] | None = None,
                     name: str | None = None) -> dict[str, Any]:
        with self._call(caller, "CreateGrant", {
                "keyId": P.s(key_id), "granteePrincipal": P.s(grantee_principal),
                "retiringPrincipal": P.s(retiring_principal),
                "operations": P.strs(operations), "constraints": P.pairs(constraints),
                "name": P.s(name)}, read_only=False) as call:
            validate_grant_tokens(grant_tokens)
            grantee = self._check_principal(grantee_principal, "granteePrincipal", True)
            retiring = self._check_principal(retiring_principal, "retiringPrincipal", False)
            if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 256
                                     or not _NAME.match(name)):
                raise ValidationException(
                    f"1 validation error detected: Value '{name}' at 'name' failed to satisfy "
                    "constraint: Member must satisfy regular expression pattern: "
                    "^[a-zA-Z0-9:/_-]+$")
            if not isinstance(operations, list):
                raise ValidationException(
                    "1 validation error detected: Value null at 'operations' failed to "
                    "satisfy constraint: Member must not be null")
            cons_types = [c for c in ("EncryptionContextEquals", "EncryptionContextSubset")
                          if isinstance(constraints, Mapping) and constraints.get(c)]
            call.authz_extra = {
                "kms:GrantOperations": [o for o in operations if isinstance(o, str)],
                "kms:GranteePrincipal": grantee,
                "kms:RetiringPrincipal": retiring,
                # Coffer's own services never create grants on a caller's behalf.
                "kms:GrantIsForAWSResource": False,
                "kms:GrantConstraintType": cons_types or None,
            }
            key = self._resolve(call, key_id, "CreateGrant")
            ops = self._check_operations(key, operations)
            cons = self._check_constraints(key, constraints)
            if isinstance(call.decision, dict) and "grantId" in call.decision:
                # Only a grant allowed this CreateGrant: the new grant must be equally or more
                # restrictive than one of the caller's grants that holds CreateGrant (any of
                # them; the first one _authorize found need not be the one that fits).
                parent = self._matching_grant(caller, "CreateGrant", key, None, (ops, cons))
                if parent is None:
                    call.decision = {**call.decision, "allowed": False}
                    raise AccessDeniedException(
                        f"User: {caller.principal_arn} is not authorized to perform: "
                        f"kms:CreateGrant on resource: {key.arn} because no grant allows "
                        "creating a grant with these operations and constraints")
                call.decision = decision_record(None, grant_id=parent)
            if key.state is KeyState.DISABLED:
                raise DisabledException(f"{key.arn} is disabled.")
            if key.state not in (KeyState.ENABLED, KeyState.UNAVAILABLE):
                raise KMSInvalidStateException(f"{key.arn} is {key.state.value}.")
            cons_json = json.dumps(cons, sort_keys=True) if cons else None
            principals = self._policy_principals("", grantee, retiring)
            if name is not None:
                for row in self._store.list_grants(key_id=key.key_id, grantee=grantee):
                    saved = self._store.grant_principals(row[0])
                    if saved is not None and principals is not None \
                            and saved != dict(principals):
                        continue            # the same ARNs, but other (re-created) users
                    if (row[3] == name and row[6] == retiring and
                            sorted(json.loads(row[7])) == sorted(ops) and row[8] == cons_json):
                        call.response = {"grantId": row[0]}
                        return {"GrantToken": _token(row[0], self._rand(16)),
                                "GrantId": row[0]}
            gid = _grant_id(self._rand(32))
            row = (gid, key.key_id, caller.account_id, name, self._clock(), grantee, retiring,
                   json.dumps(ops), cons_json)

            def check(k: Key) -> None:
                if k.state is KeyState.PENDING_DELETION:
                    raise KMSInvalidStateException(f"{k.arn} is pending deletion.")
            self._store.create_grant(row, check, MAX_GRANTS_PER_KEY, principals)
            call.response = {"grantId": gid}
            return {"GrantToken": _token(gid, self._rand(16)), "GrantId": gid}

    # -- listing -----------------------------------------------------------------------------

    @staticmethod
    def _page(rows: list[dict[str, Any]], limit: object, marker: object,
              key: str = "Grants") -> dict[str, Any]:
        n = P.limit(limit)
        P.marker(marker)
        start = 0
        if marker is not None:
            if not isinstance(marker, str) or not marker.isdigit() or int(marker) > len(rows):
                from kms.errors import InvalidMarkerException
                raise InvalidMarkerException("The marker is invalid.")
            start = int(marker)
        page = rows[start:start + n]
        out: dict[str, Any] = {key: page, "Truncated": start + n < len(rows)}
        if out["Truncated"]:
            out["NextMarker"] = str(start + n)
        return out

    def list_grants(self: KMS, caller: Caller, key_id: str, *, limit: int | None = None,
                    marker: str | None = None, grant_id: str | None = None,
                    grantee_principal: str | None = None) -> dict[str, Any]:
        with self._call(caller, "ListGrants", {
                "keyId": P.s(key_id), "limit": P.n(limit), "marker": P.s(marker),
                "grantId": P.s(grant_id), "granteePrincipal": P.s(grantee_principal)},
                read_only=True) as call:
            P.limit(limit)
            key = self._resolve(call, key_id, "ListGrants")
            grantee = self._check_principal(grantee_principal, "granteePrincipal", False)
            rows = self._store.list_grants(key_id=key.key_id, grantee=grantee)
            if grant_id is not None:
                rows = [r for r in rows if r[0] == grant_id]
            return self._page([_row_to_api(r, key.arn) for r in rows], limit, marker)

    def list_retirable_grants(self: KMS, caller: Caller, retiring_principal: str, *,
                              limit: int | None = None,
                              marker: str | None = None) -> dict[str, Any]:
        with self._call(caller, "ListRetirableGrants", {
                "retiringPrincipal": P.s(retiring_principal), "limit": P.n(limit),
                "marker": P.s(marker)}, read_only=True) as call:
            principal = self._check_principal(retiring_principal, "retiringPrincipal", True)
            P.limit(limit)
            # "You must specify a principal in your Amazon Web Services account"; "the
            # authorized resource in ListRetirableGrants calls is the retiring principal"
            # [API ListRetirableGrants]. Another account's principal (or a service, which is
            # in none) is a resource of that account that no policy here opens: denied, so a
            # caller never learns another account's grants, keys or constraints.
            self._authorize_account(call, "ListRetirableGrants", resource=principal,
                                    account_id=_principal_account(principal) or "")
            rows = self._store.list_grants(retiring=principal)
            out = []
            for r in rows:
                k = self._store.get_key(r[1])
                if k is not None:
                    out.append(_row_to_api(r, k.arn))
            return self._page(out, limit, marker)

    # -- retire / revoke ---------------------------------------------------------------------

    def retire_grant(self: KMS, caller: Caller, *, grant_token: str | None = None,
                     key_id: str | None = None, grant_id: str | None = None
                     ) -> dict[str, Any]:
        with self._call(caller, "RetireGrant", {"keyId": P.s(key_id),
                                                "grantId": P.s(grant_id)},
                        read_only=False) as call:
            if grant_token is not None:
                validate_grant_tokens([grant_token])
                gid = _token_grant(grant_token)
            elif key_id is not None and grant_id is not None:
                gid = grant_id
            else:
                raise ValidationException("Either GrantToken, or both KeyId and GrantId, "
                                          "must be specified.")
            if not isinstance(gid, str) or not _GRANT_ID.fullmatch(gid):
                raise InvalidGrantIdException("Invalid grant ID.")
            row = self._store.get_grant(gid)
            key = self._store.get_key(row[1]) if row else None
            if key_id is not None:
                named = self._lookup_key(caller, key_id)
                if row is not None and named is not None and named.key_id != row[1]:
                    raise InvalidGrantIdException("Invalid grant ID.")
                if row is None:
                    if named is None:
                        raise NotFoundException(f"Key '{key_id}' does not exist")
                    raise NotFoundException(f"Grant ID {gid} not found")
            if row is None or key is None:
                raise NotFoundException(f"Grant ID {gid} not found")
            call.keys.append(key)
            who = caller.principal_arn
            root = f"arn:aws:iam::{caller.account_id}:root"
            ops = json.loads(row[7])
            if self._names_caller(gid, row[6], caller) or (row[6] == root and who == root):
                call.decision = {"allowed": True, "reason": "retiring-principal",
                                 "grantId": gid}
            elif self._names_caller(gid, row[5], caller) and "RetireGrant" in ops:
                call.decision = {"allowed": True, "reason": "grant-allow", "grantId": gid}
            elif who == root and caller.account_id == row[2]:
                call.decision = {"allowed": True, "reason": "issuing-account", "grantId": gid}
            else:
                call.decision = {"allowed": False, "reason": "not-retiring-principal",
                                 "grantId": gid}
                raise AccessDeniedException(
                    f"User: {who} is not authorized to perform: kms:RetireGrant on resource: "
                    f"{key.arn} because it is neither the grant's retiring principal nor its "
                    "grantee")
            self._store.delete_grant(gid)
            return {}

    def _lookup_key(self: KMS, caller: Caller, key_id: object) -> Key | None:
        from kms.keyref import parse_key_ref
        ref = parse_key_ref(key_id, self.region, param="keyId")
        if ref.kind == "alias":
            alias = self._store.get_alias(ref.account_id or caller.account_id, ref.name)
            return self._store.get_key(alias.target_key_id) if alias else None
        return self._store.get_key(ref.name)

    def revoke_grant(self: KMS, caller: Caller, key_id: str, grant_id: str) -> dict[str, Any]:
        with self._call(caller, "RevokeGrant", {"keyId": P.s(key_id),
                                                "grantId": P.s(grant_id)},
                        read_only=False) as call:
            key = self._resolve(call, key_id, "RevokeGrant")
            # Every grant id this KMS issues is 64 hex digits; anything else is no grant and
            # never reaches the store (a lone surrogate would not even encode).
            if not isinstance(grant_id, str) or not _GRANT_ID.fullmatch(grant_id):
                raise InvalidGrantIdException("Invalid grant ID.")
            row = self._store.get_grant(grant_id)
            if row is None or row[1] != key.key_id:
                raise NotFoundException(f"Grant ID {grant_id} not found")
            self._store.delete_grant(grant_id)
            return {}
