"""The S3 edge pipeline: authenticate -> parse -> authorize once -> dispatch.

``handle_s3`` runs every S3 request through the stages in this order (DESIGN.md "The edge
pipeline"); the audit stage wraps it (``gateway.audit_trail.AuditTrail.audited_s3``)::

    auth      = authenticate(request)                 SigV4 / SigV2 / anonymous
    principal = principal_for(request, auth)          fails closed (principal_info)
    op        = parse_request(...)                    gateway.s3.operations.S3Operation
    region, bucket = the bucket's record and region
    Stage(op).authorize(bucket)                       every Permission of op, or AccessDenied
    HANDLERS[op.name](call)                           the handler only does the work

Handlers never evaluate a policy. What only the handler can know goes through the same
stage, ``call.authz`` (a ``Stage``), and every decision lands in the request's audit note:

- ``allowed(action, key)``: DeleteObjects asks s3:DeleteObject per key of its body;
- ``missing_key(key)``: NoSuchKey only for callers allowed s3:ListBucket, else AccessDenied
  [S3 API, GetObject: "If you don't have the s3:ListBucket permission, Amazon S3 returns an
  HTTP status code 403"];
- ``caller(mode)``: the one place the KMS ``Caller`` is built. The KMS then authorizes the key
  use as that caller (key policy, grants, kms:ViaService). An SSE-KMS object or write needs
  SigV4: SigV2 and anonymous requests are refused [AWS re:Post knowledge center,
  "s3-kms-signature-version-error": "Requests specifying Server Side Encryption with AWS KMS
  managed keys require AWS Signature Version 4" for SigV2 *and* anonymous requests].
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

from gateway import auth
from gateway.auth.types import AuthContext, CredentialLookup
from gateway.config import Config
from gateway.context import context_of
from gateway.principal_info import Principal, PrincipalError, principal_for
from gateway.regions import region_allowed, wrong_region
from gateway.s3 import (authz, bucket, copy, encryption, listing, multipart, object_get,
                        object_put, policy, tagging)
from gateway.s3 import object_attributes
from gateway.s3.common import S3Call
from gateway.s3.errors import S3Error
from gateway.s3.operations import OPERATIONS, Permission, S3Operation, Scope, UnknownOperation
from gateway.s3.router import parse_request
from gateway.sse.headers import SSE_KMS
from kms.model import Caller
from storage import errors as se
from storage.base import BucketInfo, ObjectStore

__all__ = ["handle_s3", "S3Services", "Stage", "HANDLERS", "vhost_bucket"]

log = logging.getLogger("coffer.gateway.s3")

Handler = Callable[[S3Call], Awaitable[web.StreamResponse]]
HANDLERS: Mapping[str, Handler] = {
    **bucket.HANDLERS, **listing.HANDLERS, **object_get.HANDLERS, **object_put.HANDLERS,
    **copy.HANDLERS, **multipart.HANDLERS, **encryption.HANDLERS, **policy.HANDLERS,
    **tagging.HANDLERS, **object_attributes.HANDLERS,
}
# Every handler has an operation (hence an action), every operation a handler.
assert set(HANDLERS) == set(OPERATIONS), set(HANDLERS) ^ set(OPERATIONS)

_KMS_NEEDS_SIGV4 = ("Requests specifying Server Side Encryption with AWS KMS managed keys "
                    "require AWS Signature Version 4.")
_MAX_NOTED_DECISIONS = 64       # DeleteObjects may decide 1000 keys; the record stays bounded


@dataclass(frozen=True, slots=True)
class S3Services:
    store: ObjectStore
    config: Config
    envelope: Any               # gateway.sse.envelope.Envelope
    lookup: CredentialLookup


def vhost_bucket(host: str | None, domains: tuple[str, ...]) -> str | None:
    if not host:
        return None
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower().rstrip(".")
    for domain in domains:
        if name.endswith("." + domain):
            return name[: -len(domain) - 1]
    return None


class Stage:
    """The authorization stage of one request, and its API for the handler (``call.authz``)."""

    def __init__(self, request: web.Request, op: S3Operation, principal: Principal,
                 store: ObjectStore, config: Config, region: str,
                 note: dict[str, Any]) -> None:
        self._request = request
        self._op = op
        self._principal = principal
        self._store = store
        self._config = config
        self._region = region
        self._note = note
        self._ctx = context_of(request)
        self._base = authz.base_context(principal, config.region)
        self._conditions: dict[str, Any] = {**self._base, **op.conditions}
        self._buckets: dict[str, BucketInfo] = {}
        self.authorized = False
        self.tags = tagging.NO_TAGS     # the tags read before authorizing (gateway.s3.tagging)

    def add_tags(self, tags: "tagging.TagPrefetch") -> None:
        """Tag condition keys read before ``authorize`` (s3:ExistingObjectTag/...,
        s3:RequestObjectTag/... of a PutObjectTagging body)."""
        assert not self.authorized
        self.tags = tags
        self._conditions.update(tags.conditions)

    # -- the stage ----------------------------------------------------------------------------

    async def authorize(self, info: BucketInfo | None) -> None:
        """Every permission the operation names, before the handler runs. Raises
        NoSuchBucket (a bucket-scoped operation on a missing bucket), AccessDenied."""
        op = self._op
        if op.spec.scope is Scope.ACCOUNT:
            if self._principal.anonymous:
                raise S3Error("AccessDenied")      # identity policies only: anonymous has none
        else:
            if info is None:
                raise S3Error("NoSuchBucket", BucketName=op.bucket)
            self._buckets[info.name] = info
            if op.spec.sse_from_upload:
                self._conditions.update(await self._upload_sse())
        for perm in op.permissions:
            await self._require(perm)
        self.authorized = True

    async def _upload_sse(self) -> dict[str, Any]:
        """UploadPart / CompleteMultipartUpload are judged on the encryption chosen when the
        upload was created. An unknown upload has none (the handler answers NoSuchUpload);
        any other failure propagates: the keys are never silently dropped."""
        op = self._op
        upload_id = op.query.get("uploadId")
        if not upload_id or op.bucket is None:
            return {}
        try:
            upload = await self._store.get_multipart_upload(op.bucket, upload_id)
        except se.NoSuchUpload:
            return {}
        if upload.key != op.key:
            return {}
        record = upload.meta.get("sse") or {}
        out: dict[str, Any] = {}
        if record.get("mode") in ("aws:kms", "AES256"):
            out["s3:x-amz-server-side-encryption"] = record["mode"]
            if record["mode"] == "aws:kms":
                out["s3:x-amz-server-side-encryption-aws-kms-key-id"] = record.get("key_arn")
        return out

    async def _bucket(self, name: str) -> BucketInfo:
        info = self._buckets.get(name)
        if info is None:
            try:
                info = await self._store.head_bucket(name)
            except se.NoSuchBucket as exc:
                raise S3Error("NoSuchBucket", BucketName=name) from exc
            self._buckets[name] = info
        return info

    async def _decide(self, perm: Permission, context: Mapping[str, Any]):
        owner = policy_doc = None
        if perm.bucket is not None:
            info = await self._bucket(perm.bucket)
            owner = info.owner
            # The owner root's policy management never reads the policy (no lock-out, even
            # by a stored policy that no longer parses).
            if not authz.owner_always(self._principal, perm.action, owner):
                policy_doc = await authz.bucket_policy(self._store, self._ctx.bucket_policies,
                                                       perm.bucket)
        request, decision = authz.decide(self._principal, perm.action, perm.resource,
                                         owner=owner, policy=policy_doc, context=context)
        self._record(request, decision)
        return request, decision

    def _record(self, request, decision) -> None:
        entry = authz.decision_note(request, decision)
        noted = self._note.setdefault("decisions", [])
        self._note["decision_count"] = self._note.get("decision_count", 0) + 1
        if len(noted) < _MAX_NOTED_DECISIONS:
            noted.append(entry)
        elif not decision.allowed:
            # Full: a denial displaces the last allow, so the bounded list keeps every denial
            # it can (the ones an auditor looks for in a 1000-key DeleteObjects).
            for i in range(len(noted) - 1, -1, -1):
                if noted[i].get("allowed"):
                    noted[i] = entry
                    break
        # The record's authorizationDecision: the first denial, else the first allow.
        first = self._note.get("decision")
        if first is None or (first.get("allowed") and not decision.allowed):
            self._note["decision"] = entry

    async def _require(self, perm: Permission) -> None:
        context = self._conditions if perm.request_conditions else self._base
        request, decision = await self._decide(perm, context)
        if not decision.allowed:
            raise authz.denied(request, decision)

    # -- the handler's API ----------------------------------------------------------------------

    def _resource(self, bucket_name: str, key: str | None) -> str:
        return authz.object_arn(bucket_name, key) if key is not None \
            else authz.bucket_arn(bucket_name)

    async def allowed(self, action: str, key: str | None = None,
                      bucket_name: str | None = None) -> bool:
        """Whether ``action`` on ``key`` (None: the bucket) of ``bucket_name`` (default: the
        request's) is allowed, judged with the request's condition keys."""
        assert self.authorized, "the stage authorizes the operation first"
        name = bucket_name or self._op.bucket
        assert name is not None
        perm = Permission(action, self._resource(name, key), name, key)
        return (await self._decide(perm, self._conditions))[1].allowed

    async def missing_key(self, key: str, bucket_name: str | None = None) -> S3Error:
        """The error for a key that does not exist: NoSuchKey to callers allowed
        s3:ListBucket on its bucket, AccessDenied to others (S3 hides what is absent)."""
        name = bucket_name or self._op.bucket
        assert name is not None
        perm = Permission("s3:ListBucket", authz.bucket_arn(name), name)
        if (await self._decide(perm, self._base))[1].allowed:
            return S3Error("NoSuchKey", Key=key)
        return S3Error("AccessDenied")

    def check_key_use(self, mode: str | None) -> None:
        """Refuse SSE-KMS use over SigV2 or anonymously (InvalidArgument, as S3 answers)."""
        if mode == SSE_KMS and not self._principal.sigv4:
            raise S3Error("InvalidArgument", _KMS_NEEDS_SIGV4, ArgumentName="Authorization",
                          ArgumentValue="null")

    def caller(self, mode: str | None) -> Caller:
        """The KMS Caller for a key use in SSE ``mode`` (``aws:kms``, ``AES256``, ``SSE-C``):
        S3 calling the KMS on the principal's behalf (kms:ViaService)."""
        assert self.authorized, "the stage authorizes the operation first"
        self.check_key_use(mode)
        return self._principal.caller(
            request_id=self._ctx.request_id,
            via_service=f"s3.{self._region or self._config.region}.amazonaws.com",
            requested_region=self._principal.signed_region or None)


def _principal(request: web.Request, auth_ctx: AuthContext) -> Principal:
    try:
        return principal_for(request, auth_ctx)
    except PrincipalError as exc:
        raise S3Error("AccessDenied" if exc.denied else "InternalError") from exc


async def _request_region(store: ObjectStore, cfg: Config, ctx: AuthContext,
                          op: S3Operation) -> tuple[str, BucketInfo | None]:
    """The region serving an S3 request and its bucket's record when it exists: the bucket's
    region (a SigV4 request signed for another region is AuthorizationHeaderMalformed naming
    the right one, as AWS answers), else the signed region (CreateBucket without a
    LocationConstraint, ListBuckets)."""
    signed = ctx.region if ctx.method.startswith("sigv4") else None
    if op.bucket:
        try:
            info = await store.head_bucket(op.bucket)
        except se.NoSuchBucket:
            info = None         # the stage answers NoSuchBucket where the bucket must exist
        if info is not None:
            if signed and signed != info.region:
                raise S3Error("AuthorizationHeaderMalformed",
                              **wrong_region(signed, info.region))
            return info.region, info
    if signed and signed != cfg.region and not region_allowed(cfg, signed):
        raise S3Error("AuthorizationHeaderMalformed", **wrong_region(signed, cfg.region))
    return signed or cfg.region, None


async def handle_s3(request: web.Request, note: dict[str, Any],
                    services: S3Services) -> web.StreamResponse:
    """One S3 request through every stage; ``note`` is its audit note."""
    cfg = services.config
    vhost = vhost_bucket(request.headers.get("Host"), cfg.domains)
    auth_ctx = auth.authenticate(request.method, request.raw_path, request.headers,
                                 services.lookup, clock=time.time, server_region=cfg.region,
                                 vhost_bucket=vhost)
    note["auth"] = auth_ctx
    try:
        op = parse_request(request.method, request.raw_path, vhost, request.headers)
    except UnknownOperation as exc:
        # A routed name without an action: never dispatched (fail closed), and loud.
        log.error("request %s: operation %s has no entry in OPERATIONS",
                  context_of(request).request_id, exc)
        raise S3Error("InternalError") from exc
    note["op"] = op
    context_of(request).operation = op
    principal = _principal(request, auth_ctx)
    handler = HANDLERS.get(op.name)
    if handler is None:          # unreachable while the import-time check holds: fail closed
        raise S3Error("InternalError")
    region, info = await _request_region(services.store, cfg, auth_ctx, op)
    note["region"] = region
    stage = Stage(request, op, principal, services.store, cfg, region, note)
    stage.add_tags(await tagging.prefetch(request, op, auth_ctx, services.store,
                                          info is not None))
    await stage.authorize(info)
    call = S3Call(request=request, op=op, auth=auth_ctx, principal=principal,
                  store=services.store, config=cfg,
                  envelope=services.envelope.in_region(region), region=region,
                  bucket_info=info, authz=stage)
    return await handler(call)
