"""The aiohttp application: one factory, typed state, one dispatcher.

Every request but the unsigned ``GET /health`` and ``GET /ready`` (gateway/readiness.py) is
routed on the credential-scope service
(``s3``, ``kms``, ``iam`` / ``sts``, ``cloudtrail``) to its face; S3 requests go through the
edge pipeline of ``gateway.s3.dispatch`` (authenticate, parse, authorize once, dispatch),
wrapped by the audit trail. The one route matches every path, newlines included (S3 keys may
hold any UTF-8; aiohttp's default ``.*`` stops at a newline and would answer 404).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import HttpVersion11, web

from gateway import auth
from gateway.audit_trail import AUDIT, AuditTrail
from gateway.auth.types import Credential
from gateway.cloudtrail_api.handler import handle_cloudtrail
from gateway.config import Config
from gateway.credentials import load_or_create_root
from gateway.context import request_id_of
from gateway.errors import GatewayError, query_error_response, to_s3
from gateway.iam_api.handler import handle_iam
from gateway.iam_api.xml import STS_NS
from gateway.identity import IdentityStore
from gateway.key_usage import deletion_warning
from gateway.kms_api.handler import handle_kms
from gateway.context import CONTEXT, RequestContext
from gateway.metrics import Metrics, TimedSink
from gateway.middleware import error_middleware, new_request_id, on_prepare, render_error
from gateway.readiness import ready_response
from gateway.s3.dispatch import S3Services, handle_s3
from gateway.s3.errors import S3Error
from gateway.regions import region_allowed
from gateway.sse.envelope import Envelope
from kms.audit import FailOpenSink, TrailSink
from kms.rootkeys import HSMSettings
from kms.service import KMS
from storage.base import ObjectStore
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

_UNSIGNED_PATHS = {"/health", "/ready"}


def _is_unsigned(request: web.Request) -> bool:
    return ("Authorization" not in request.headers and "X-Amz-Signature" not in request.query
            and "Signature" not in request.query)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def dispatch(request: web.Request) -> web.StreamResponse:
    if request.path in _UNSIGNED_PATHS and request.method == "GET" and _is_unsigned(request):
        if request.path == "/ready":
            return await ready_response(request.app[CONFIG].data_dir,
                                        request.app.get(KMS_SERVICE))
        return await _health(request)
    cfg = request.app[CONFIG]
    lookup = request.app[LOOKUP]
    service = auth.peek_service(request.raw_path, request.headers)
    if service == "kms":
        return await handle_kms(request, request.app[KMS_SERVICE], lookup, cfg.region,
                                regions=lambda r: region_allowed(cfg, r))
    if service in ("iam", "sts"):
        trail = request.app[AUDIT]
        response = await handle_iam(request, request.app[IDENTITY], lookup, cfg.region, service,
                                    audit=trail)
        if not await trail.record_iam(request, response):
            # Fail closed: no success is reported without its durable outcome record.
            return query_error_response("ServiceFailure", "An internal error occurred", 500,
                                        request_id_of(request), sender=False,
                                        **({"namespace": STS_NS} if service == "sts" else {}))
        return response
    if service == "cloudtrail":
        return await handle_cloudtrail(request, cfg.data_dir / "audit", lookup, cfg.region,
                                       request.app[IDENTITY])
    if service != "s3":
        raise S3Error("NotImplemented", f"The {service} service is not available on this "
                      "endpoint yet")
    # One CloudTrail record per S3 request (data or management event), see gateway/audit_trail.
    services = S3Services(store=request.app[STORE], config=cfg,
                          envelope=request.app[ENVELOPE], lookup=lookup)

    async def s3_face(note: dict) -> web.StreamResponse:
        # The S3 face reads neutral auth/payload errors as S3 codes here, where the audit
        # record of the request can still name them.
        try:
            return await handle_s3(request, note, services)
        except GatewayError as err:
            raise to_s3(err) from None

    return await request.app[AUDIT].audited_s3(request, s3_face)


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


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` as aiohttp does it; any other expectation is 417 in S3 XML.
    aiohttp's own handler echoes the header into a text it then fails to encode when the
    value holds non-UTF-8 bytes (a 500 before any middleware runs)."""
    if request.headers.get("Expect", "").lower() == "100-continue":
        if request.version == HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        return None
    request[CONTEXT] = RequestContext(request_id=new_request_id())
    return render_error(request, S3Error("InvalidRequest", "The Expect header value is not "
                                         "supported", status=417))


def make_app(cfg: Config, store: ObjectStore | None = None,
             metrics: Metrics | None = None) -> web.Application:
    """The application; ``metrics`` (gateway/metrics.py) is fed by the audit sink, the KMS
    and the Bucket Key caches when given (requests are observed by the access log)."""
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
    if metrics is not None:
        sink = TimedSink(sink, metrics)
        metrics.watch_storage(cfg.data_dir, cfg.metrics_scan_interval)
    trail_sink = FailOpenSink(sink) if cfg.audit_fail_open else sink
    app[AUDIT] = AuditTrail(trail_sink, region=cfg.region, fail_open=cfg.audit_fail_open,
                            retention_days=cfg.audit_retention_days)
    app[STORE] = app[AUDIT].wrap_store(app[STORE])     # intent records before S3 commits
    app[AUDIT].bind_identity(identity)                 # ... and before IAM commits

    async def kms_ctx(app: web.Application):
        kms = KMS.open(cfg.data_dir, region=cfg.region, audit=trail_sink,
                       hsm=HSMSettings.from_env(module_path=cfg.pkcs11_module,
                                                root_provider=cfg.root_key))
        app[KMS_SERVICE] = kms
        kms.region_allowed = lambda r: region_allowed(cfg, r)
        kms.deletion_probe = lambda arn: deletion_warning(cfg.data_dir / "s3", arn)
        kms.principal_exists = app[IDENTITY].principal_exists
        kms.principal_id = app[IDENTITY].principal_user_id
        app[ENVELOPE] = Envelope(kms, region=cfg.region, bucket_key_ttl=cfg.bucket_key_ttl)
        if metrics is not None:
            kms.call_observer = metrics.observe_kms_call
            envelope = app[ENVELOPE]
            # The envelope's two caches (gateway/sse/envelope.py), read at scrape time.
            metrics.watch_bucket_keys(lambda: {
                "generate": getattr(envelope, "_bucket_keys", None),
                "decrypt": getattr(envelope, "_opened_bucket_keys", None)})
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
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch, expect_handler=_expect)
    return app


def describe(cfg: Config) -> str:
    return json.dumps({"host": cfg.host, "port": cfg.port, "data_dir": str(cfg.data_dir),
                       "region": cfg.region, "tls": cfg.tls})
