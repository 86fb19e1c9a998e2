"""Who is calling: the one principal record every face (S3, KMS, IAM, STS, CloudTrail) uses.

A ``Principal`` is built once per request, by ``principal_for``, from the authenticated
credential (``gateway.auth.types.AuthContext``) and the IdentityStore (``gateway.app.IDENTITY``),
and memoised in the request context (``gateway.context``)::

    arn, account_id, access_key_id      the credential's ("" for anonymous callers)
    user_name, user_id                  IAM users only: aws:username / aws:userid
    identity_policies                   IAM users only (roots and anonymous callers have none)
    source_ip, secure_transport         aws:SourceIp / aws:SecureTransport
    user_agent, auth_method, signed_region

Fail closed: an attribute that cannot be read is never dropped. A user that no longer exists
(deleted between the key lookup and now) is ``PrincipalError(denied=True)``; any other failure
to read the user id or the identity policies is ``PrincipalError(denied=False)``, logged. Each
face answers those with its AccessDenied / internal error, never by evaluating without the
attribute (a missing aws:userid would silently skip a Deny conditioned on it).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiohttp import web

from gateway.auth.types import AuthContext, Credential
from gateway.context import context_of
from kms.iam import errors as ie
from kms.model import Caller

__all__ = ["Principal", "PrincipalError", "principal_for", "build_principal",
           "principal_exists", "principal_id"]

log = logging.getLogger("coffer.gateway.principal")

_USER_AGENT_MAX = 256


class PrincipalError(Exception):
    """The principal's attributes could not be read; the request must fail closed.

    ``denied``: the principal no longer exists (answer AccessDenied); otherwise the identity
    store failed (answer the face's internal error)."""

    def __init__(self, reason: str, *, denied: bool) -> None:
        super().__init__(reason)
        self.denied = denied


@dataclass(frozen=True, slots=True)
class Principal:
    arn: str
    account_id: str
    access_key_id: str
    user_name: str | None
    user_id: str | None
    source_ip: str
    secure_transport: bool
    user_agent: str
    auth_method: str
    signed_region: str
    identity_policies: tuple = ()
    credential: Credential | None = field(default=None, repr=False, compare=False)

    @property
    def anonymous(self) -> bool:
        return self.credential is None

    @property
    def sigv4(self) -> bool:
        return self.auth_method.startswith("sigv4")

    def caller(self, *, request_id: str, via_service: str | None = None,
               requested_region: str | None = None) -> Caller:
        """The ``kms.model.Caller`` for this principal. ``via_service`` is set when S3 calls
        the KMS on the principal's behalf (kms:ViaService, CloudTrail invokedBy)."""
        return Caller(principal_arn=self.arn, account_id=self.account_id,
                      source_ip=self.source_ip, secure_transport=self.secure_transport,
                      via_service=via_service, user_agent=self.user_agent,
                      request_id=request_id, access_key_id=self.access_key_id,
                      identity_policies=self.identity_policies, user_name=self.user_name,
                      user_id=self.user_id,
                      requested_region=requested_region or self.signed_region or None)


def _identity_store(request: web.Request):
    from gateway.app import IDENTITY      # late: gateway.app imports every face
    return request.app.get(IDENTITY)


def build_principal(auth: AuthContext, *, source_ip: str, secure_transport: bool,
                    user_agent: str, store) -> Principal:
    """The principal for ``auth``; ``store`` is the IdentityStore (None: no IAM users).
    Raises ``PrincipalError``."""
    cred = auth.credential
    common = dict(source_ip=source_ip, secure_transport=secure_transport,
                  user_agent=user_agent[:_USER_AGENT_MAX], auth_method=auth.method,
                  signed_region=auth.region)
    if cred is None:
        return Principal(arn="", account_id="", access_key_id="", user_name=None, user_id=None,
                         **common)
    user_id, policies = None, ()
    if cred.user_name:
        if store is None:
            raise PrincipalError("no identity store for an IAM user's key", denied=False)
        try:
            user_id = store.get_user(cred.account_id, cred.user_name).user_id
            policies = tuple(store.identity_policies(cred.principal_arn))
        except ie.NoSuchEntity as exc:
            log.info("principal %s no longer exists", cred.principal_arn)
            raise PrincipalError(f"{cred.principal_arn} does not exist", denied=True) from exc
        except Exception as exc:  # noqa: BLE001 - re-raised typed: the request fails closed
            log.exception("identity lookup for %s failed", cred.principal_arn)
            raise PrincipalError("identity lookup failed", denied=False) from exc
    return Principal(arn=cred.principal_arn, account_id=cred.account_id,
                     access_key_id=cred.access_key_id, user_name=cred.user_name,
                     user_id=user_id, identity_policies=policies, credential=cred, **common)


def principal_exists(request: web.Request):
    """The identity store's ``principal_exists`` (for policies being saved), or None."""
    store = _identity_store(request)
    return store.principal_exists if store is not None else None


def principal_id(request: web.Request):
    """The identity store's ``principal_user_id`` (user ARN -> unique id, saved beside a
    policy), or None when the app has no identity store."""
    store = _identity_store(request)
    return store.principal_user_id if store is not None else None


def principal_for(request: web.Request, auth: AuthContext, store=None) -> Principal:
    """The request's principal, built once and kept in its context. ``store`` defaults to
    the app's IdentityStore. Raises ``PrincipalError``."""
    ctx = context_of(request)
    cached = ctx.principal
    key_id = auth.credential.access_key_id if auth.credential is not None else ""
    # Compared by access key id and method only: never by the credential (it holds a secret).
    if cached is not None and cached.access_key_id == key_id \
            and cached.auth_method == auth.method:
        return cached
    principal = build_principal(
        auth, source_ip=request.remote or "", secure_transport=bool(request.secure),
        user_agent=request.headers.get("User-Agent", ""),
        store=store if store is not None else _identity_store(request))
    ctx.principal = principal
    return principal
