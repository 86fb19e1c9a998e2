"""Who the authenticated principal is, for authorization: its IAM identity policies and user
id, looked up once per request in the IdentityStore (``gateway.app.IDENTITY``) and memoised on
the aiohttp request (the keys ``gateway.s3.authz`` uses too). Roots have no identity policies.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auth.types import Credential

__all__ = ["identity_policies", "user_id", "caller_fields", "principal_exists"]


def _store(request: web.Request):
    from gateway.app import IDENTITY      # late: gateway.app imports the handlers
    return request.app.get(IDENTITY)


def identity_policies(request: web.Request, cred: Credential | None) -> tuple:
    if cred is None or not cred.user_name:
        return ()
    memo = request.get("coffer_identity_policies")
    if memo is None:
        store = _store(request)
        memo = store.identity_policies(cred.principal_arn) if store is not None else []
        request["coffer_identity_policies"] = memo
    return tuple(memo)


def principal_exists(request: web.Request):
    """The identity store's ``principal_exists`` (for policies being saved), or None."""
    store = _store(request)
    return store.principal_exists if store is not None else None


def user_id(request: web.Request, cred: Credential | None) -> str | None:
    if cred is None or not cred.user_name:
        return None
    if "coffer_user_id" not in request:
        uid = None
        store = _store(request)
        if store is not None:
            try:
                uid = store.get_user(cred.account_id, cred.user_name).user_id
            except Exception:  # noqa: BLE001 - a user deleted mid-request: no aws:userid
                uid = None
        request["coffer_user_id"] = uid
    return request["coffer_user_id"]


def caller_fields(request: web.Request, cred: Credential | None,
                  region: str | None) -> dict[str, Any]:
    """The ``kms.model.Caller`` authorization fields for ``cred``."""
    return {"identity_policies": identity_policies(request, cred),
            "user_name": cred.user_name if cred is not None else None,
            "user_id": user_id(request, cred), "requested_region": region}
