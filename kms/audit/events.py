"""One audit record per KMS call, in CloudTrail's shape (kms-contract.md (d)).

``AuditEvent.to_record()`` gives the JSON object; field names and nesting follow CloudTrail
(eventVersion 1.08). What never goes in: plaintext, data keys, ciphertext blobs, grant tokens.
``requestParameters``/``responseElements`` are built by the caller from an allow-list; as a
last guard ``to_record`` refuses any bytes value, so a secret cannot slip in as raw bytes.
Imports nothing else from ``kms``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuditEvent", "EVENT_VERSION", "identity_type", "service_principal"]

EVENT_VERSION = "1.08"
EVENT_SOURCE = "kms.amazonaws.com"


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


def _no_bytes(value: Any, where: str) -> None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"bytes in audit {where}: secrets and blobs never go in an event")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_bytes(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for v in value:
            _no_bytes(v, where)


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

    def to_record(self) -> dict[str, Any]:
        _no_bytes(self.request_parameters, "requestParameters")
        _no_bytes(self.response_elements, "responseElements")
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
        return rec
