"""The access log and the request metrics: one line, and one observation, per answered request.

aiohttp calls ``AccessObserver.log(request, response, seconds)`` after the last byte of each
answer has been written (``RequestHandler.log_access``), parser rejections included, so the
duration and byte counts are the real ones. The line goes to the ``coffer.access`` logger
(stderr), ``--log-format text`` (default) or ``json``::

    text: access rid=8F3A... api=s3 op=PutObject status=200 error=- principal="arn:aws:iam::
          111122223333:user/alice" bucket="photos" key="2026/holiday.jpg" in=5120 out=0 ms=12.4
    json: {"time": ..., "level": "INFO", "logger": "coffer.access", "message": "access",
           "requestId", "api", "operation", "status", "errorCode", "principal", "bucket",
           "key", "bytesIn", "bytesOut", "durationMs"}

``requestId`` is the ``x-amz-request-id`` the client saw. ``api`` and ``operation`` come from
fixed tables (gateway.metrics: an unknown service or target is ``other``), never verbatim
from the request. ``principal`` is the authenticated
principal's ARN (``anonymous`` for an unsigned request, ``-`` when authentication failed).
``bucket`` and ``key`` are cut to 256 characters (the cut is marked with ``…``) and escaped
(JSON string escaping, ASCII only, so a key holding a newline, a quote or a lone surrogate
stays on its line). What is never logged: headers, the query string (a presigned URL carries
its signature there), the Authorization header, SSE-C keys, request or response bodies.

A request the HTTP parser refused (a bad request line, too many headers, a bad chunk size) is
one short line, ``rejected rid=... status=400 error=BadRequest reason=BadHttpMessage peer=...``:
the reason is the parser's error class, never the bytes the client sent.
"""
from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gateway.context import CONTEXT

__all__ = ["access_logger_class", "JSONFormatter", "REJECTED", "configure_logging",
           "LOG_FORMATS", "FIELD_LIMIT"]

LOG_FORMATS = ("text", "json")
FIELD_LIMIT = 256
ACCESS_LOGGER = "coffer.access"
# Set by gateway.listener on a request the HTTP parser refused: the parser error's class name.
REJECTED: web.RequestKey[str] = web.RequestKey("coffer_rejected", str)

_XML_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
_JSON_TYPE = re.compile(rb'"__type"\s*:\s*"(?:[^"#]{0,128}#)?([A-Za-z0-9.]{1,64})"')
_MAX_SCAN = 64 * 1024


def _bounded(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= FIELD_LIMIT else text[:FIELD_LIMIT] + "…"


def _quoted(value: str | None) -> str:
    return "-" if value is None else json.dumps(value, ensure_ascii=True)


def _error_code(response: web.StreamResponse) -> str | None:
    """The AWS error code in an error answer's body (S3 / Query XML ``<Code>``, JSON
    ``__type``); None for a success or a body-less answer (HEAD)."""
    if response.status < 300:
        return None
    body = getattr(response, "body", None)
    if not isinstance(body, (bytes, bytearray)) or not body:
        return None
    head = bytes(body[:_MAX_SCAN])
    m = _JSON_TYPE.search(head) if head.lstrip().startswith(b"{") else _XML_CODE.search(head)
    return m.group(1).decode("ascii") if m else None


def _api(request: web.BaseRequest) -> str:
    from gateway import auth
    try:
        return auth.peek_service(request.raw_path, request.headers)
    except Exception:  # noqa: BLE001 - unparseable: answered by the S3 face (middleware)
        return "s3"


def _operation(api: str, request: web.BaseRequest, ctx) -> str | None:
    if api == "s3":
        op = getattr(ctx, "operation", None)
        return getattr(op, "name", None)
    if api in ("kms", "cloudtrail"):
        target = request.headers.get("X-Amz-Target", "")
        return target.rsplit(".", 1)[-1] if target else None
    note = getattr(ctx, "audit", None)
    return note.get("action") if isinstance(note, dict) else None


def _principal(ctx) -> str | None:
    principal = getattr(ctx, "principal", None)
    if principal is None:
        return None
    return "anonymous" if principal.anonymous else principal.arn


def _bytes_out(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """Body bytes sent: the Content-Length of a complete answer; for a chunked one (or one
    cut short) the bytes written to the connection, which include the head."""
    if request.method == "HEAD" or response.status in (204, 304):
        return 0
    written = response.body_length
    length = response.content_length
    return min(length, written) if length is not None else written


def summarize(request: web.BaseRequest, response: web.StreamResponse,
              seconds: float) -> dict[str, Any]:
    """The access record of one answered request (module docstring)."""
    ctx = request.get(CONTEXT)
    rid = response.headers.get("x-amz-request-id") or getattr(ctx, "request_id", "") or "-"
    bytes_in = getattr(request.content, "total_bytes", 0) or 0
    rec: dict[str, Any] = {"requestId": rid, "status": response.status,
                           "errorCode": _error_code(response), "bytesIn": bytes_in,
                           "bytesOut": _bytes_out(request, response),
                           "durationMs": round(seconds * 1000, 3)}
    rejected = request.get(REJECTED)
    if rejected is not None:
        rec.update(rejected=rejected, peer=request.remote or "")
        return rec
    from gateway.metrics import bounded_api, bounded_operation
    api = bounded_api(_api(request))
    op = getattr(ctx, "operation", None) if api == "s3" else None
    # Both from fixed tables: the signed service and X-Amz-Target are the client's claims.
    name = _operation(api, request, ctx)
    rec.update(api=api, operation=bounded_operation(api, name) if name else None,
               principal=_principal(ctx), bucket=_bounded(getattr(op, "bucket", None)),
               key=_bounded(getattr(op, "key", None)))
    return rec


def _text(rec: dict[str, Any]) -> str:
    if "rejected" in rec:
        return (f"rejected rid={rec['requestId']} status={rec['status']} "
                f"error={rec['errorCode'] or '-'} reason={rec['rejected']} peer={rec['peer']}")
    return (f"access rid={rec['requestId']} api={rec['api']} op={rec['operation'] or '-'} "
            f"status={rec['status']} error={rec['errorCode'] or '-'} "
            f"principal={_quoted(rec['principal'])} bucket={_quoted(rec['bucket'])} "
            f"key={_quoted(rec['key'])} in={rec['bytesIn']} out={rec['bytesOut']} "
            f"ms={rec['durationMs']}")


def access_logger_class(metrics=None, *, fmt: str = "text") -> type[AbstractAccessLogger]:
    """The ``access_log_class`` for aiohttp's request handlers: logs each request in ``fmt``
    and feeds ``metrics`` (gateway.metrics.Metrics) when given."""

    class AccessObserver(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse,
                time: float) -> None:
            try:
                rec = summarize(request, response, time)
                if metrics is not None:
                    from gateway.metrics import RequestSample
                    metrics.observe_request(RequestSample(
                        api=rec.get("api"), operation=rec.get("operation"),
                        status=response.status, seconds=time, bytes_in=rec["bytesIn"],
                        bytes_out=rec["bytesOut"]))
                if fmt == "json":
                    self.logger.info("rejected" if "rejected" in rec else "access",
                                     extra={"access": rec})
                else:
                    self.logger.info(_text(rec))
            except Exception:  # noqa: BLE001 - the answer is sent; logging must not undo it
                logging.getLogger("coffer.gateway").exception("access log failed")

    return AccessObserver


class JSONFormatter(logging.Formatter):
    """One JSON object per line for every log record; access records carry their fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out.update(access)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=True, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """stderr logging for ``coffer serve`` in ``fmt`` (``text`` or ``json``)."""
    import sys
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
