"""Request ids and the one error boundary.

Every response carries ``x-amz-request-id`` / ``x-amz-id-2`` and ``Server: Coffer``. Every failure
that reaches this middleware is rendered once, in the protocol of the face that received the
request (the credential-scope service, as ``gateway.app`` routes): S3 XML ``<Error>`` (HEAD and
304 responses have no body), AWS JSON 1.1 ``__type`` for kms / cloudtrail, Query
``<ErrorResponse>`` for iam / sts. Neutral errors (``gateway.errors``) go through that face's
table. Anything unexpected is logged with its request id and answered as the face's internal
error: a Python traceback, or aiohttp's plain-text 500, never reaches the wire. The renderers in
``gateway.errors`` escape and bound every field, so rendering itself cannot fail.
"""
from __future__ import annotations

import base64
import logging
import secrets

from aiohttp import web

from gateway import auth, errors
from gateway.context import CONTEXT, RequestContext, request_id_of
from gateway.errors import GatewayError
from gateway.s3.errors import S3Error
from storage.errors import StorageError

__all__ = ["error_middleware", "on_prepare", "render_error", "render_neutral", "new_request_id"]

log = logging.getLogger("coffer.gateway")

_IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def new_request_id() -> str:
    return secrets.token_hex(8).upper()


def _service(request: web.Request) -> str:
    try:
        return auth.peek_service(request.raw_path, request.headers)
    except Exception:  # noqa: BLE001 - an unparseable request is answered by the S3 face
        return "s3"


def _other_face(request: web.Request, service: str, code: str, status: int,
                message: str) -> web.Response:
    rid = request_id_of(request)
    if errors.face_of(service) == "json":
        return errors.json_error_response(code, message, status)
    return errors.query_error_response(code, message, status, rid, sender=status < 500,
                                       namespace=_STS_NS if service == "sts" else _IAM_NS)


def _generic(status: int) -> tuple[str, str]:
    """(code, message) of a non-S3 failure known only by its HTTP status."""
    if status >= 500:
        return "InternalFailure", "An internal error occurred"
    if status == 413:
        return "ValidationException", "Request body too large"
    return "InvalidRequest", "The request could not be processed"


def render_error(request: web.Request, err: S3Error) -> web.Response:
    """An S3Error in the receiving face (S3 XML unless the request was for another service)."""
    service = _service(request)
    if errors.face_of(service) != "s3":
        code, message = _generic(err.status)
        return _other_face(request, service, code, err.status, message)
    return errors.s3_response(err, request_id_of(request), head=request.method == "HEAD")


def render_neutral(request: web.Request, err: GatewayError) -> web.Response:
    """A neutral error through the receiving face's table."""
    service = _service(request)
    face = errors.face_of(service)
    if face == "json":
        return errors.json_response(err)
    if face == "query":
        return errors.query_response(err, request_id_of(request),
                                     namespace=_STS_NS if service == "sts" else _IAM_NS)
    return render_error(request, errors.to_s3(err))


_HTTP_CODES = {400: "InvalidRequest", 404: "NoSuchKey", 405: "MethodNotAllowed",
               411: "MissingContentLength", 413: "EntityTooLarge", 431: "InvalidRequest"}


@web.middleware
async def error_middleware(request: web.Request, handler):
    request[CONTEXT] = RequestContext(request_id=new_request_id())
    try:
        return await handler(request)
    except S3Error as err:
        if err.status >= 500:
            log.error("request %s failed: %s", request_id_of(request), err.code)
        return render_error(request, err)
    except GatewayError as err:
        return render_neutral(request, err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "InternalError" if exc.status >= 500
                               else "InvalidRequest")
        return render_error(request, S3Error(code, status=exc.status))
    except StorageError:
        log.exception("request %s: unmapped storage error", request_id_of(request))
        return render_error(request, S3Error("InternalError"))
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception:  # noqa: BLE001 - the one place where anything unexpected is caught
        log.exception("request %s: internal error", request_id_of(request))
        return render_error(request, S3Error("InternalError"))


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request_id_of(request) or new_request_id()
    response.headers["x-amz-request-id"] = request_id
    response.headers["x-amz-id-2"] = base64.b64encode(request_id.encode()).decode()
    response.headers["Server"] = "Coffer"
    if response.content_type == "application/x-amz-json-1.1":
        # The JSON protocols (KMS, CloudTrail) name the request id this way; SDKs read it.
        response.headers["x-amzn-RequestId"] = request_id
