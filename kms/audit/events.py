"""One audit record per KMS call, in CloudTrail's shape (kms-contract.md (d)).

``AuditEvent.to_record()`` gives the JSON object; field names and nesting follow CloudTrail
(eventVersion 1.08). What never goes in: plaintext, data keys, ciphertext blobs, grant tokens.
``requestParameters``/``responseElements`` are built by the caller from an allow-list; as a
last guard the encoder (``kms.audit.encode``) writes any bytes value as ``[bytes omitted: N]``,
so a secret cannot slip in as raw bytes, and bounds every field. ``encode_event`` turns an
event into its trail line and cannot fail: a state change must never commit off the record
because its record could not be encoded.

Intent records (``intent_record``): a state change writes one, durably, before it commits
(DESIGN.md "Audit"); the outcome record written after names it in ``intentEventID``::

    {"eventVersion": "1.08", "eventType": "CofferIntent", "eventID": <intent id>,
     "eventName", "eventSource", "eventTime", "requestID", "userIdentity", "awsRegion",
     "sourceIPAddress", "userAgent", "requestParameters", "resources", "recipientAccountId"}

They are not CloudTrail events: LookupEvents and ``read_trail`` skip them; ``coffer audit
verify`` reports an intent no outcome names (the change may or may not have committed).
Imports nothing else from ``kms``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kms.audit.encode import encode_record

__all__ = ["AuditEvent", "EVENT_VERSION", "INTENT", "SUMMARY", "identity_type",
           "service_principal", "intent_record", "is_intent", "encode_event"]

EVENT_VERSION = "1.08"
EVENT_SOURCE = "kms.amazonaws.com"
INTENT = "CofferIntent"          # eventType of an intent record
SUMMARY = "CofferSummary"        # eventType of a rate-limited failure summary
_INTENT_FIELDS = ("eventVersion", "eventName", "eventSource", "eventTime", "requestID",
                  "userIdentity", "awsRegion", "sourceIPAddress", "userAgent",
                  "requestParameters", "resources", "recipientAccountId", "readOnly")


def identity_type(principal_arn: str) -> str:
    """CloudTrail userIdentity.type for an IAM ARN."""
    resource = principal_arn.split(":", 5)[-1]
    if resource == "root":
        return "Root"
    if resource.startswith("user/"):
        return "IAMUser"
    if resource.startswith("assumed-role/"):
        return "AssumedRole"
    if resource.startswith("role/"):
        return "Role"
    return "Unknown"


def service_principal(via_service: str) -> str:
    """CloudTrail's invokedBy: the service principal without its region
    (kms:ViaService ``s3.us-east-1.amazonaws.com`` -> ``s3.amazonaws.com``)."""
    parts = via_service.split(".")
    if len(parts) == 4 and parts[2:] == ["amazonaws", "com"]:
        return f"{parts[0]}.amazonaws.com"
    return via_service


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def is_intent(record: Any) -> bool:
    return isinstance(record, dict) and record.get("eventType") == INTENT


def intent_record(outcome: dict[str, Any], intent_id: str) -> dict[str, Any]:
    """The intent record announcing the call ``outcome`` will describe (fields as above)."""
    rec = {k: outcome[k] for k in _INTENT_FIELDS if k in outcome}
    rec.update(eventType=INTENT, eventID=intent_id)
    return rec


def encode_event(event: Any) -> bytes:
    """The trail line for an AuditEvent; never raises. An event whose ``to_record`` fails
    (a field of the wrong type) is still written, as its name, ids and the failure."""
    try:
        rec = event.to_record()
    except Exception as exc:  # noqa: BLE001 - the record must be written whatever the event
        rec = {"eventVersion": EVENT_VERSION, "eventSource": EVENT_SOURCE,
               "eventName": getattr(event, "event_name", "UnknownEvent"),
               "eventTime": _safe_iso(getattr(event, "event_time", None)),
               "requestID": getattr(event, "request_id", ""),
               "eventID": getattr(event, "event_id", ""),
               "errorCode": getattr(event, "error_code", None),
               "intentEventID": getattr(event, "intent_id", None),
               "cofferEncodingNote": f"event fields unusable: {type(exc).__name__}"}
    return encode_record(rec)


def _safe_iso(t: Any) -> str:
    try:
        return _iso(float(t))
    except Exception:  # noqa: BLE001 - any value, see encode_event
        return _iso(time.time())


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event_name: str
    event_time: float
    region: str
    event_id: str
    request_id: str
    read_only: bool
    account_id: str                          # the caller's account (recipient of the event)
    principal_arn: str | None = None         # None for service events
    access_key_id: str = ""
    source_ip: str = ""
    user_agent: str = ""
    invoked_by: str | None = None
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    resources: tuple[tuple[str, str], ...] = ()    # (account id, key ARN)
    event_type: str = "AwsApiCall"
    service_event_details: dict[str, Any] | None = field(default=None)
    # Beyond CloudTrail: which policy statement or grant allowed or denied the call
    # ({"allowed", "reason", "policy", "statementSid"} or {"allowed", "reason", "grantId"}).
    authorization_decision: dict[str, Any] | None = None
    intent_id: str | None = None             # the intent record this outcome completes

    def to_record(self) -> dict[str, Any]:
        if self.principal_arn is None:
            identity: dict[str, Any] = {"accountId": self.account_id,
                                        "invokedBy": self.invoked_by or "AWS Internal"}
        else:
            kind = identity_type(self.principal_arn)
            resource = self.principal_arn.split(":", 5)[-1]
            identity = {"type": kind,
                        "principalId": (self.account_id if kind == "Root"
                                        else resource.rsplit("/", 1)[-1]),
                        "arn": self.principal_arn, "accountId": self.account_id,
                        "accessKeyId": self.access_key_id}
            if kind == "IAMUser":
                identity["userName"] = resource.split("/")[-1]
            if self.invoked_by:
                identity["invokedBy"] = service_principal(self.invoked_by)
        rec: dict[str, Any] = {
            "eventVersion": EVENT_VERSION,
            "userIdentity": identity,
            "eventTime": _iso(self.event_time),
            "eventSource": EVENT_SOURCE,
            "eventName": self.event_name,
            "awsRegion": self.region,
            "sourceIPAddress": self.source_ip,
            "userAgent": self.user_agent,
            "requestParameters": self.request_parameters,
            "responseElements": self.response_elements,
        }
        if self.error_code is not None:
            rec["errorCode"] = self.error_code
            rec["errorMessage"] = self.error_message or ""
        rec.update({
            "requestID": self.request_id,
            "eventID": self.event_id,
            "readOnly": self.read_only,
            "resources": [{"accountId": acct, "type": "AWS::KMS::Key", "ARN": arn}
                          for acct, arn in self.resources],
            "eventType": self.event_type,
            "managementEvent": True,
            "recipientAccountId": self.account_id,
            "eventCategory": "Management",
        })
        if self.service_event_details is not None:
            rec["serviceEventDetails"] = self.service_event_details
        if self.authorization_decision is not None:
            rec["authorizationDecision"] = self.authorization_decision
        if self.intent_id is not None:
            rec["intentEventID"] = self.intent_id
        return rec
