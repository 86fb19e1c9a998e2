"""Request ids and the one error renderer.

Every response carries ``x-amz-request-id`` / ``x-amz-id-2`` and ``Server: Coffer``. Every failure
becomes an S3 XML ``<Error>`` with AWS's code and status (HEAD and 304 responses have no body).
Anything unexpected is logged with its request id and answered as ``InternalError``: a Python
traceback never reaches the wire.
"""
from __future__ import annotations

import base64
import logging
import secrets

from aiohttp import web

from gateway.context import CONTEXT, RequestContext, request_id_of
from gateway.s3.errors import S3Error
from gateway.s3.xml import render
from storage.errors import StorageError

__all__ = ["error_middleware", "on_prepare", "render_error"]

log = logging.getLogger("coffer.gateway")


def _new_request_id() -> str:
    return secrets.token_hex(8).upper()


def render_error(request: web.Request, err: S3Error) -> web.Response:
    request_id = request_id_of(request)
    headers = dict(err.headers)
    if request.method == "HEAD" or err.status == 304:
        return web.Response(status=err.status, headers=headers)
    body = render("Error", {"Code": err.code, "Message": err.message, **err.fields,
                            "RequestId": request_id,
                            "HostId": base64.b64encode(request_id.encode()).decode()},
                  namespace=False)
    return web.Response(status=err.status, body=body, content_type="application/xml",
                        headers=headers)


_HTTP_CODES = {400: "InvalidRequest", 404: "NoSuchKey", 405: "MethodNotAllowed",
               411: "MissingContentLength", 413: "EntityTooLarge", 431: "InvalidRequest"}


@web.middleware
async def error_middleware(request: web.Request, handler):
    request[CONTEXT] = RequestContext(request_id=_new_request_id())
    try:
        return await handler(request)
    except S3Error as err:
        if err.status >= 500:
            log.error("request %s failed: %s", request_id_of(request), err.code)
        return render_error(request, err)
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
    request_id = request_id_of(request) or _new_request_id()
    response.headers["x-amz-request-id"] = request_id
    response.headers["x-amz-id-2"] = base64.b64encode(request_id.encode()).decode()
    response.headers["Server"] = "Coffer"
    if response.content_type == "application/x-amz-json-1.1":
        # The JSON protocols (KMS, CloudTrail) name the request id this way; SDKs read it.
        response.headers["x-amzn-RequestId"] = request_id
