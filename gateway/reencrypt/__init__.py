"""``coffer s3 reencrypt``: re-encrypt a bucket's objects in place under a new KMS key or SSE-S3,
or encrypt the unencrypted ones, as the caller; resumable, with a progress bar.

    coffer s3 reencrypt --bucket B [--prefix P] (--to-key KEY | --to-sse-s3)
                        [--only-unencrypted] [--dry-run] [--bucket-key] [--state FILE]
                        [--jobs N] [--source-sse-c-key-file FILE]
                        [--endpoint URL] [--region R] [--profile P] [--data-dir DIR]

Why a client of the running server, not a tool on the data dir
--------------------------------------------------------------
"As the caller" means the command acts as an authenticated principal, with that principal's
policies and audit trail. So it is an S3 client: per object it sends HeadObject (mode, key,
size, ETag) and then CopyObject onto the object itself with ``x-amz-metadata-directive: COPY``
and the new SSE headers, which is how AWS documents changing existing objects' encryption
(S3 User Guide, specifying-s3-encryption.html: a new bucket default "doesn't change the
encryption type of existing objects"; copy them "back into the same bucket", below 5 GB in one
copy, above with the CLI/SDKs' multipart copy; batch-ops-copy-object.html; API_CopyObject: an
in-place copy must change something, and the encryption counts). What follows from that:

- Authorization is the server's and only the server's: s3:GetObject and s3:PutObject on the
  object, kms:Decrypt on the old key and kms:GenerateDataKey on the new one, each decided by
  the KMS for this caller with kms:ViaService (DESIGN.md, pipeline stage 3). A caller who lacks
  one gets AccessDenied for that object, reported per object, and the object is unchanged.
- Each object commits atomically: a copy is written like a PUT (staging, fsync, rename).
- Each object is audited by the server: a CopyObject record, linked by requestID to the KMS
  Decrypt and GenerateDataKey records, allowed or denied; failures here print the request id.
- Nothing is duplicated: no second policy engine, no key material in this process. The price
  is that the server must be running; a tool opening the data dir would act as nobody.

The copy keeps the content headers, user metadata and storage class, and the checksums
(recomputed over the plaintext and sealed under the new data key: gateway/s3/copy.py). A
multipart object becomes a single-part one with the same bytes. The copy is guarded by
``x-amz-copy-source-if-match`` and ``If-Match`` on the ETag the HEAD saw, so an object replaced
in between is re-examined instead of being overwritten with older data (the check precedes the
copy; a PUT landing during the copy of that one object can still lose, as with any in-place
copy on AWS). Objects over CopyObject's 5 GiB limit are copied with a multipart upload of
UploadPartCopy ranges under the new settings (what the AWS SDKs' managed copy does), content
headers and metadata from the HEAD, committed at CompleteMultipartUpload; their checksums are
not carried over (UploadPartCopy computes none). SSE-C objects are skipped with a reason unless
``--source-sse-c-key-file`` gives the customer key, sent then as the copy-source key.

Versions: a key has one version today; ``_versions`` is where a ListObjectVersions loop goes
(each version copied with ``CopySource.VersionId``, the state tracking key and version).

Resuming: gateway/reencrypt/state.py (the state file, and why a resumed run converges).
Credentials: ``--profile``, else the AWS credential chain (AWS_* environment, config files),
and only as a last resort the account root that ``coffer serve`` saved in the data dir
(``coffer demo`` prefers the latter; here the caller's identity is the point).

Exit status: 0 all done, 1 some objects failed, 2 usage or setup error, 130 interrupted
(SIGINT / SIGTERM: in-flight copies finish, the state is saved; a second signal stops at once).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from gateway.reencrypt.copier import (COPY_LIMIT, MIN_PART, PART_SIZE, Options, Outcome,
                                      Reencryptor, error_of)
from gateway.reencrypt.state import MAX_FAILED_KEPT, ReencryptError, RunState, Target

__all__ = ["add_parser", "run", "ReencryptError"]


# -- the command ------------------------------------------------------------------------------

def add_parser(s3_sub) -> None:
    env = os.environ.get
    p = s3_sub.add_parser(
        "reencrypt", help="re-encrypt objects in place under a new KMS key or SSE-S3, as the "
        "caller (resumable)",
        description="Copy each object of a bucket onto itself under new server-side "
        "encryption through a running server, with the caller's credentials: their "
        "kms:Decrypt on the old key and kms:GenerateDataKey on the new one. Resumable: "
        "progress is kept in a state file; objects already under the target are skipped.")
    p.add_argument("--bucket", required=True, help="the bucket to re-encrypt")
    p.add_argument("--prefix", default="", help="only keys starting with this")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-key", metavar="KEY", help="SSE-KMS under this key (id, ARN, alias)")
    to.add_argument("--to-sse-s3", action="store_true", help="SSE-S3 (AES256)")
    p.add_argument("--only-unencrypted", action="store_true",
                   help="leave every encrypted object as it is")
    p.add_argument("--dry-run", action="store_true", help="print what would change")
    p.add_argument("--bucket-key", action="store_true",
                   help="with --to-key: use an S3 Bucket Key")
    p.add_argument("--state", metavar="FILE",
                   help="state file (default ./.coffer-reencrypt-<bucket>.json)")
    p.add_argument("--jobs", type=int, default=4, help="objects in flight (default 4)")
    p.add_argument("--source-sse-c-key-file", metavar="FILE",
                   help="the 32-byte customer key (raw or base64) of SSE-C objects")
    p.add_argument("--multipart-threshold", type=int, default=COPY_LIMIT,
                   help=argparse.SUPPRESS)             # tests: the UploadPartCopy path
    p.add_argument("--part-size", type=int, default=PART_SIZE, help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--endpoint", default=env("COFFER_ENDPOINT", "http://127.0.0.1:9000"),
                   help="the running server (COFFER_ENDPOINT, default http://127.0.0.1:9000)")
    p.add_argument("--region", default=env("COFFER_REGION") or env("AWS_REGION")
                   or env("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--profile", help="AWS profile to act as (default: AWS_* environment, "
                   "then the data dir's root credentials)")
    p.add_argument("--data-dir", default=env("COFFER_DATA_DIR", "./coffer-data"),
                   help="the server's data dir: root credentials and TLS CA as a last resort")


def _customer_key(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ReencryptError(f"cannot read {path}: {exc}") from exc
    if len(raw) == 32:
        return raw
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except binascii.Error:
        key = b""
    if len(key) != 32:
        raise ReencryptError(f"{path} holds no 32-byte key (raw or base64)")
    return key


def _session(args: argparse.Namespace):
    """The caller: --profile, else the AWS_* environment / config chain, else (last) the
    account root saved in the data dir by ``coffer serve``."""
    import boto3
    from botocore.exceptions import ProfileNotFound
    try:
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    except ProfileNotFound as exc:
        raise ReencryptError(str(exc)) from exc
    creds = session.get_credentials()
    if creds is not None:
        return session, f"the AWS credential chain ({creds.method})"
    from gateway.demo import DemoError, load_credentials
    try:
        akid, secret, source = load_credentials(Path(args.data_dir))
    except DemoError as exc:
        raise ReencryptError(str(exc)) from exc
    return boto3.session.Session(aws_access_key_id=akid, aws_secret_access_key=secret,
                                 region_name=args.region), source


def _clients(args: argparse.Namespace, jobs: int):
    from botocore.config import Config as BotoConfig
    session, source = _session(args)
    ca = os.environ.get("AWS_CA_BUNDLE")
    if args.endpoint.startswith("https:") and not ca:
        candidate = Path(args.data_dir) / "tls" / "ca.pem"
        ca = str(candidate) if candidate.is_file() else None
    cfg = BotoConfig(retries={"max_attempts": 3, "mode": "standard"},
                     s3={"addressing_style": "path"}, signature_version="s3v4",
                     max_pool_connections=max(10, 2 * jobs), connect_timeout=5,
                     read_timeout=300)
    kw = dict(endpoint_url=args.endpoint, config=cfg, verify=ca if ca else None)
    return session.client("s3", **kw), session.client("kms", **kw), source


def _target(kms, args: argparse.Namespace) -> Target:
    if args.to_sse_s3:
        if args.bucket_key:
            raise ReencryptError("--bucket-key applies to --to-key only")
        return Target("AES256")
    from botocore.exceptions import BotoCoreError, ClientError
    ref = args.to_key
    try:
        meta = kms.describe_key(KeyId=ref)["KeyMetadata"]
    except ClientError as exc:
        # A caller may hold kms:GenerateDataKey without kms:DescribeKey: a full key ARN
        # needs no resolving, anything else does.
        if ref.startswith("arn:") and ":key/" in ref:
            return Target("aws:kms", ref, args.bucket_key)
        raise ReencryptError(f"cannot resolve --to-key {ref}: {error_of(exc)[1]} (pass the key "
                             "ARN, or allow kms:DescribeKey)") from exc
    except BotoCoreError as exc:
        raise ReencryptError(f"cannot reach the KMS at {args.endpoint}: {exc}") from exc
    if meta.get("KeyState") != "Enabled":
        raise ReencryptError(f"--to-key {ref} is {meta.get('KeyState')}, not Enabled")
    if meta.get("KeyUsage") not in (None, "ENCRYPT_DECRYPT") or \
            meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
        raise ReencryptError(f"--to-key {ref} is not a symmetric encryption key")
    return Target("aws:kms", meta["Arn"], args.bucket_key)


def _options(args: argparse.Namespace, target: Target, customer: bytes | None) -> Options:
    if args.jobs < 1:
        raise ReencryptError("--jobs must be at least 1")
    if not MIN_PART <= args.part_size <= COPY_LIMIT or \
            not 0 < args.multipart_threshold <= COPY_LIMIT:
        raise ReencryptError("part size and multipart threshold must lie in 5 MiB..5 GiB")
    state = Path(args.state) if args.state else \
        Path.cwd() / f".coffer-reencrypt-{args.bucket}.json"
    return Options(bucket=args.bucket, prefix=args.prefix, target=target,
                   only_unencrypted=args.only_unencrypted, dry_run=args.dry_run,
                   state_path=state, jobs=args.jobs, copy_limit=args.multipart_threshold,
                   part_size=args.part_size, customer_key=customer)


def _setup(args: argparse.Namespace) -> tuple[Any, Options, str]:
    from botocore.exceptions import BotoCoreError, ClientError
    customer = _customer_key(args.source_sse_c_key_file)
    s3, kms, source = _clients(args, max(1, args.jobs))
    try:
        s3.head_bucket(Bucket=args.bucket)
    except ClientError as exc:
        raise ReencryptError(f"bucket {args.bucket}: {error_of(exc)[0]}") from exc
    except BotoCoreError as exc:
        raise ReencryptError(f"no Coffer server answers at {args.endpoint} ({exc}); start "
                             "`coffer serve` or pass --endpoint") from exc
    return s3, _options(args, _target(kms, args), customer), source


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        s3, opts, source = _setup(args)
        fresh = RunState(opts.bucket, opts.prefix, opts.target, opts.only_unencrypted)
        state = fresh if opts.dry_run else RunState.load(opts.state_path, fresh)
    except ReencryptError as exc:
        err.print(f"coffer s3 reencrypt: {escape(str(exc))}")
        return 2
    where = f"s3://{opts.bucket}/{opts.prefix}"
    err.print(f"{'Dry run: ' if opts.dry_run else ''}{escape(where)} -> "
              f"{escape(opts.target.describe())}, acting with credentials from "
              f"{escape(source)}")
    if state.after is not None:
        err.print(f"resuming after {escape(repr(state.after))} ({sum(state.counts.values())} "
                  f"objects done before; state {escape(str(opts.state_path))})")

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err,
                        disable=args.no_progress)
    task = progress.add_task("re-encrypting" if not opts.dry_run else "examining", total=None)
    worker = Reencryptor(s3, opts)
    listed = [0]

    def on_listed(count: int) -> None:
        listed[0] += count
        progress.update(task, total=listed[0])

    worker.on_listed = on_listed
    reasons: Counter = Counter()
    moved = [0]

    def settle(key: str, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            state.counts[o.status] += 1
            if o.status == "skipped":
                reasons[o.detail] += 1
            elif o.status == "reencrypted":
                moved[0] += o.size
            elif o.status == "would-reencrypt":
                print(f"would re-encrypt {o.key}: {o.detail}", flush=True)
            elif o.status == "failed":
                if len(state.failed) < MAX_FAILED_KEPT:
                    state.failed.append({"key": o.key, "code": o.code or ""})
                progress.console.print(f"[red]failed[/red] {escape(o.key)}: "
                                       f"{escape(o.code or '')}: {escape(o.detail)}")
        state.after = key
        if not opts.dry_run:
            state.save(opts.state_path)
        progress.advance(task)

    def on_signal(signum, frame) -> None:
        if worker.stop.is_set():
            raise KeyboardInterrupt
        worker.stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with progress:
            worker.run(state, settle)
    except KeyboardInterrupt:
        worker.stop.set()
    except OSError as exc:          # the state file could not be written: stop, say where
        err.print(f"coffer s3 reencrypt: cannot save the state to "
                  f"{escape(str(opts.state_path))}: {escape(str(exc))}")
        return 2
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)

    c = state.counts
    summary = (f"{c['reencrypted']} re-encrypted ({moved[0]:,} bytes this run), "
               f"{c['skipped']} skipped, {c['failed']} failed")
    if opts.dry_run:
        summary = f"{c['would-reencrypt']} would be re-encrypted, {c['skipped']} skipped, " \
                  f"{c['failed']} failed"
    for reason, n in sorted(reasons.items()):
        err.print(f"  skipped {n}: {escape(reason)}")
    if worker.stop.is_set():
        err.print(f"interrupted after {escape(repr(state.after))}: {summary}. Run the same "
                  f"command again to resume (state {escape(str(opts.state_path))}).")
        return 130
    if not opts.dry_run:
        opts.state_path.unlink(missing_ok=True)
    err.print(f"done: {summary}.")
    return 1 if c["failed"] else 0
