"""The gateway side of the audit trail: S3 and IAM records, the digest signer and task.

KMS records come from the ``kms`` library itself (one per call, fail-closed). This module adds
one record per S3 request (data events for object reads/writes, management events for bucket
calls) and per IAM/STS request, in CloudTrail's shape, to the same ``TrailSink``; signs digest
files with a KMS key (ECC_NIST_P256, ECDSA_SHA_256) owned by a reserved service account that no
credential can act as; and runs the periodic digest task.

The S3 audit contract (issue 11; DESIGN.md "Audit"):

* ``audited_s3(request, run)`` runs one S3 request and writes its outcome record. A request
  that changes state first writes an intent record, durably, before its first commit point
  (``gateway.audit_store.AuditedStore``); if the intent cannot be written the request fails
  with InternalError before anything changed. The outcome names the intent (``intentEventID``).
  A successful response is not sent before its outcome record is durable (fail-closed; if
  only the outcome fails the change has committed, the client gets InternalError, and the
  intent record with no outcome says so to ``coffer audit verify``).
* Every field is bounded (``kms.audit.encode``: Host and userAgent 256 bytes, key 1024,
  errorMessage 1024) and encoding cannot fail, so no request can commit and then fail to be
  recorded because of what it sent (a User-Agent with ``\xff``).
* A failed request nobody authenticated (bad or missing signature, unknown access key,
  malformed, anonymous and refused) is recorded without an fsync of its own and is rate
  limited per source IP (``kms.audit.flood.FailureLimiter``: the first 10 a minute in full,
  then one summary record), so one client cannot fill the disk or make the server fsync per
  request.
* IAM and STS (``record_iam``, ``bind_identity``, ``iam_call``): the same contract. The
  identity store calls ``before_commit`` inside every write transaction; while an IAM
  operation runs, that writes the request's intent record durably first, and an intent that
  cannot be written rolls the change back (ServiceFailure, 500). The outcome record names the
  intent; an outcome that cannot be written turns the response into ServiceFailure.
* ``on_prepare`` never lets a record failure become aiohttp's plain-text 500: inside a
  handler it raises InternalError for the S3 face to render; after the handler (aiohttp
  preparing a returned response) it aborts the connection.
* Retention (``--audit-retention-days``): each digest run prunes trail files older than the
  retention that an earlier digest covers, recording them in the signed chain
  (``kms.audit.digest``), so ``coffer audit verify`` tells pruned from deleted.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

from aiohttp import web

from gateway.audit_store import CURRENT_REQUEST, AuditedStore
from gateway.context import context_of, request_id_of
from kms.audit import AuditWriteError
from kms.audit.digest import PUBLIC_KEY_FILE, write_digest
from kms.audit.encode import FIELD_BOUNDS, bounded
from kms.audit.events import EVENT_VERSION, identity_type, intent_record
from kms.audit.flood import FailureLimiter
from kms.crypto.verify_sig import fingerprint, public_der_to_pem
from kms.iam import errors as ie
from kms.model import Caller

__all__ = ["AuditTrail", "KMSDigestSigner", "IAMIntentError", "AUDIT_ACCOUNT", "AUDIT"]

log = logging.getLogger("coffer.audit")

# The reserved account that owns the digest-signing key. No access key maps to it.
AUDIT_ACCOUNT = "000000000000"
DIGEST_KEY_FILE = "digest-key.json"
DIGEST_ALGORITHM = "ECDSA_SHA_256"
AUDIT = web.AppKey("audit_trail", object)

# Request headers that may go in a record (never SSE-C keys or anything secret).
_S3_HEADERS = ("x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id",
               "x-amz-server-side-encryption-bucket-key-enabled", "x-amz-copy-source",
               "x-amz-storage-class")
# Bounds of a record's authorizationDecisions (a 1000-key DeleteObjects decides 1000 times):
# 32 entries of at most ~1.3 KB keep the record well under kms.audit.encode.MAX_RECORD.
_MAX_DECISIONS = 32
_DECISION_RESOURCE = 1100          # "arn:aws:s3:::" + a 63-byte bucket + a 1024-byte key
_IAM_SECRET_PARAMS = ("password", "secret", "privatekey", "token", "sshpublickeybody")


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _user_identity(cred) -> dict[str, Any]:
    if cred is None:
        return {"type": "AWSAccount", "principalId": "", "accountId": "anonymous"}
    kind = identity_type(cred.principal_arn)
    resource = cred.principal_arn.split(":", 5)[-1]
    out = {"type": kind,
           "principalId": cred.account_id if kind == "Root" else resource.rsplit("/", 1)[-1],
           "arn": cred.principal_arn, "accountId": cred.account_id,
           "accessKeyId": cred.access_key_id}
    if kind == "IAMUser":
        out["userName"] = cred.user_name or resource.split("/")[-1]
    return out


class IAMIntentError(ie.IAMError):
    """The intent record of an IAM state change could not be written: the change was rolled
    back (ServiceFailure, 500, as IAM answers an internal failure)."""

    code = "ServiceFailure"
    status = 500
    sender = False

    def __init__(self) -> None:
        super().__init__("An internal error occurred")


class KMSDigestSigner:
    """Signs digests with a KMS key of the reserved audit account, creating it on first use
    and exporting its public key to ``<audit_dir>/digest-public-key.pem``."""

    algorithm = DIGEST_ALGORITHM
    account_id = AUDIT_ACCOUNT

    def __init__(self, kms, audit_dir: Path) -> None:
        self.kms = kms
        self.audit_dir = Path(audit_dir)
        self.caller = Caller(principal_arn=f"arn:aws:iam::{AUDIT_ACCOUNT}:root",
                             account_id=AUDIT_ACCOUNT, source_ip="",
                             via_service="cloudtrail.amazonaws.com", user_agent="coffer-audit")
        state = self.audit_dir / DIGEST_KEY_FILE
        if state.exists():
            self.key_arn = json.loads(state.read_bytes())["keyArn"]
        else:
            md = kms.create_key(self.caller, key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY",
                                description="Coffer audit trail digest signing key"
                                )["KeyMetadata"]
            self.key_arn = md["Arn"]
            state.write_text(json.dumps({"keyArn": self.key_arn,
                                         "signingAlgorithm": self.algorithm}) + "\n")
        der = kms.get_public_key(self.caller, self.key_arn)["PublicKey"]
        self.public_key_fingerprint = fingerprint(der)
        pem = public_der_to_pem(der)
        pem_path = self.audit_dir / PUBLIC_KEY_FILE
        if not pem_path.exists() or pem_path.read_bytes() != pem:
            pem_path.write_bytes(pem)

    def sign_digest(self, digest: bytes) -> bytes:
        return self.kms.sign(self.caller, self.key_arn, digest, self.algorithm,
                             message_type="DIGEST")["Signature"]


class AuditTrail:
    """Writes S3 and IAM records to the trail the KMS writes to, and digests it."""

    def __init__(self, sink, *, region: str, fail_open: bool = False,
                 retention_days: float | None = None,
                 limiter: FailureLimiter | None = None) -> None:
        self.sink = sink
        self.region = region
        self.fail_open = fail_open
        self.retention_days = retention_days
        self.limiter = limiter or FailureLimiter(region=region)
        self._signer: KMSDigestSigner | None = None
        self._iam_active = threading.local()     # (request, note) of the IAM call running

    def wrap_store(self, store):
        """The ObjectStore with this trail's intent records before its commit points."""
        return AuditedStore(store, self.s3_intent)

    # -- records -------------------------------------------------------------------------------

    async def emit(self, record: dict[str, Any], *, durable: bool = True) -> bool:
        """Append ``record`` (durably unless ``durable=False``); False when it could not be
        written (logged)."""
        records = self.limiter.due() + [record]
        try:
            await asyncio.to_thread(self._write, records, durable)
            return True
        except AuditWriteError as exc:
            log.error("audit record for %s (request %s) not written: %s",
                      record.get("eventName"), record.get("requestID"), exc)
            return False

    def _write(self, records: list[dict[str, Any]], durable: bool) -> None:
        for i, rec in enumerate(records):
            self.sink.emit_record(rec, durable=durable and i == len(records) - 1)

    def _base(self, request: web.Request, cred, source: str, name: str) -> dict[str, Any]:
        return {
            "eventVersion": EVENT_VERSION, "userIdentity": _user_identity(cred),
            "eventTime": _iso(time.time()), "eventSource": source, "eventName": name,
            "awsRegion": self.region,
            "sourceIPAddress": bounded(request.remote or "", FIELD_BOUNDS["sourceIPAddress"]),
            "userAgent": bounded(request.headers.get("User-Agent", ""),
                                 FIELD_BOUNDS["userAgent"]),
        }

    def s3_record(self, request: web.Request, note: dict[str, Any],
                  response: web.StreamResponse | None, error) -> dict[str, Any]:
        op = note.get("op")
        ctx = note.get("auth")
        cred = getattr(ctx, "credential", None)
        name = op.name if op is not None else "UnknownOperation"
        bucket = getattr(op, "bucket", None)
        key = getattr(op, "key", None)
        # Bounded here and again by the encoder: an 8 KB Host header stays 256 bytes.
        params: dict[str, Any] = {"Host": bounded(request.headers.get("Host", ""),
                                                  FIELD_BOUNDS["Host"])}
        if bucket:
            params["bucketName"] = bucket
        if key:
            params["key"] = key
        for q in ("prefix", "delimiter", "uploadId", "partNumber", "versionId", "max-keys",
                  "list-type"):
            if q in request.query:
                params[q] = request.query[q]
        for h in _S3_HEADERS:
            if h in request.headers:
                params[h] = request.headers[h]
        rec = self._base(request, cred, "s3.amazonaws.com", name)
        rec["awsRegion"] = note.get("region") or self.region   # the bucket's region
        rec["requestParameters"] = params
        rec["responseElements"] = None
        out_bytes = 0
        if response is not None:
            body = getattr(response, "body", None)
            if isinstance(body, (bytes, bytearray)):
                out_bytes = len(body)
            else:
                out_bytes = response.content_length or 0
            if response.headers.get("x-amz-server-side-encryption"):
                rec["responseElements"] = {
                    h: response.headers[h] for h in (
                        "x-amz-server-side-encryption",
                        "x-amz-server-side-encryption-aws-kms-key-id")
                    if h in response.headers}
        rec["additionalEventData"] = {
            "bytesTransferredIn": request.content_length or 0,
            "bytesTransferredOut": out_bytes,
            "AuthenticationMethod": ("QueryString" if getattr(ctx, "method", "").endswith("query")
                                     else "AuthHeader"),
            "SignatureVersion": ("SigV2" if getattr(ctx, "method", "").startswith("sigv2")
                                 else "SigV4"),
        }
        if error is not None:
            rec["errorCode"] = getattr(error, "code", "InternalError")
            rec["errorMessage"] = getattr(error, "message", "") or ""
        resources = []
        if bucket and key:
            resources.append({"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"})
        if bucket:
            resources.append({"accountId": cred.account_id if cred else "",
                              "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"})
        data = op.data_event if op is not None else False
        rec.update({
            "requestID": request_id_of(request), "eventID": str(uuid.uuid4()),
            "readOnly": request.method in ("GET", "HEAD"), "resources": resources,
            "eventType": "AwsApiCall", "managementEvent": not data,
            "recipientAccountId": cred.account_id if cred else "",
            "eventCategory": "Data" if data else "Management",
        })
        if "decision" in note:
            rec["authorizationDecision"] = note["decision"]
        if note.get("decisions"):
            # Every decision the stage made (DeleteObjects' per-key s3:DeleteObject, the
            # s3:ListBucket check behind NoSuchKey/AccessDenied), bounded: at most
            # _MAX_DECISIONS entries, each resource cut like an object key, and the total.
            rec["authorizationDecisions"] = [
                {**d, "resource": bounded(str(d.get("resource", "")), _DECISION_RESOURCE)}
                for d in note["decisions"][:_MAX_DECISIONS]]
            rec["authorizationDecisionCount"] = note.get("decision_count",
                                                         len(note["decisions"]))
        if note.get("intent_id"):
            rec["intentEventID"] = note["intent_id"]
        return rec

    def iam_record(self, request: web.Request, note: dict[str, Any],
                   response: web.StreamResponse) -> dict[str, Any]:
        cred = note["credential"]
        service = note.get("service", "iam")
        action = note["action"]
        params = {k[:1].lower() + k[1:]: v for k, v in note.get("params", {}).items()
                  if k not in ("Action", "Version")
                  and not any(s in k.lower() for s in _IAM_SECRET_PARAMS)}
        rec = self._base(request, cred, f"{service}.amazonaws.com", action)
        rec["awsRegion"] = "us-east-1"
        rec["requestParameters"] = params or None
        rec["responseElements"] = None
        err = note.get("error")
        if err is not None:
            rec["errorCode"], rec["errorMessage"] = err
        rec.update({
            "requestID": request_id_of(request), "eventID": str(uuid.uuid4()),
            "readOnly": action.startswith(("Get", "List")), "resources": [],
            "eventType": "AwsApiCall", "managementEvent": True,
            "recipientAccountId": cred.account_id, "eventCategory": "Management",
        })
        if note.get("intent_id"):
            rec["intentEventID"] = note["intent_id"]
        return rec

    async def audited_s3(self, request: web.Request,
                         run: Callable[[dict[str, Any]], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        """Run one S3 request and record it (``note`` collects the operation and caller).
        A change is preceded by its durable intent record (``s3_intent``); a record that
        cannot be written fails an unsent response (fail-closed)."""
        from gateway.s3.errors import S3Error

        note: dict[str, Any] = {"kind": "s3"}
        context_of(request).audit = note
        token = CURRENT_REQUEST.set((request, note))
        try:
            response = await run(note)
        except S3Error as err:
            if not note.get("recorded"):
                note["recorded"] = True
                await self._record_failure(request, note, err)
            raise
        except Exception as exc:
            if not note.get("recorded") and not isinstance(
                    exc, (ConnectionError, asyncio.CancelledError)):
                note["recorded"] = True
                await self._record_failure(request, note, S3Error("InternalError"))
            raise
        finally:
            CURRENT_REQUEST.reset(token)
        if not note.get("recorded"):
            note["recorded"] = True
            ok = await self.emit(self.s3_record(request, note, response, None))
            if not ok and not self.fail_open:
                raise S3Error("InternalError")
        return response

    async def s3_intent(self, request: web.Request, note: dict[str, Any]) -> None:
        """Durably record that this request is about to commit a change (once per request);
        raise InternalError, before the change, when that is impossible."""
        if note.get("intent_id"):
            return
        intent_id = str(uuid.uuid4())
        rec = intent_record(self.s3_record(request, note, None, None), intent_id)
        if await self.emit(rec):
            note["intent_id"] = intent_id
        elif not self.fail_open:
            from gateway.s3.errors import S3Error
            raise S3Error("InternalError")

    async def _record_failure(self, request: web.Request, note: dict[str, Any], err) -> None:
        rec = self.s3_record(request, note, None, err)
        cred = getattr(note.get("auth"), "credential", None)
        if cred is not None or note.get("intent_id"):
            await self.emit(rec)
            return
        # Nobody authenticated it: bounded, no fsync of its own, rate limited per source.
        admit, summaries = self.limiter.admit(rec["sourceIPAddress"], rec.get("errorCode", ""))
        batch = self.limiter.due() + summaries + ([rec] if admit else [])
        if not batch:
            return
        try:
            await asyncio.to_thread(self._write, batch, False)
        except AuditWriteError as exc:
            log.error("audit record for an unauthenticated %s not written: %s",
                      rec.get("eventName"), exc)

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """A handler that streams its response prepares it itself: record the request now,
        before the status line goes out (fail-closed).

        A record that cannot be written must never become aiohttp's plain-text 500:

        * inside the handler (``audited_s3`` is running: the handler called ``prepare``),
          raise InternalError; the error middleware answers it as S3 XML (HEAD: no body);
        * outside it (aiohttp preparing a response the middleware chain returned, where an
          exception would be rendered by aiohttp itself), nothing can answer any more: the
          status line is about to go out, so the connection is aborted instead and the
          client sees a failure, never a success without its record."""
        note = context_of(request).audit
        if not note or note.get("kind") != "s3" or note.get("recorded"):
            return
        note["recorded"] = True
        ok = await self.emit(self.s3_record(request, note, response, None))
        if ok or self.fail_open:
            return
        if CURRENT_REQUEST.get() is not None:
            from gateway.s3.errors import S3Error
            raise S3Error("InternalError")
        log.error("request %s: record not written as its response went out; connection "
                  "aborted", request_id_of(request))
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("audit record not written")

    # -- IAM / STS: intent before the identity store's commit --------------------------------

    def bind_identity(self, store) -> None:
        """Make ``store`` (gateway.identity.IdentityStore) write the running IAM request's
        intent record inside each write transaction, before its COMMIT."""
        store.before_commit = self._iam_before_commit

    @contextlib.contextmanager
    def iam_call(self, request: web.Request, note: dict[str, Any]) -> Iterator[None]:
        """While an IAM operation runs (in its worker thread), commits in this thread are
        the request's: the first one writes its intent record first (``bind_identity``)."""
        outer = getattr(self._iam_active, "call", None)
        self._iam_active.call = (request, note)
        try:
            yield
        finally:
            self._iam_active.call = outer

    def _iam_before_commit(self) -> None:
        """Called by the identity store just before COMMIT (in the committing thread).
        Raises ``IAMIntentError`` (rolling the change back) when the intent record cannot be
        made durable, unless the trail fails open."""
        current = getattr(self._iam_active, "call", None)
        if current is None:
            return                      # not a request (start-up, coffer account create)
        request, note = current
        if note.get("intent_id"):
            return
        intent_id = str(uuid.uuid4())
        rec = intent_record(self.iam_record(request, note, None), intent_id)
        try:
            self._write(self.limiter.due() + [rec], True)
        except AuditWriteError as exc:
            log.error("audit intent for %s (request %s) not written: %s",
                      note.get("action"), request_id_of(request), exc)
            if not self.fail_open:
                raise IAMIntentError() from exc
            return
        note["intent_id"] = intent_id

    async def record_iam(self, request: web.Request, response: web.StreamResponse) -> bool:
        """Write the outcome record of an IAM/STS request; False when it could not be
        written and the trail fails closed (the caller answers ServiceFailure: a change
        may have committed, and its intent record with no outcome says so)."""
        note = context_of(request).audit
        if not note or "action" not in note or note.get("credential") is None:
            return True
        ok = await self.emit(self.iam_record(request, note, response))
        return ok or self.fail_open

    # -- digests ---------------------------------------------------------------------------------

    def digest(self, kms, audit_dir: Path) -> Path:
        """Write pending failure summaries, roll the active file and write the next signed
        digest, pruning files past the retention (blocking)."""
        if self._signer is None:
            self._signer = KMSDigestSigner(kms, audit_dir)
        try:
            self._write(self.limiter.flush(), True)
        except AuditWriteError as exc:
            log.error("audit failure summaries not written: %s", exc)
        roll = getattr(self.sink, "roll", None)
        if roll is not None:
            roll()
        return write_digest(audit_dir, self._signer, retention_days=self.retention_days)

    async def digest_loop(self, kms, audit_dir: Path, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                path = await asyncio.to_thread(self.digest, kms, audit_dir)
                log.info("audit digest written: %s", path.name)
            except Exception:  # noqa: BLE001 - the task must outlive one bad run
                log.exception("audit digest failed")
