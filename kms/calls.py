"""The audit context of one KMS operation: ``with kms._call(...) as call:``.

Each operation writes exactly one outcome record when it returns or raises (success, or the
error's ``__type`` and message); the KMS fails the call with KMSInternalException when that
record cannot be written (fail-closed, ``KMS._emit``).

A state change is recorded before it commits (DESIGN.md "Audit"; issue 11, finding 5). A call
that may change state (``read_only=False``) is its thread's active call while it runs; the key
store calls ``KMS._before_commit`` inside every write transaction just before COMMIT
(``KeyStore.before_commit``), which makes the active call write its intent record once
(``eventType`` ``CofferIntent``: name, caller, parameters, the keys resolved so far) and wait for
it to be durable. If it cannot be written the transaction rolls back, so nothing commits off
the record. The outcome record names the intent in ``intentEventID``; a crash between the two
leaves an intent with no outcome, which ``coffer audit verify`` reports. Calls that never reach
a commit (read-only, refused, invalid) write only their outcome. ``_ServiceCall`` does the same
for the scheduler's changes (AwsServiceEvent records: DeleteKey, RotateKey,
DeleteExpiredKeyMaterial), and writes no record when nothing reached a commit.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from kms.audit import AuditEvent
from kms.audit.events import INTENT
from kms.errors import KMSError, KMSInternalException
from kms.model import Caller, Key

if TYPE_CHECKING:
    from kms.service import KMS

__all__ = ["_Call", "_ServiceCall"]

log = logging.getLogger("coffer.kms")


class _Call:
    """Audits one operation: ``with kms._call(...) as call:`` records success or the error.
    A call that may change state (``read_only=False``) is the thread's active call while it
    runs, so the store's commit hook can write its intent record first (``write_intent``)."""

    __slots__ = ("kms", "caller", "name", "params", "read_only", "keys", "response",
                 "decision", "authz_extra", "intent_id", "_outer", "_rid")

    def __init__(self, kms: KMS, caller: Caller, name: str, params: dict[str, Any],
                 read_only: bool) -> None:
        self.kms, self.caller, self.name = kms, caller, name
        self.params, self.read_only = params, read_only
        self.keys: list[Key] = []
        self.response: dict[str, Any] | None = None
        self.decision: dict[str, Any] | None = None      # kms.grants._authorize
        self.authz_extra: dict[str, Any] | None = None   # operation-specific condition keys
        self.intent_id: str | None = None
        self._outer: Any = None
        self._rid: str | None = None        # one request id for the intent and the outcome

    def __enter__(self) -> _Call:
        if not isinstance(self.caller, Caller):
            raise TypeError("every KMS call takes a Caller first")
        if not self.read_only:
            self._outer = getattr(self.kms._active, "call", None)
            self.kms._active.call = self
        return self

    def _event(self, *, code: str | None = None, message: str | None = None,
               failed: bool = False, event_type: str = "AwsApiCall",
               event_id: str | None = None) -> AuditEvent:
        params = {k: v for k, v in self.params.items() if v is not None}
        seen: dict[str, str] = {}
        for k in self.keys:
            seen.setdefault(k.arn, k.account_id)
        event_id = event_id or self.kms._uuid()
        if self._rid is None:
            self._rid = self.caller.request_id or self.kms._uuid()
        return AuditEvent(
            event_name=self.name, event_time=self.kms._clock(), region=self.kms.region,
            event_id=event_id, request_id=self._rid, read_only=self.read_only, account_id=self.caller.account_id,
            principal_arn=self.caller.principal_arn, access_key_id=self.caller.access_key_id,
            source_ip=self.caller.source_ip, user_agent=self.caller.user_agent,
            invoked_by=self.caller.via_service, request_parameters=params or None,
            response_elements=None if failed or event_type == INTENT else self.response,
            error_code=code, error_message=message,
            resources=tuple((acct, arn) for arn, acct in seen.items()),
            event_type=event_type, authorization_decision=self.decision,
            intent_id=self.intent_id if event_type != INTENT else None)

    def write_intent(self) -> None:
        """Durably record that this call is about to commit a change (once per call)."""
        if self.intent_id is not None:
            return
        intent_id = self.kms._uuid()
        self.kms._emit(self._event(event_type=INTENT, event_id=intent_id))
        self.intent_id = intent_id

    def __exit__(self, et, exc, tb) -> bool:
        if not self.read_only:
            self.kms._active.call = self._outer
        code = message = None
        if isinstance(exc, KMSError):
            code, message = exc.type, exc.message
        elif exc is not None:
            log.error("internal error in %s (request %s)", self.name, self.caller.request_id,
                      exc_info=(et, exc, tb))
            code, message = KMSInternalException.type, "internal error"
        self.kms._emit(self._event(code=code, message=message, failed=exc is not None))
        observer = self.kms.call_observer
        if observer is not None:
            try:
                spec = self.keys[0].metadata.key_spec if self.keys else None
                observer(self.name, getattr(spec, "value", spec), code)
            except Exception:  # noqa: BLE001 - metrics never fail a call that succeeded
                log.exception("KMS call observer failed for %s", self.name)
        return False


class _ServiceCall:
    """A scheduled change (AwsServiceEvent): intent before its commit, outcome after."""

    __slots__ = ("kms", "name", "key", "now", "intent_id", "_outer", "_rid")

    def __init__(self, kms: KMS, name: str, key: Key, now: float) -> None:
        self.kms, self.name, self.key, self.now = kms, name, key, now
        self.intent_id: str | None = None
        self._outer: Any = None
        self._rid: str | None = None

    def __enter__(self) -> _ServiceCall:
        self._outer = getattr(self.kms._active, "call", None)
        self.kms._active.call = self
        return self

    def event(self, event_type: str = "AwsServiceEvent", event_id: str | None = None,
              ) -> AuditEvent:
        key = self.key
        event_id = event_id or self.kms._uuid()
        if self._rid is None:
            self._rid = self.kms._uuid()
        return AuditEvent(
            event_name=self.name, event_time=self.now, region=self.kms.region,
            event_id=event_id, request_id=self._rid,
            read_only=False, account_id=key.account_id, principal_arn=None,
            source_ip="AWS Internal", user_agent="AWS Internal", invoked_by="AWS Internal",
            resources=((key.account_id, key.arn),), event_type=event_type,
            service_event_details={"keyId": key.key_id},
            intent_id=self.intent_id if event_type != INTENT else None)

    def write_intent(self) -> None:
        if self.intent_id is None:
            intent_id = self.kms._uuid()
            self.kms._emit(self.event(INTENT, intent_id))
            self.intent_id = intent_id

    def __exit__(self, et, exc, tb) -> bool:
        self.kms._active.call = self._outer
        if self.intent_id is None:
            return False                # nothing reached a commit: nothing happened
        if exc is None:
            self.kms._emit(self.event())
        else:
            # The change was about to commit and failed: say so, so the intent is resolved.
            self.kms._emit(dataclasses.replace(
                self.event(), error_code=exc.type if isinstance(exc, KMSError)
                else KMSInternalException.type, error_message="the scheduled change failed"))
        return False
