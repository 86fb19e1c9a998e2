"""``coffer demo``: the whole SSE-KMS flow against a running local server, step by step.

    coffer demo [--endpoint http://127.0.0.1:9000] [--data-dir ./coffer-data] [--size-mib 64]
                [--keep]

It talks to the server only through its public APIs (boto3 ``s3`` and ``kms`` clients on the one
endpoint) and then looks at the server's data dir to show what encryption left on disk: the object
sidecar's ``meta["sse"]`` (see gateway/sse/envelope.py) with the *wrapped* data key, ciphertext in
the ``.data`` file, and no file anywhere holding the plaintext. Plaintext data keys are never
printed: only their length.

Credentials: ``<data-dir>/root-credentials.json`` when present, else ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``. Everything it creates (bucket, objects, alias) is removed at the end and
the KMS key is scheduled for deletion in 7 days, unless ``--keep``.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["add_arguments", "run", "DemoError"]

MIB = 1024 * 1024
_CHUNK = 1024 * 1024


class DemoError(Exception):
    """A failed step, with a message for the person watching."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--endpoint", default=env("COFFER_ENDPOINT", "http://127.0.0.1:9000"),
                   help="the running server (COFFER_ENDPOINT, default http://127.0.0.1:9000)")
    p.add_argument("--data-dir", default=env("COFFER_DATA_DIR", "./coffer-data"),
                   help="the server's data directory, to show what is on disk "
                        "(COFFER_DATA_DIR, default ./coffer-data)")
    p.add_argument("--region", default=env("COFFER_REGION") or env("AWS_REGION")
                   or env("AWS_DEFAULT_REGION") or "us-east-1",
                   help="the server's region (default us-east-1)")
    p.add_argument("--size-mib", type=int, default=64,
                   help="size of the large multipart upload in MiB (default 64)")
    p.add_argument("--keep", action="store_true",
                   help="keep the bucket, objects and KMS key (default: clean up)")


# -- small helpers (no boto3 / rich needed)

def _trunc(text: str, n: int = 44) -> str:
    return text if len(text) <= n else f"{text[:n]}… ({len(text)} chars)"


def _hexdump(data: bytes, width: int = 16) -> list[str]:
    return [f"{i:08x}  {data[i:i + width].hex(' ')}" for i in range(0, len(data), width)]


def files_containing(root: Path, needle: bytes) -> tuple[list[Path], int]:
    """Every regular file under ``root`` whose bytes contain ``needle`` -> (matches, files seen).
    Reads in chunks with an overlap so a match across a chunk boundary is found too."""
    hits: list[Path] = []
    seen = 0
    keep = len(needle) - 1
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if not path.is_file() or path.is_symlink():
                continue
            seen += 1
            try:
                with open(path, "rb") as f:
                    tail = b""
                    while chunk := f.read(_CHUNK):
                        if needle in tail + chunk:
                            hits.append(path)
                            break
                        tail = chunk[-keep:] if keep else b""
            except OSError:
                continue        # vanished (staging) or unreadable: nothing to report
    return hits, seen


def sidecar_path(data_dir: Path, bucket: str, key: str) -> Path:
    """storage/fs/layout.py: objects/<hh>/<sha256(key)>.json under the bucket's directory."""
    h = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return data_dir / "s3" / "buckets" / bucket / "objects" / h[:2] / f"{h}.json"


def load_credentials(data_dir: Path, *, env: bool = True) -> tuple[str, str, str]:
    """-> (access key id, secret, where from): the data dir's root credentials, else (with
    ``env``) AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Raises DemoError saying where to
    find them."""
    path = data_dir / "root-credentials.json"
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
            return doc["access_key_id"], doc["secret_access_key"], str(path)
        except (OSError, ValueError, KeyError) as exc:
            raise DemoError(f"cannot read credentials from {path}: {exc}") from exc
    akid, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if env and akid and secret:
        return akid, secret, "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    raise DemoError(
        f"no credentials: {path} does not exist"
        + (" and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set" if env else "")
        + ".\n`coffer serve` prints the root credentials on its first start and keeps them in "
        "<data-dir>/root-credentials.json (default ./coffer-data, relative to the directory "
        "the server was started in). Run this from that directory or pass the server's "
        "--data-dir" + (", or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY." if env
                        else "."))


