"""The typed request context: everything the edge stages learn about one request.

One ``RequestContext`` lives on each aiohttp request under the single typed key ``CONTEXT``
(aiohttp's ``web.RequestKey``), created by the error middleware before any face runs::

    request_id      x-amz-request-id of the response, RequestId of every error and log line
    principal       gateway.principal_info.Principal, once the request is authenticated
    operation       the typed operation (S3: gateway.s3.operations.S3Operation)
    audit           the note the audit trail turns into this request's record
                    (gateway.audit_trail; a dict it owns)
    bucket_policies parsed bucket policies read for this request, by bucket name

Stages fill it in order (authenticate -> parse -> authorize -> dispatch -> audit); nothing
else is stored on the request, so no face can read state another face left under a string
key, and a stage that needs something missing fails instead of guessing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["RequestContext", "CONTEXT", "context_of", "request_id_of"]


@dataclass(slots=True)
class RequestContext:
    """Mutable by design: each stage adds what it learnt. Fields are only ever set once."""

    request_id: str
    principal: Any = None              # gateway.principal_info.Principal
    operation: Any = None              # gateway.s3.operations.S3Operation (S3 requests)
    audit: dict[str, Any] | None = None
    bucket_policies: dict[str, Any] = field(default_factory=dict)


CONTEXT: web.RequestKey[RequestContext] = web.RequestKey("coffer_context", RequestContext)


def context_of(request: web.Request) -> RequestContext:
    """The request's context. The middleware creates it first; a request that somehow has
    none (a handler called outside the app) gets an empty one, never a shared default."""
    ctx = request.get(CONTEXT)
    if ctx is None:
        ctx = RequestContext(request_id="")
        request[CONTEXT] = ctx
    return ctx


def request_id_of(request: web.Request) -> str:
    ctx = request.get(CONTEXT)
    return ctx.request_id if ctx is not None else ""
