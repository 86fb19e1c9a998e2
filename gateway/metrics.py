"""Prometheus metrics, served on a listener of their own (``coffer serve --metrics-port``).

Why not on the S3 port (DESIGN.md once said unsigned ``/metrics`` there; issue 15 wins): the
metrics describe the whole server, and anyone who can reach the S3 port must not learn its
traffic. The metrics listener binds ``--metrics-host`` (default 127.0.0.1) and, with
``--metrics-token-file``, wants ``Authorization: Bearer <token>`` (hmac.compare_digest).

What is exported (``coffer_`` prefix)::

    requests_total{api,operation,code}            every answered request, parser rejections too
    request_duration_seconds{api,operation}       histogram, head received -> last byte sent
    request_bytes_total / response_bytes_total{api,operation}   body bytes in / out
    kms_calls_total{operation,key_spec,error}     every KMS call (the KMS API and S3's SSE path)
    bucket_key_cache_hits_total / _misses_total{use}   use = generate (writes) | decrypt (reads)
    audit_write_duration_seconds{source}, audit_write_failures_total{source}
    stored_objects{mode}, stored_bytes{mode}, stored_unencrypted_objects,
    stored_unreadable_objects, storage_scan_timestamp_seconds

Label values are bounded by construction: ``api`` is one of ``APIS``; ``operation`` a name from
the S3 operations table (gateway/s3/operations.py), the KMS or IAM operation tables, or
``other`` / ``none``; ``code`` an HTTP status; ``key_spec`` a KMS KeySpec; ``error`` a KMS
``__type``; ``mode`` an SSE mode of gateway/encryption_report.py. Bucket names, object keys,
access key ids and principal ARNs never become labels: they are unbounded (one series each)
and they are the customer's data.

The storage gauges come from the encryption-report scanner (read-only, sidecars only). A scrape
reuses the last scan while it is younger than ``scan_interval`` seconds (default 60), so they
are at most that stale and scraping more often costs nothing; the scan runs in a thread, off
the event loop.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["Metrics", "RequestSample", "APIS", "TimedSink", "bounded_api", "bounded_operation",
           "start_metrics_listener",
           "read_token_file", "MetricsTokenError"]

log = logging.getLogger("coffer.metrics")

APIS = ("s3", "kms", "iam", "sts", "cloudtrail")
OTHER = "other"
NONE = "none"
# Latency buckets for an object store: sub-millisecond KMS-cached GETs up to multi-GiB uploads.
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0, 300.0)
_AUDIT_LATENCY = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 1.0)
DEFAULT_SCAN_INTERVAL = 60.0


def _operation_tables() -> dict[str, frozenset[str]]:
    from gateway.cloudtrail_api.handler import TARGET_PREFIX  # noqa: F401 - the face exists
    from gateway.iam_api.operations import OPERATIONS as IAM_OPERATIONS
    from gateway.kms_api.handler import OPERATIONS as KMS_OPERATIONS
    from gateway.s3.operations import OPERATIONS as S3_OPERATIONS
    return {"s3": frozenset(S3_OPERATIONS), "kms": frozenset(KMS_OPERATIONS),
            "iam": frozenset(IAM_OPERATIONS), "sts": frozenset({"GetCallerIdentity"}),
            "cloudtrail": frozenset({"LookupEvents"})}


_TABLES: dict[str, frozenset[str]] | None = None


def bounded_operation(api: str, name: str | None) -> str:
    """``name`` if it is an operation of ``api``'s table, else ``other`` (``none`` when the
    request never got as far as naming one)."""
    global _TABLES
    if not name:
        return NONE
    if _TABLES is None:
        _TABLES = _operation_tables()
    return name if name in _TABLES.get(api, ()) else OTHER


def bounded_api(api: str | None) -> str:
    """``api`` if it is one of ``APIS``, else ``other`` (the signed service is the client's
    claim), ``none`` when there is none."""
    if not api:
        return NONE
    return api if api in APIS else OTHER


class _CacheCollector:
    """Bucket Key cache hits and misses, read from the envelope's caches at scrape time."""

    def __init__(self, caches: Callable[[], dict[str, Any]]) -> None:
        self._caches = caches

    def describe(self) -> Iterable:
        return []        # registration must not run collect() (gateway.metrics docstring)

    def collect(self) -> Iterable:
        hits = CounterMetricFamily("coffer_bucket_key_cache_hits",
                                   "S3 Bucket Key cache lookups that found a live entry",
                                   labels=["use"])
        misses = CounterMetricFamily("coffer_bucket_key_cache_misses",
                                     "S3 Bucket Key cache lookups that needed a KMS call",
                                     labels=["use"])
        for use, cache in self._caches().items():
            hits.add_metric([use], getattr(cache, "hits", 0))
            misses.add_metric([use], getattr(cache, "misses", 0))
        return [hits, misses]