def _ca_bundle(endpoint: str, data_dir: Path) -> str | None:
    if not endpoint.startswith("https:"):
        return None
    if os.environ.get("AWS_CA_BUNDLE"):
        return os.environ["AWS_CA_BUNDLE"]
    ca = data_dir / "tls" / "ca.pem"
    return str(ca) if ca.is_file() else None


def check_health(endpoint: str, ca: str | None) -> None:
    ctx = ssl.create_default_context(cafile=ca) if endpoint.startswith("https:") else None
    url = endpoint.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            if r.status == 200:
                return
            raise DemoError(f"{url} answered HTTP {r.status}")
    except urllib.error.HTTPError as exc:
        raise DemoError(f"{url} answered HTTP {exc.code}: is this a Coffer server?") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DemoError(f"no Coffer server answers at {endpoint} ({reason}).\n"
                        "Start `coffer serve` first (or pass --endpoint / --data-dir).") from exc


def _error_code(exc: BaseException) -> str:
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__


# -- the demo

@dataclass
class _State:
    bucket: str | None = None
    objects: list[str] = field(default_factory=list)
    key_id: str | None = None
    alias: str | None = None


class Demo:
    def __init__(self, args: argparse.Namespace, console: Any) -> None:
        self.args = args
        self.console = console
        self.endpoint = args.endpoint.rstrip("/")
        self.data_dir = Path(args.data_dir)
        self.state = _State()
        self.step_no = 0
        self.tag = secrets.token_hex(4)
        self.failed_step = 0

    # output

    def step(self, title: str) -> None:
        from rich.rule import Rule
        self.step_no += 1
        self.console.print()
        self.console.print(Rule(f"[bold]Step {self.step_no}. {title}", align="left"))

    def ok(self, text: str) -> None:
        self.console.print(f"  [green]✔[/green] {text}")

    def info(self, text: str) -> None:
        self.console.print(f"    {text}")

    def table(self, rows: list[tuple[str, str]]) -> None:
        from rich.table import Table
        t = Table(show_header=False, box=None, padding=(0, 1, 0, 4))
        t.add_column(style="cyan", no_wrap=True)
        t.add_column(overflow="fold")
        for k, v in rows:
            t.add_row(k, v)
        self.console.print(t)

    # clients

    def connect(self) -> None:
        try:
            import boto3
            from botocore.config import Config as BotoConfig
        except ImportError as exc:     # installed from a tree older than the dependency
            raise DemoError("the demo needs boto3, a dependency of Coffer: reinstall it "
                            "(`pip install -e .`) or `pip install boto3`") from exc
        ca = _ca_bundle(self.endpoint, self.data_dir)
        check_health(self.endpoint, ca)
        akid, secret, source = load_credentials(self.data_dir)
        cfg = BotoConfig(retries={"max_attempts": 2, "mode": "standard"},
                         s3={"addressing_style": "path"}, signature_version="s3v4",
                         connect_timeout=5, read_timeout=120)
        session = boto3.session.Session(aws_access_key_id=akid, aws_secret_access_key=secret,
                                        region_name=self.args.region)
        kw = dict(endpoint_url=self.endpoint, config=cfg, verify=ca if ca else None)
        self.s3 = session.client("s3", **kw)
        self.kms = session.client("kms", **kw)
        self.console.print(f"[bold]Coffer SSE-KMS demo[/bold] against {self.endpoint} "
                           f"(data dir {self.data_dir}, access key {akid} from {source})")
        if not (self.data_dir / "s3").is_dir():
            raise DemoError(f"{self.data_dir} does not look like the running server's data dir "
                            f"(no {self.data_dir / 's3'}); pass the --data-dir given to "
                            "`coffer serve`")

    # steps

    def create_key(self) -> None:
        self.step("Create a KMS key and an alias")
        alias = f"alias/coffer-demo-{self.tag}"
        meta = self.kms.create_key(Description=f"coffer demo {self.tag}",
                                   KeyUsage="ENCRYPT_DECRYPT",
                                   KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]
        self.state.key_id = meta["KeyId"]
        self.key_arn = meta["Arn"]
        self.kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        self.state.alias = alias
        desc = self.kms.describe_key(KeyId=alias)["KeyMetadata"]
        if desc["Arn"] != self.key_arn:
            raise DemoError(f"{alias} resolves to {desc['Arn']}, not {self.key_arn}")
        self.ok("key created; its key material never leaves the KMS")
        self.table([("key ARN", self.key_arn), ("alias", alias),
                    ("state", str(desc.get("KeyState"))),
                    ("spec / usage", f"{desc.get('KeySpec')} / {desc.get('KeyUsage')}")])

    def envelope_by_hand(self) -> None:
        self.step("Envelope encryption by hand (GenerateDataKey, Encrypt, Decrypt)")
        alias = self.state.alias
        ctx = {"purpose": "coffer-demo", "run": self.tag}
        dk = self.kms.generate_data_key(KeyId=alias, KeySpec="AES_256", EncryptionContext=ctx)
        plain_key, wrapped = dk["Plaintext"], dk["CiphertextBlob"]
        self.ok(f"GenerateDataKey: a {len(plain_key)}-byte plaintext data key (not shown) and "
                f"its {len(wrapped)}-byte wrapped copy, encrypted under {alias}")
        self.info("an application would encrypt its data locally with the plaintext key, "
                  "store the wrapped key next to the ciphertext and forget the plaintext key")
        back = self.kms.decrypt(CiphertextBlob=wrapped, EncryptionContext=ctx)
        if back.get("KeyId") != self.key_arn:
            raise DemoError(f"Decrypt used {back.get('KeyId')}, expected {self.key_arn}")
        same = back["Plaintext"] == plain_key
        del plain_key, dk, back
        if not same:
            raise DemoError("Decrypt of the wrapped key gave a different data key")
        self.ok("Decrypt(wrapped key, same context) gives the same data key back (compared in "
                "memory, not shown)")

        secret = f"db-password-{self.tag}".encode()
        enc = self.kms.encrypt(KeyId=alias, Plaintext=secret, EncryptionContext=ctx)
        blob = enc["CiphertextBlob"]
        self.ok(f"Encrypt({len(secret)}-byte secret, context {json.dumps(ctx)}) -> "
                f"{len(blob)}-byte ciphertext blob")
        out = self.kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
        if out["Plaintext"] != secret:
            raise DemoError("Decrypt with the right context returned different bytes")
        self.ok("Decrypt with the same context: the secret comes back")
        wrong = {**ctx, "purpose": "something-else"}
        self.expect_kms_failure(lambda: self.kms.decrypt(CiphertextBlob=blob,
                                                          EncryptionContext=wrong),
                                f"Decrypt with context {json.dumps(wrong)}")

    def expect_kms_failure(self, fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - botocore ClientError, shown by code
            code = _error_code(exc)
            if code != "InvalidCiphertextException":
                raise DemoError(f"{what}: expected InvalidCiphertextException, got {code}: "
                                f"{exc}") from exc
            self.ok(f"{what} fails: [bold red]{code}[/bold red]")
            return
        raise DemoError(f"{what} succeeded; it must fail with InvalidCiphertextException")

    def put_small(self) -> None:
        self.step("PUT a small object with SSE-KMS and an encryption context")
        self.bucket = f"coffer-demo-{self.tag}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.state.bucket = self.bucket
        self.ok(f"bucket {self.bucket} created")
        self.marker = f"COFFER-DEMO-PLAINTEXT-{secrets.token_hex(16)}"
        self.small_key = "secret/report.txt"
        self.small_body = (f"Quarterly numbers, for the vault only.\nmarker: {self.marker}\n"
                           * 4).encode()
        self.user_ctx = {"project": "coffer-demo", "team": "storage"}
        ctx_b64 = base64.b64encode(json.dumps(self.user_ctx).encode()).decode()
        self.s3.put_object(Bucket=self.bucket, Key=self.small_key, Body=self.small_body,
                           ContentType="text/plain", ServerSideEncryption="aws:kms",
                           SSEKMSKeyId=self.key_arn, SSEKMSEncryptionContext=ctx_b64)
        self.state.objects.append(self.small_key)
        self.ok(f"PUT s3://{self.bucket}/{self.small_key} ({len(self.small_body)} bytes, "
                f"contains the random marker {self.marker})")
        head = self.s3.head_object(Bucket=self.bucket, Key=self.small_key)
        sse, kid = head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")
        self.table([("ServerSideEncryption", str(sse)), ("SSEKMSKeyId", str(kid)),
                    ("ContentLength", str(head.get("ContentLength"))),
                    ("encryption context", json.dumps(self.user_ctx))])
        if sse != "aws:kms" or kid != self.key_arn:
            raise DemoError(f"HEAD reports {sse} / {kid}, expected aws:kms / {self.key_arn}")
        self.ok("HEAD confirms SSE-KMS under the demo key")

    def on_disk(self) -> None:
        self.step("What is on disk")
        path = sidecar_path(self.data_dir, self.bucket, self.small_key)
        if not path.is_file():
            raise DemoError(f"object sidecar {path} not found: is {self.data_dir} the data dir "
                            "of the server at " + self.endpoint + "?")
        doc = json.loads(path.read_text())
        sse = doc.get("meta", {}).get("sse")
        if not isinstance(sse, dict):
            raise DemoError(f"{path} holds no SSE record")
        self.sse_record = sse
        rel = path.relative_to(self.data_dir)
        self.ok(f"object sidecar: {rel}")
        stream = sse.get("stream") or {}
        self.table([("mode", str(sse.get("mode"))), ("key_arn", str(sse.get("key_arn"))),
                    ("wrapped_key", _trunc(str(sse.get("wrapped_key")))),
                    ("context", json.dumps(sse.get("context"))),
                    ("bucket_key", str(sse.get("bucket_key"))),
                    ("plain_size", str(sse.get("plain_size"))),
                    ("stream", json.dumps(stream))])
        if sse.get("key_arn") != self.key_arn:
            raise DemoError(f"sidecar names key {sse.get('key_arn')}, expected {self.key_arn}")
        data_files = [path.parent / n for n in doc.get("data", [])]
        if not data_files or not data_files[0].is_file():
            raise DemoError(f"{path} names no data file")
        stored = sum(f.stat().st_size for f in data_files)
        with open(data_files[0], "rb") as f:
            head = f.read(48)
        self.ok(f"data file: {data_files[0].relative_to(self.data_dir)} ({stored} bytes stored "
                f"for {len(self.small_body)} bytes of plaintext); first bytes:")
        for line in _hexdump(head):
            self.console.print(f"      [dim]{line}[/dim]")
        t0 = time.monotonic()
        hits, seen = files_containing(self.data_dir, self.marker.encode())
        if hits:
            for h in hits:
                self.console.print(f"    [bold red]plaintext found in {h}[/bold red]")
            raise DemoError(f"{len(hits)} files under {self.data_dir} contain the plaintext "
                            "marker")
        self.ok(f"searched {seen} files under {self.data_dir} for the marker in "
                f"{time.monotonic() - t0:.2f} s: [bold green]0 files contain the plaintext"
                "[/bold green]")

    def get_small(self) -> None:
        self.step("GET decrypts")
        r = self.s3.get_object(Bucket=self.bucket, Key=self.small_key)
        body = r["Body"].read()
        if body != self.small_body:
            raise DemoError("GET returned different bytes than were PUT")
        self.ok(f"GET returned {len(body)} bytes, identical to what was PUT "
                f"(ServerSideEncryption {r.get('ServerSideEncryption')})")
        first = body.decode().splitlines()[0]
        self.info(f"[dim]first line: {first}[/dim]")

    def large_upload(self, workdir: Path) -> None:
        from boto3.s3.transfer import TransferConfig
        size = self.args.size_mib * MIB
        self.step(f"Large multipart upload ({self.args.size_mib} MiB) with SSE-KMS")
        src = workdir / "large.bin"
        digest = hashlib.sha256()
        with open(src, "wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(_CHUNK * 4, left))
                digest.update(chunk)
                f.write(chunk)
                left -= len(chunk)
        self.large_src = src
        self.large_sha = digest.hexdigest()
        part = 8 * MIB if size >= 40 * MIB else 5 * MIB
        parts = max(1, -(-size // part))
        tc = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=part,
                            max_concurrency=4)
        self.large_key = f"large/random-{self.args.size_mib}MiB.bin"
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.key_arn}
        t0 = time.monotonic()
        self._transfer("upload", size, lambda cb: self.s3.upload_file(
            str(src), self.bucket, self.large_key, ExtraArgs=extra, Config=tc, Callback=cb))
        up = time.monotonic() - t0
        self.state.objects.append(self.large_key)
        head = self.s3.head_object(Bucket=self.bucket, Key=self.large_key)
        self.ok(f"uploaded in {up:.1f} s ({size / MIB / max(up, 1e-6):.0f} MiB/s), "
                f"{parts} part(s); ETag {head.get('ETag')}, "
                f"ServerSideEncryption {head.get('ServerSideEncryption')}")
        if head.get("ServerSideEncryption") != "aws:kms" or head.get("ContentLength") != size:
            raise DemoError(f"HEAD of the upload reports {head.get('ServerSideEncryption')}, "
                            f"{head.get('ContentLength')} bytes")
        back = workdir / "large.back"
        self._transfer("download", size, lambda cb: self.s3.download_file(
            self.bucket, self.large_key, str(back), Config=tc, Callback=cb))
        got = hashlib.sha256()
        with open(back, "rb") as f:
            while chunk := f.read(_CHUNK * 4):
                got.update(chunk)
        back.unlink()
        if got.hexdigest() != self.large_sha:
            raise DemoError(f"downloaded sha256 {got.hexdigest()} != uploaded {self.large_sha}")
        self.ok(f"downloaded and decrypted: sha256 {self.large_sha[:16]}… matches")

    def _transfer(self, what: str, size: int, fn: Callable[[Callable[[int], None]], None]) -> None:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)
        with Progress(TextColumn(f"    {what:<8}"), BarColumn(), DownloadColumn(binary_units=True),
                      TransferSpeedColumn(), TimeRemainingColumn(),
                      console=self.console, transient=False) as progress:
            task = progress.add_task(what, total=size)
            fn(lambda n: progress.advance(task, n))   # boto3 calls back from its worker threads

    def ranged_get(self) -> None:
        self.step("Ranged GET of the encrypted object")
        size = self.args.size_mib * MIB
        # A range that straddles a 64 KiB segment boundary (and, at 5 MiB, a part boundary).
        boundary = 5 * MIB if size > 5 * MIB else 65536 * max(1, size // 65536 // 2)
        start = max(0, min(boundary - 1000, size - 3000))
        end = min(size - 1, start + 2999)
        r = self.s3.get_object(Bucket=self.bucket, Key=self.large_key, Range=f"bytes={start}-{end}")
        body = r["Body"].read()
        with open(self.large_src, "rb") as f:
            f.seek(start)
            want = f.read(end - start + 1)
        if body != want:
            raise DemoError(f"range bytes={start}-{end} returned different bytes")
        self.ok(f"Range bytes={start}-{end}: {len(body)} bytes, Content-Range "
                f"{r.get('ContentRange')}, identical to the source; only the segments the range "
                "needs are decrypted")

    def wrong_context(self) -> None:
        self.step("A wrong encryption context fails")
        sse = self.sse_record
        blob = base64.b64decode(sse["wrapped_key"])
        right = {"aws:s3:arn": f"arn:aws:s3:::{self.bucket}/{self.small_key}", **self.user_ctx}
        self.info(f"the wrapped data key of s3://{self.bucket}/{self.small_key}, read from its "
                  f"sidecar ({len(blob)} bytes), sent to KMS Decrypt:")
        wrong = {**right, "aws:s3:arn": f"arn:aws:s3:::{self.bucket}/some/other/key"}
        self.expect_kms_failure(lambda: self.kms.decrypt(CiphertextBlob=blob,
                                                          EncryptionContext=wrong),
                                f"Decrypt with context {json.dumps(wrong)}")
        self.expect_kms_failure(lambda: self.kms.decrypt(CiphertextBlob=blob,
                                                          EncryptionContext=self.user_ctx),
                                "Decrypt without the aws:s3:arn member")
        out = self.kms.decrypt(CiphertextBlob=blob, EncryptionContext=right)
        n = len(out["Plaintext"])
        del out
        self.ok(f"Decrypt with the right context {json.dumps(right)} succeeds: a {n}-byte data "
                "key (not shown)")

    def cleanup(self) -> None:
        st = self.state
        if self.args.keep:
            self.step("Keep (--keep)")
            if st.bucket:
                self.ok(f"bucket {st.bucket} kept with {len(st.objects)} object(s)")
            if st.key_id:
                self.ok(f"key {self.key_arn} ({st.alias}) kept")
            return
        self.step("Clean up")
        problems: list[str] = []

        def attempt(what: str, fn: Callable[[], Any]) -> None:
            try:
                fn()
                self.ok(what)
            except Exception as exc:  # noqa: BLE001 - report, go on cleaning
                problems.append(f"{what}: {_error_code(exc)}")
                self.console.print(f"  [yellow]![/yellow] {what}: {exc}")

        if st.bucket:
            for key in list(st.objects):
                attempt(f"deleted {key}",
                        lambda key=key: self.s3.delete_object(Bucket=st.bucket, Key=key))
            attempt(f"deleted bucket {st.bucket}", lambda: self.s3.delete_bucket(Bucket=st.bucket))
        if st.alias:
            attempt(f"deleted {st.alias}", lambda: self.kms.delete_alias(AliasName=st.alias))
        if st.key_id:
            def schedule() -> None:
                r = self.kms.schedule_key_deletion(KeyId=st.key_id, PendingWindowInDays=7)
                when = r.get("DeletionDate")
                self.info(f"deletion date: {when}")
            attempt("key scheduled for deletion in 7 days", schedule)
        if problems:
            raise DemoError("clean-up incomplete: " + "; ".join(problems))

    def run(self) -> None:
        self.connect()
        failure: BaseException | None = None
        with tempfile.TemporaryDirectory(prefix="coffer-demo-") as tmp:
            try:
                self.create_key()
                self.envelope_by_hand()
                self.put_small()
                self.on_disk()
                self.get_small()
                self.large_upload(Path(tmp))
                self.ranged_get()
                self.wrong_context()
            except BaseException as exc:
                failure = exc
                self.failed_step = self.step_no
            try:
                self.cleanup()
            except DemoError as exc:
                if failure is None:
                    raise
                self.console.print(f"[yellow]{exc}[/yellow]")
        if failure is not None:
            raise failure


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    if args.size_mib < 6:
        err.print("[red]--size-mib must be at least 6 (a multipart upload needs parts of 5 "
                  "MiB)[/red]")
        return 2
    demo = Demo(args, console)
    try:
        demo.run()
    except DemoError as exc:
        err.print(f"[bold red]coffer demo failed:[/bold red] {exc}")
        return 1
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        return 130
    except Exception as exc:  # noqa: BLE001 - botocore errors and the like, without a traceback
        err.print(f"[bold red]coffer demo failed in step {demo.failed_step or demo.step_no}:[/bold red] "
                  f"{_error_code(exc)}: {exc}")
        return 1
    console.print()
    console.print("[bold green]Demo complete:[/bold green] data keys came from the KMS, only "
                  "wrapped keys and ciphertext reached the disk, and the encryption context "
                  "binds each key to its object.")
    return 0
