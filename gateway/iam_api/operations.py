"""The IAM operations: parameters in (AWS CamelCase), result dicts out, one function each.

Each operation is ``fn(call) -> dict | None`` and declares the resource it acts on, so the face
can authorize ``iam:<Action>`` on it before running it. A missing ``UserName`` on user-scoped
operations means the caller itself, as on AWS.

The resource is canonical: user names are unique case-insensitively, so ``ALICE`` is the user
``alice`` and is authorized against ``user/alice`` under its stored path, never against the
ARN as typed (a Deny on ``user/alice`` must hold however the name is spelled). A user that does
not exist is authorized against the ARN its name would have, so NoSuchEntity reaches only
callers allowed to act on that name. A policy ARN of another account is refused before any
lookup: IAM policies have no resource policy, so no other account may read or delete them
[IAM UG, "Cross-account policy evaluation logic"].

Every failure is an ``IAMError`` subclass (the face renders it); nothing else escapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import quote

from gateway.auth.types import Credential
from gateway.iam_api.xml import iso8601
from gateway.identity import AccessKey, IdentityStore, ManagedPolicy, User, readable_by
from kms.iam import errors as ie
from kms.iam.arn import policy_arn, root_arn, user_arn

__all__ = ["IAMCall", "Operation", "OPERATIONS"]


@dataclass(frozen=True, slots=True)
class IAMCall:
    identity: IdentityStore
    credential: Credential
    params: Mapping[str, str]

    @property
    def account(self) -> str:
        return self.credential.account_id

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)

    def required(self, name: str) -> str:
        value = self.params.get(name)
        if not value:
            camel = name[0].lower() + name[1:]
            raise ie.ValidationError(f"1 validation error detected: Value null at '{camel}' "
                                     "failed to satisfy constraint: Member must not be null")
        return value

    def user_name(self) -> str | None:
        """``UserName`` or, when absent, the calling user (None for an account root)."""
        return self.params.get("UserName") or self.credential.user_name


@dataclass(frozen=True, slots=True)
class Operation:
    run: Callable[[IAMCall], dict[str, Any] | None]
    resource: Callable[[IAMCall], str]

    def shown(self, call: IAMCall) -> str | None:
        """The resource as an AccessDenied message names it: for a user the caller named,
        the ARN of the name as typed under the default path (never the stored case or path,
        which would tell a caller who may not read the user that it exists); None: the
        authorized resource itself."""
        if self.resource is _target_user_arn and call.params.get("UserName"):
            return user_arn(call.account, call.params["UserName"], "/")
        return None


def _user_xml(u: User) -> dict[str, Any]:
    return {"Path": u.path, "UserName": u.user_name, "UserId": u.user_id, "Arn": u.arn,
            "CreateDate": iso8601(u.created)}


def _key_xml(k: AccessKey, user: str | None) -> dict[str, Any]:
    return {"UserName": user, "AccessKeyId": k.access_key_id, "Status": k.status,
            "CreateDate": iso8601(k.created)}


def _policy_xml(p: ManagedPolicy) -> dict[str, Any]:
    return {"PolicyName": p.policy_name, "PolicyId": p.policy_id, "Arn": p.arn, "Path": p.path,
            "DefaultVersionId": p.default_version, "AttachmentCount": p.attachment_count,
            "PermissionsBoundaryUsageCount": 0, "IsAttachable": True,
            "Description": p.description or None, "CreateDate": iso8601(p.created),
            "UpdateDate": iso8601(p.updated)}


def _target_user_arn(call: IAMCall) -> str:
    name = call.user_name()
    if not name:
        return root_arn(call.account)
    if "UserName" not in call.params and call.credential.user_name:
        return call.credential.principal_arn
    try:
        return call.identity.get_user(call.account, name).arn
    except ie.NoSuchEntity:
        return user_arn(call.account, name, call.get("Path") or "/")


def _new_policy_arn(call: IAMCall) -> str:
    # From the names CreatePolicy takes only: a stray PolicyArn must not pick the resource.
    return policy_arn(call.account, call.get("PolicyName") or "", call.get("Path") or "/")


def _policy_target(action: str) -> Callable[[IAMCall], str]:
    def resource(call: IAMCall) -> str:
        arn = call.required("PolicyArn")
        if not readable_by(arn, call.account):
            raise ie.AccessDenied(
                f"User: {call.credential.principal_arn} is not authorized to perform: "
                f"iam:{action} on resource: policy {arn} because no resource-based policy "
                f"allows the iam:{action} action")
        return arn
    return resource


def create_user(call: IAMCall) -> dict[str, Any]:
    user = call.identity.create_user(call.account, call.required("UserName"),
                                     call.get("Path") or "/")
    return {"User": _user_xml(user)}


def get_user(call: IAMCall) -> dict[str, Any]:
    name = call.user_name()
    if not name:
        acct = call.account
        return {"User": {"Path": "/", "UserId": acct, "Arn": root_arn(acct),
                         "CreateDate": iso8601(0)}}
    return {"User": _user_xml(call.identity.get_user(call.account, name))}


def list_users(call: IAMCall) -> dict[str, Any]:
    users = call.identity.list_users(call.account, call.get("PathPrefix") or "/")
    return {"Users": [_user_xml(u) for u in users], "IsTruncated": False}


def delete_user(call: IAMCall) -> None:
    call.identity.delete_user(call.account, call.required("UserName"))


def create_access_key(call: IAMCall) -> dict[str, Any]:
    new = call.identity.create_access_key(call.account, call.user_name())
    return {"AccessKey": {**_key_xml(new.key, new.key.user_name),
                          "SecretAccessKey": new.secret_access_key}}


def list_access_keys(call: IAMCall) -> dict[str, Any]:
    keys = call.identity.list_access_keys(call.account, call.user_name())
    return {"AccessKeyMetadata": [_key_xml(k, k.user_name) for k in keys],
            "IsTruncated": False}


def update_access_key(call: IAMCall) -> None:
    call.identity.update_access_key(call.account, call.user_name(),
                                    call.required("AccessKeyId"), call.required("Status"))


def delete_access_key(call: IAMCall) -> None:
    call.identity.delete_access_key(call.account, call.user_name(),
                                    call.required("AccessKeyId"))


def put_user_policy(call: IAMCall) -> None:
    call.identity.put_user_policy(call.account, call.required("UserName"),
                                  call.required("PolicyName"), call.required("PolicyDocument"))


def get_user_policy(call: IAMCall) -> dict[str, Any]:
    name, policy = call.required("UserName"), call.required("PolicyName")
    doc = call.identity.get_user_policy(call.account, name, policy)
    stored = call.identity.get_user(call.account, name).user_name
    return {"UserName": stored, "PolicyName": policy, "PolicyDocument": quote(doc, safe="")}


def list_user_policies(call: IAMCall) -> dict[str, Any]:
    names = call.identity.list_user_policies(call.account, call.required("UserName"))
    return {"PolicyNames": names, "IsTruncated": False}


def delete_user_policy(call: IAMCall) -> None:
    call.identity.delete_user_policy(call.account, call.required("UserName"),
                                     call.required("PolicyName"))


def create_policy(call: IAMCall) -> dict[str, Any]:
    p = call.identity.create_policy(call.account, call.required("PolicyName"),
                                    call.required("PolicyDocument"), call.get("Path") or "/",
                                    call.get("Description") or "")
    return {"Policy": _policy_xml(p)}


def get_policy(call: IAMCall) -> dict[str, Any]:
    p = call.identity.get_policy(call.required("PolicyArn"), call.account)
    return {"Policy": _policy_xml(p)}


def get_policy_version(call: IAMCall) -> dict[str, Any]:
    p = call.identity.get_policy(call.required("PolicyArn"), call.account)
    if call.required("VersionId") != p.default_version:
        raise ie.NoSuchEntity(f"Policy {p.arn} version {call.get('VersionId')} does not exist "
                              "or is not attachable.")
    return {"PolicyVersion": {"Document": quote(p.document, safe=""), "VersionId": "v1",
                              "IsDefaultVersion": True, "CreateDate": iso8601(p.created)}}


def list_policies(call: IAMCall) -> dict[str, Any]:
    policies = call.identity.list_policies(call.account)
    return {"Policies": [_policy_xml(p) for p in policies], "IsTruncated": False}


def delete_policy(call: IAMCall) -> None:
    call.identity.delete_policy(call.account, call.required("PolicyArn"))


def attach_user_policy(call: IAMCall) -> None:
    call.identity.attach_user_policy(call.account, call.required("UserName"),
                                     call.required("PolicyArn"))


def detach_user_policy(call: IAMCall) -> None:
    call.identity.detach_user_policy(call.account, call.required("UserName"),
                                     call.required("PolicyArn"))


def list_attached_user_policies(call: IAMCall) -> dict[str, Any]:
    ps = call.identity.list_attached_user_policies(call.account, call.required("UserName"))
    return {"AttachedPolicies": [{"PolicyName": p.policy_name, "PolicyArn": p.arn}
                                 for p in ps], "IsTruncated": False}


def _users_resource(call: IAMCall) -> str:
    return f"arn:aws:iam::{call.account}:user{call.get('PathPrefix') or '/'}"


OPERATIONS: dict[str, Operation] = {
    "CreateUser": Operation(create_user, _target_user_arn),
    "GetUser": Operation(get_user, _target_user_arn),
    "ListUsers": Operation(list_users, _users_resource),
    "DeleteUser": Operation(delete_user, _target_user_arn),
    "CreateAccessKey": Operation(create_access_key, _target_user_arn),
    "ListAccessKeys": Operation(list_access_keys, _target_user_arn),
    "UpdateAccessKey": Operation(update_access_key, _target_user_arn),
    "DeleteAccessKey": Operation(delete_access_key, _target_user_arn),
    "PutUserPolicy": Operation(put_user_policy, _target_user_arn),
    "GetUserPolicy": Operation(get_user_policy, _target_user_arn),
    "ListUserPolicies": Operation(list_user_policies, _target_user_arn),
    "DeleteUserPolicy": Operation(delete_user_policy, _target_user_arn),
    "CreatePolicy": Operation(create_policy, _new_policy_arn),
    "GetPolicy": Operation(get_policy, _policy_target("GetPolicy")),
    "GetPolicyVersion": Operation(get_policy_version, _policy_target("GetPolicyVersion")),
    "ListPolicies": Operation(list_policies, lambda call: "*"),
    "DeletePolicy": Operation(delete_policy, _policy_target("DeletePolicy")),
    "AttachUserPolicy": Operation(attach_user_policy, _target_user_arn),
    "DetachUserPolicy": Operation(detach_user_policy, _target_user_arn),
    "ListAttachedUserPolicies": Operation(list_attached_user_policies, _target_user_arn),
}
