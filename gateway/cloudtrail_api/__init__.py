"""The AWS CloudTrail JSON 1.1 face (LookupEvents over the audit trail)."""
