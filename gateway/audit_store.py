"""No S3 change commits before its audit intent record is durable (issue 11, finding 5).

``AuditedStore`` wraps the app's ``ObjectStore``. While ``AuditTrail.audited_s3`` runs a
request it names that request in a context variable (one per aiohttp task, so concurrent
requests never see each other's); before the first storage call of the request that commits a
change, the wrapper awaits ``AuditTrail.s3_intent``, which durably writes the request's intent
record or raises ``InternalError`` so the change never happens (fail-closed; with
``--audit-fail-open`` the loss is logged and the change goes on).

The commit points covered (each S3 operation that changes what a reader sees):

    create_bucket, delete_bucket, put_bucket_config (every Put*/Delete*Bucket* configuration),
    delete_object (DeleteObject, each key of DeleteObjects), ObjectWriter.commit (PutObject,
    CopyObject, PostObject), complete_multipart_upload, abort_multipart_upload

UploadPart and CreateMultipartUpload store nothing a reader sees until
CompleteMultipartUpload, which is covered; their outcome records are written as before.

Hooking the commit points rather than the dispatcher keeps the intent after authentication
and authorization: a request that is refused, malformed or unsigned commits nothing and pays
for no intent fsync (finding 11), and the invariant does not depend on how the S3 dispatcher
is arranged. Storage calls made outside a request (start-up sweeps, ``coffer fsck``) are not
wrapped. Only ``gateway`` imports this module.
"""
from __future__ import annotations

import contextvars
from typing import Any, Awaitable, Callable

__all__ = ["AuditedStore", "CURRENT_REQUEST"]

# (request, audit note) of the S3 request the current task serves; set by audited_s3.
CURRENT_REQUEST: contextvars.ContextVar[tuple[Any, dict[str, Any]] | None] = \
    contextvars.ContextVar("coffer_audit_request", default=None)

Intent = Callable[[Any, dict[str, Any]], Awaitable[None]]
_COMMITS = frozenset({"create_bucket", "delete_bucket", "put_bucket_config", "delete_object",
                      "complete_multipart_upload", "abort_multipart_upload"})


async def _announce(intent: Intent) -> None:
    current = CURRENT_REQUEST.get()
    if current is not None:
        await intent(*current)


class _AuditedWriter:
    """An ObjectWriter whose commit waits for the request's intent record."""

    def __init__(self, inner: Any, intent: Intent) -> None:
        self._inner = inner
        self._intent = intent

    async def commit(self, *args: Any, **kwargs: Any) -> Any:
        await _announce(self._intent)
        return await self._inner.commit(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class AuditedStore:
    """The ObjectStore, with the request's intent record written before each commit point."""

    def __init__(self, inner: Any, intent: Intent) -> None:
        self._inner = inner
        self._intent = intent

    @property
    def inner(self) -> Any:
        return self._inner

    async def open_writer(self, *args: Any, **kwargs: Any) -> Any:
        return _AuditedWriter(await self._inner.open_writer(*args, **kwargs), self._intent)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in _COMMITS:
            return attr

        async def committing(*args: Any, **kwargs: Any) -> Any:
            await _announce(self._intent)
            return await attr(*args, **kwargs)
        return committing
