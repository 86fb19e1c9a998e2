"""Identity and policy: ARNs, the policy language, conditions and ``evaluate()``.

A leaf: imports nothing else from ``kms`` (nor ``gateway``), so S3, KMS and IAM share one engine.
"""
from kms.iam.arn import ARN, parse_arn, root_arn, user_arn, policy_arn
from kms.iam.errors import PolicyError
from kms.iam.evaluate import AuthzRequest, Decision, Reason, evaluate
from kms.iam.policy import Condition, Policy, Principals, Statement, parse_policy

__all__ = ["ARN", "parse_arn", "root_arn", "user_arn", "policy_arn", "PolicyError",
           "AuthzRequest", "Decision", "Reason", "evaluate", "Condition", "Policy",
           "Principals", "Statement", "parse_policy"]