class _StorageCollector:
    """Objects and bytes by SSE mode from the encryption-report scanner, cached (module
    docstring: at most ``interval`` seconds old)."""

    def __init__(self, data_dir: Path, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._data_dir = Path(data_dir)
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._wall = 0.0
        self._total: dict[str, Any] | None = None

    def _scan(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            if self._total is None or self._at is None or now - self._at >= self._interval:
                from gateway.encryption_report import encryption_report
                try:
                    self._total = encryption_report(self._data_dir)["total"]
                except OSError as exc:   # the store moved under us: keep the last scan
                    log.warning("metrics storage scan failed: %s", exc)
                    if self._total is None:
                        raise
                self._at, self._wall = now, time.time()
            return self._total

    def describe(self) -> Iterable:
        return []        # registering must not scan (and cache an empty store for a minute)

    def collect(self) -> Iterable:
        from gateway.encryption_report import MODES
        total = self._scan()
        objects = GaugeMetricFamily("coffer_stored_objects",
                                    "Objects (every stored version) by SSE mode", labels=["mode"])
        size = GaugeMetricFamily("coffer_stored_bytes",
                                 "Plaintext bytes of stored objects by SSE mode", labels=["mode"])
        for mode in MODES:
            agg = total["byMode"].get(mode, {"objects": 0, "bytes": 0})
            objects.add_metric([mode], agg["objects"])
            size.add_metric([mode], agg["bytes"])
        plain = total["byMode"].get("none", {"objects": 0})["objects"]
        return [objects, size,
                GaugeMetricFamily("coffer_stored_unencrypted_objects",
                                  "Objects stored without server-side encryption", value=plain),
                GaugeMetricFamily("coffer_stored_unreadable_objects",
                                  "Object records the scan could not read",
                                  value=total.get("unreadable", 0)),
                GaugeMetricFamily("coffer_storage_scan_timestamp_seconds",
                                  "When the storage gauges were computed (Unix time)",
                                  value=self._wall)]


@dataclass(frozen=True, slots=True)
class RequestSample:
    """One answered request as the access log saw it (gateway/access_log.py)."""
    api: str | None
    operation: str | None
    status: int
    seconds: float
    bytes_in: int
    bytes_out: int


class Metrics:
    """The server's metrics, in a registry of their own (never the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("coffer_requests", "Requests answered",
                                ["api", "operation", "code"], registry=r)
        self.duration = Histogram("coffer_request_duration_seconds",
                                  "Time from request head to the last byte of the answer",
                                  ["api", "operation"], buckets=_LATENCY, registry=r)
        self.bytes_in = Counter("coffer_request_bytes", "Request body bytes received",
                                ["api", "operation"], registry=r)
        self.bytes_out = Counter("coffer_response_bytes", "Response body bytes sent",
                                 ["api", "operation"], registry=r)
        self.kms_calls = Counter("coffer_kms_calls", "KMS operations by key spec and error",
                                 ["operation", "key_spec", "error"], registry=r)
        self.audit_latency = Histogram("coffer_audit_write_duration_seconds",
                                       "Time to append (and fsync) one audit record",
                                       ["source"], buckets=_AUDIT_LATENCY, registry=r)
        self.audit_failures = Counter("coffer_audit_write_failures",
                                      "Audit records that could not be written", ["source"],
                                      registry=r)
        self._kms_ops: frozenset[str] | None = None

    # -- sources ------------------------------------------------------------------------------

    def observe_request(self, sample: RequestSample) -> None:
        api = bounded_api(sample.api)
        op = bounded_operation(api, sample.operation)
        code = str(sample.status) if 100 <= sample.status <= 599 else "0"
        self.requests.labels(api, op, code).inc()
        self.duration.labels(api, op).observe(max(sample.seconds, 0.0))
        if sample.bytes_in > 0:
            self.bytes_in.labels(api, op).inc(sample.bytes_in)
        if sample.bytes_out > 0:
            self.bytes_out.labels(api, op).inc(sample.bytes_out)

    def observe_kms_call(self, name: str, key_spec: str | None, error: str | None) -> None:
        """The KMS's call observer (``KMS.call_observer``, kms/calls.py)."""
        from kms.errors import KMSError
        from kms.model import KeySpec
        if self._kms_ops is None:
            from gateway.kms_api.handler import OPERATIONS as KMS_OPERATIONS
            self._kms_ops = frozenset(KMS_OPERATIONS)
        op = name if name in self._kms_ops else OTHER
        spec = key_spec if key_spec in KeySpec.__members__.values() else NONE
        err = NONE
        if error:
            err = error if error in _kms_error_types(KMSError) else OTHER
        self.kms_calls.labels(op, spec, err).inc()

    def watch_bucket_keys(self, caches: Callable[[], dict[str, Any]]) -> None:
        self.registry.register(_CacheCollector(caches))

    def watch_storage(self, data_dir: Path, interval: float = DEFAULT_SCAN_INTERVAL) -> None:
        self.registry.register(_StorageCollector(data_dir, interval))

    def render(self) -> bytes:
        """The exposition text (blocking: the storage scan may run)."""
        return generate_latest(self.registry)


_ERROR_TYPES: frozenset[str] | None = None


def _kms_error_types(base: type) -> frozenset[str]:
    global _ERROR_TYPES
    if _ERROR_TYPES is None:
        seen: set[str] = set()
        stack = [base]
        while stack:
            cls = stack.pop()
            kind = getattr(cls, "type", None)
            if isinstance(kind, str):
                seen.add(kind)
            stack.extend(cls.__subclasses__())
        _ERROR_TYPES = frozenset(seen)
    return _ERROR_TYPES


# eventSource of a gateway record -> the source label of its audit write.
_SOURCES = {"s3.amazonaws.com": "s3", "iam.amazonaws.com": "iam", "sts.amazonaws.com": "sts",
            "kms.amazonaws.com": "kms", "cloudtrail.amazonaws.com": "cloudtrail"}


class TimedSink:
    """An audit sink that times each write and counts the failures, then re-raises them
    (the audited call still fails closed, or ``FailOpenSink`` above it decides)."""

    def __init__(self, inner, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def _timed(self, source: str, write: Callable[[], None]) -> None:
        start = time.perf_counter()
        try:
            write()
        except Exception:
            self._metrics.audit_failures.labels(source).inc()
            raise
        finally:
            self._metrics.audit_latency.labels(source).observe(time.perf_counter() - start)

    def emit(self, event) -> None:
        self._timed("kms", lambda: self._inner.emit(event))

    def emit_record(self, record: dict[str, Any], *, durable: bool = True) -> None:
        source = _SOURCES.get(record.get("eventSource") if isinstance(record, dict) else None,
                              OTHER)
        self._timed(source, lambda: self._inner.emit_record(record, durable=durable))

    def __getattr__(self, name: str):
        # roll, sync, close, directory...: everything else is the trail's own.
        return getattr(self._inner, name)


# -- the listener ---------------------------------------------------------------------------------

class MetricsTokenError(Exception):
    """The bearer token file is missing, unreadable or empty."""


def read_token_file(path: Path) -> bytes:
    """The bearer token in ``path`` (surrounding whitespace dropped). Raises
    MetricsTokenError."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise MetricsTokenError(f"cannot read the metrics token file {path}: "
                                f"{exc.strerror}") from None
    token = raw.strip()
    if not token:
        raise MetricsTokenError(f"the metrics token file {path} is empty")
    return token


def metrics_app(metrics: Metrics, token: bytes | None) -> web.Application:
    expected = b"Bearer " + token if token else None

    async def scrape(request: web.Request) -> web.Response:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, expected):
                return web.Response(status=401, text="a bearer token is required\n",
                                    headers={"WWW-Authenticate": 'Bearer realm="coffer"'})
        body = await asyncio.to_thread(metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


async def start_metrics_listener(metrics: Metrics, host: str, port: int,
                                 token: bytes | None) -> web.AppRunner:
    """Serve ``GET /metrics`` on ``host:port``; the caller cleans the runner up."""
    runner = web.AppRunner(metrics_app(metrics, token), access_log=None,
                           handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("metrics on http://%s:%d/metrics%s", host, port,
             " (bearer token required)" if token else "")
    return runner
