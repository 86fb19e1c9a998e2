"""The aiohttp application: one factory, typed state, one dispatcher.

Every request but the unsigned ``GET /health`` is authenticated (SigV4 or SigV2), routed on the
credential-scope service (``s3`` today; ``kms``, ``iam`` come with their issues), parsed into a
typed S3 operation and dispatched to its handler.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Awaitable, Callable

from aiohttp import web

from gateway import auth
from gateway.audit_trail import AUDIT, AuditTrail
from gateway.auth.types import Credential
from gateway.cloudtrail_api.handler import handle_cloudtrail
from gateway.config import Config
from gateway.credentials import load_or_create_root
from gateway.errors import GatewayError, to_s3
from gateway.iam_api.handler import handle_iam
from gateway.identity import IdentityStore
from gateway.key_usage import deletion_warning
from gateway.kms_api.handler import handle_kms
from gateway.middleware import error_middleware, on_prepare
from gateway.s3 import (bucket, copy, encryption, listing, multipart, object_get, object_put,
                        policy)
from gateway.s3.common import S3Call
from gateway.s3.errors import S3Error
from gateway.s3.router import parse_request
from gateway.regions import region_allowed, wrong_region
from storage.errors import StorageError
from gateway.sse.envelope import Envelope
from kms.audit import FailOpenSink, TrailSink
from kms.rootkeys import HSMSettings
from kms.service import KMS
from storage.base import BucketInfo, ObjectStore
from storage.fs import FSObjectStore

__all__ = ["make_app", "CONFIG", "STORE", "CREDENTIALS", "KMS_SERVICE", "ENVELOPE", "IDENTITY",
           "LOOKUP"]

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", ObjectStore)
CREDENTIALS = web.AppKey("credentials", dict)
KMS_SERVICE = web.AppKey("kms", KMS)
ENVELOPE = web.AppKey("envelope", Envelope)
IDENTITY = web.AppKey("identity", IdentityStore)
# access key id -> Credential | None: the root file's key first, then the identity store.
LOOKUP = web.AppKey("lookup", object)

log = logging.getLogger("coffer.gateway")

Handler = Callable[[S3Call], Awaitable[web.StreamResponse]]
S3_HANDLERS: dict[str, Handler] = {
    **bucket.HANDLERS, **listing.HANDLERS, **object_get.HANDLERS, **object_put.HANDLERS,
    **copy.HANDLERS, **multipart.HANDLERS, **encryption.HANDLERS, **policy.HANDLERS,
}
_UNSIGNED_PATHS = {"/health"}


def _vhost_bucket(host: str | None, domains: tuple[str, ...]) -> str | None:
    if not host:
        return None
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower().rstrip(".")
    for domain in domains:
        if name.endswith("." + domain):
            return name[: -len(domain) - 1]
    return None


def _is_unsigned(request: web.Request) -> bool:
    return ("Authorization" not in request.headers and "X-Amz-Signature" not in request.query
            and "Signature" not in request.query)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def dispatch(request: web.Request) -> web.StreamResponse:
    if request.path in _UNSIGNED_PATHS and request.method == "GET" and _is_unsigned(request):
        return await _health(request)
    cfg = request.app[CONFIG]
    lookup = request.app[LOOKUP]
    service = auth.peek_service(request.raw_path, request.headers)
    if service == "kms":
        return await handle_kms(request, request.app[KMS_SERVICE], lookup, cfg.region,
                                regions=lambda r: region_allowed(cfg, r))
    if service in ("iam", "sts"):
        response = await handle_iam(request, request.app[IDENTITY], lookup, cfg.region, service)
        await request.app[AUDIT].record_iam(request, response)
        return response
    if service == "cloudtrail":
        return await handle_cloudtrail(request, cfg.data_dir / "audit", lookup, cfg.region,
                                       request.app[IDENTITY])
    if service != "s3":
        raise S3Error("NotImplemented", f"The {service} service is not available on this "
                      "endpoint yet")
    # One CloudTrail record per S3 request (data or management event), see gateway/audit_trail.
    return await request.app[AUDIT].audited_s3(request, lambda note: _s3_face(request, note))


async def _s3_face(request: web.Request, note: dict) -> web.StreamResponse:
    """The S3 face reads neutral auth/payload errors as S3 codes here, where the audit record
    of the request can still name them."""
    try:
        return await _s3(request, note)
    except GatewayError as err:
        raise to_s3(err) from None


async def _s3(request: web.Request, note: dict) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    lookup = request.app[LOOKUP]
    vhost = _vhost_bucket(request.headers.get("Host"), cfg.domains)
    ctx = auth.authenticate(request.method, request.raw_path, request.headers, lookup,
                            clock=time.time, server_region=cfg.region, vhost_bucket=vhost)
    # Anonymous requests (ctx.credential None) go on: gateway.s3.authz lets them do only what a
    # bucket policy grants to Principal "*".
    note["auth"] = ctx
    op = parse_request(request.method, request.raw_path, vhost)
    if op.operation == "PutObject" and "x-amz-copy-source" in request.headers:
        op.operation = "CopyObject"
    note["op"] = op
    handler = S3_HANDLERS.get(op.operation)
    if handler is None:
        raise S3Error("NotImplemented")
    region, info = await _request_region(request.app[STORE], cfg, ctx, op)
    note["region"] = region
    call = S3Call(request=request, op=op, auth=ctx, store=request.app[STORE], config=cfg,
                  envelope=request.app[ENVELOPE].in_region(region), region=region,
                  bucket_info=info)
    return await handler(call)


async def _request_region(store: ObjectStore, cfg: Config, ctx,
                          op) -> tuple[str, BucketInfo | None]:
    """The region serving an S3 request and its bucket's record when it exists: the bucket's
    region (a SigV4 request signed for another region is AuthorizationHeaderMalformed naming
    the right one, as AWS answers), else the signed region (CreateBucket without a
    LocationConstraint, ListBuckets)."""
    signed = ctx.region if ctx.method.startswith("sigv4") else None
    if op.bucket:
        try:
            info = await store.head_bucket(op.bucket)
        except StorageError:
            info = None         # NoSuchBucket etc. come from the handler
        if info is not None:
            if signed and signed != info.region:
                raise S3Error("AuthorizationHeaderMalformed",
                              **wrong_region(signed, info.region))
            return info.region, info
    if signed and signed != cfg.region and not region_allowed(cfg, signed):
        raise S3Error("AuthorizationHeaderMalformed", **wrong_region(signed, cfg.region))
    return signed or cfg.region, None


async def _kms_scheduler(kms: KMS, interval: float) -> None:
    """Apply due key rotations, material expiries and deletions (audited by the KMS as
    AwsServiceEvent records) in every region holding keys. Runs at start and then every
    ``interval`` seconds."""
    names = ("apply_due_expirations", "apply_due_rotations", "apply_due_deletions")
    while True:
        try:
            regional = await asyncio.to_thread(kms.regions_with_keys)
        except Exception:  # noqa: BLE001 - the scheduler must outlive one bad run
            log.exception("kms scheduler: listing regions failed")
            regional = [kms]
        jobs = [getattr(k, name) for name in names for k in regional if hasattr(k, name)]
        for job in jobs:
            try:
                done = await asyncio.to_thread(job)
                if done:
                    log.info("kms scheduler: %s applied to %d key(s)", job.__name__, len(done))
            except Exception:  # noqa: BLE001 - the scheduler must outlive one bad run
                log.exception("kms scheduler: %s failed", job.__name__)
        await asyncio.sleep(interval)


def make_app(cfg: Config, store: ObjectStore | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=1024 ** 2)
    app[CONFIG] = cfg
    app[STORE] = store or FSObjectStore(cfg.data_dir / "s3")
    root = load_or_create_root(cfg.data_dir, cfg.root_access_key, cfg.root_secret_key)
    table: dict[str, Credential] = {root.credential.access_key_id: root.credential}
    app[CREDENTIALS] = table
    identity = IdentityStore.open(cfg.data_dir, key_file=cfg.iam_key_file)
    identity.ensure_account(root.credential.account_id)
    app[IDENTITY] = identity

    def lookup(access_key_id: str) -> Credential | None:
        return table.get(access_key_id) or identity.lookup(access_key_id)

    app[LOOKUP] = lookup

    async def storage_ctx(app: web.Application):
        await app[STORE].open()
        yield
        await app[STORE].close()

    audit_dir = cfg.data_dir / "audit"
    sink = TrailSink(audit_dir, max_bytes=cfg.audit_roll_bytes, max_age=cfg.audit_roll_interval)
    trail_sink = FailOpenSink(sink) if cfg.audit_fail_open else sink
    app[AUDIT] = AuditTrail(trail_sink, region=cfg.region, fail_open=cfg.audit_fail_open)

    async def kms_ctx(app: web.Application):
        kms = KMS.open(cfg.data_dir, region=cfg.region, audit=trail_sink,
                       hsm=HSMSettings.from_env(module_path=cfg.pkcs11_module,
                                                root_provider=cfg.root_key))
        app[KMS_SERVICE] = kms
        kms.region_allowed = lambda r: region_allowed(cfg, r)
        kms.deletion_probe = lambda arn: deletion_warning(cfg.data_dir / "s3", arn)
        app[ENVELOPE] = Envelope(kms, region=cfg.region, bucket_key_ttl=cfg.bucket_key_ttl)
        scheduler = asyncio.create_task(_kms_scheduler(kms, cfg.scheduler_interval))
        digester = asyncio.create_task(app[AUDIT].digest_loop(kms, audit_dir,
                                                              cfg.audit_digest_interval))
        yield
        for task in (scheduler, digester):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:   # a digest on clean shutdown (SIGTERM/SIGINT)
            await asyncio.to_thread(app[AUDIT].digest, kms, audit_dir)
        except Exception:  # noqa: BLE001 - shutdown goes on; the next start digests
            log.exception("audit digest on shutdown failed")
        app[ENVELOPE].close()
        kms.close()

    async def identity_ctx(app: web.Application):
        yield
        app[IDENTITY].close()

    app.cleanup_ctx.append(identity_ctx)
    app.cleanup_ctx.append(storage_ctx)
    app.cleanup_ctx.append(kms_ctx)
    app.on_response_prepare.append(on_prepare)
    app.on_response_prepare.append(app[AUDIT].on_prepare)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def describe(cfg: Config) -> str:
    return json.dumps({"host": cfg.host, "port": cfg.port, "data_dir": str(cfg.data_dir),
                       "region": cfg.region, "tls": cfg.tls})
