"""The ``coffer`` command.

    coffer serve   run the gateway (S3 today; KMS, IAM faces join on the same port)
    coffer fsck    rebuild derived listing indexes from the object records
    coffer demo    walk through SSE-KMS against a running local server (gateway/demo.py)
    coffer credentials   the root credentials as shell exports (eval "$(coffer credentials)")
    coffer account create|list   add an account (prints its root key once) / list accounts
    coffer kms init-hsm | migrate-root --to pkcs11   the HSM root key (gateway/kms_admin.py)
    coffer kms key-usage KEY                  is this key still used? (gateway/key_usage.py)
    coffer audit digest|verify|tail|lookup    the audit trail (gateway/audit_cli.py)
    coffer kms backup|restore                 KMS snapshots (gateway/kms_backup_cli.py)
    coffer s3 encryption-report               SSE mode/key/version per bucket
    coffer s3 reencrypt --bucket B (--to-key K | --to-sse-s3)   (gateway/reencrypt.py)
    coffer --version

Flags of ``serve`` follow DESIGN.md "Data dir and command line"; each has a ``COFFER_<NAME>``
environment twin.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.config import Config, env_default
from gateway.credentials import load_or_create_root
from gateway.datadir import DataDirError, restrict_umask, secure_data_dir

if TYPE_CHECKING:
    from gateway.listener import EdgeLimits

__all__ = ["main", "build_parser", "config_from_args"]


def audit_config(args: argparse.Namespace) -> dict:
    from gateway.audit_cli import config_kwargs
    return config_kwargs(args)


def _bool_env(name: str) -> bool:
    return (env_default(name, "") or "").lower() in ("1", "true", "yes", "on")


def _encryption_mode(value: str) -> str:
    mode = {"aes256": "AES256", "none": "none"}.get(value.strip().lower())
    if mode is None:
        raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from AES256, none)")
    return mode


def _positive(kind):
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if not number > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0: {value!r}")
        return number
    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coffer", description="Coffer: an S3-compatible "
                                     "object store with SSE-KMS and a built-in KMS")
    parser.add_argument("--version", action="version", version=f"coffer {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default=env_default("host", "127.0.0.1"),
                       help="address to bind (COFFER_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=int(env_default("port", "9000") or 9000),
                       help="port (COFFER_PORT, default 9000)")
    _data_dir_arg(serve)
    serve.add_argument("--region", default=env_default("region", "us-east-1"),
                       help="region (COFFER_REGION, default us-east-1)")
    serve.add_argument("--regions", default=env_default("regions"),
                       help="comma-separated regions served (COFFER_REGIONS; default: any "
                            "valid region name a client signs for)")
    serve.add_argument("--tls", action="store_true", default=_bool_env("tls"),
                       help="serve HTTPS (COFFER_TLS); self-signed for localhost unless "
                            "--tls-cert/--tls-key are given")
    serve.add_argument("--tls-cert", default=env_default("tls_cert"),
                       help="PEM certificate chain (COFFER_TLS_CERT)")
    serve.add_argument("--tls-key", default=env_default("tls_key"),
                       help="PEM private key (COFFER_TLS_KEY)")
    serve.add_argument("--domain", action="append", default=None,
                       help="domain for virtual-host-style buckets, repeatable "
                            "(COFFER_DOMAIN, comma-separated; default localhost)")
    serve.add_argument("--default-encryption", type=_encryption_mode, metavar="{AES256,none}",
                       default=env_default("default_encryption", "AES256"),
                       help="encryption of PUTs to buckets without an encryption configuration "
                            "(COFFER_DEFAULT_ENCRYPTION, default AES256 = SSE-S3)")
    serve.add_argument("--sse-c-allow-http", action="store_true",
                       default=_bool_env("sse_c_allow_http"),
                       help="accept SSE-C keys over plain HTTP (COFFER_SSE_C_ALLOW_HTTP; "
                            "default: HTTPS only, as S3)")
    serve.add_argument("--header-timeout", type=_positive(float), metavar="SECONDS",
                       default=env_default("header_timeout", "15"),
                       help="close a connection that has not sent a complete request head "
                            "this long after connecting or after its previous response; also "
                            "the keep-alive idle limit (COFFER_HEADER_TIMEOUT, default 15)")
    serve.add_argument("--body-timeout", type=_positive(float), metavar="SECONDS",
                       default=env_default("body_timeout", "20"),
                       help="fail a request (400 RequestTimeout) whose body stops arriving "
                            "for this long (COFFER_BODY_TIMEOUT, default 20)")
    serve.add_argument("--max-connections", type=_positive(int), metavar="N",
                       default=env_default("max_connections", "1024"),
                       help="connections served at once; more wait in the listen backlog "
                            "(COFFER_MAX_CONNECTIONS, default 1024)")
    serve.add_argument("--log-level", default=env_default("log_level", "INFO"),
                       help="server log level (COFFER_LOG_LEVEL, default INFO)")
    serve.add_argument("--log-format", choices=("text", "json"),
                       default=env_default("log_format", "text"),
                       help="stderr log lines, the access log's one line per request included: "
                            "text or one JSON object per line (COFFER_LOG_FORMAT, default text)")
    serve.add_argument("--metrics-port", type=_positive(int), metavar="PORT",
                       default=env_default("metrics_port"),
                       help="serve Prometheus metrics at http://<metrics-host>:PORT/metrics, "
                            "a listener of its own, never the S3 port (COFFER_METRICS_PORT; "
                            "default: off)")
    serve.add_argument("--metrics-host", default=env_default("metrics_host", "127.0.0.1"),
                       help="address of the metrics listener (COFFER_METRICS_HOST, default "
                            "127.0.0.1)")
    serve.add_argument("--metrics-token-file", default=env_default("metrics_token_file"),
                       metavar="FILE",
                       help="require 'Authorization: Bearer <token>' on /metrics, the token "
                            "read from FILE (COFFER_METRICS_TOKEN_FILE)")
    from gateway.kms_admin import add_serve_arguments, add_kms_parser
    add_serve_arguments(serve)
    add_kms_parser(sub, _data_dir_arg)
    fsck = sub.add_parser("fsck", help="rebuild listing indexes from object records")
    _data_dir_arg(fsck)
    from gateway.demo import add_arguments as demo_arguments
    demo_arguments(sub.add_parser("demo", help="walk through SSE-KMS against a running server"))
    creds = sub.add_parser("credentials", help="print the root credentials as shell exports: "
                           'eval "$(coffer credentials)"',
                           description="Print export lines for AWS_ACCESS_KEY_ID, "
                           "AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION from "
                           "<data-dir>/root-credentials.json, for the aws CLI and SDKs.")
    creds.add_argument("--data-dir", default=env_default("data_dir", "./coffer-data"),
                       help="the server's data directory (COFFER_DATA_DIR, default "
                            "./coffer-data)")
    creds.add_argument("--region", default=env_default("region", "us-east-1"),
                       help="region to export (COFFER_REGION, default us-east-1)")
    account = sub.add_parser("account", help="manage accounts (IAM)")
    account_sub = account.add_subparsers(dest="account_command", metavar="ACTION")
    _data_dir_arg(account_sub.add_parser("create", help="create an account and a root "
                                         "access key (printed once)"))
    _data_dir_arg(account_sub.add_parser("list", help="list account ids"))
    from gateway.audit_cli import add_audit_parser, add_serve_arguments as audit_serve_arguments
    audit_serve_arguments(serve)
    add_audit_parser(sub, _data_dir_arg)
    from gateway.encryption_report import add_s3_parser
    from gateway.reencrypt import add_parser as add_reencrypt_parser
    add_reencrypt_parser(add_s3_parser(sub, _data_dir_arg))
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("coffer")
    except PackageNotFoundError:      # run from a source tree that was never installed
        return "0+unknown"


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=env_default("data_dir", "./coffer-data"),
                   help="data directory (COFFER_DATA_DIR, default ./coffer-data)")
    p.add_argument("--iam-key-file", default=env_default("iam_key_file"),
                   help="key sealing stored IAM secret keys, kept outside the data dir "
                        "(COFFER_IAM_KEY_FILE, default <data-dir>.iam.key)")


def config_from_args(args: argparse.Namespace) -> Config:
    domains = args.domain or [d for d in (env_default("domain", "localhost") or "").split(",")
                              if d]
    return Config(host=args.host, port=args.port, data_dir=Path(args.data_dir),
                  iam_key_file=Path(args.iam_key_file) if args.iam_key_file else None,
                  region=args.region, tls=bool(args.tls or args.tls_cert),
                  regions=tuple(r.strip() for r in args.regions.split(",") if r.strip())
                  if getattr(args, "regions", None) else None,
                  tls_cert=Path(args.tls_cert) if args.tls_cert else None,
                  tls_key=Path(args.tls_key) if args.tls_key else None,
                  domains=tuple(domains),
                  root_access_key=env_default("root_access_key"),
                  root_secret_key=env_default("root_secret_key"),
                  default_encryption=args.default_encryption,
                  sse_c_require_tls=not args.sse_c_allow_http,
                  pkcs11_module=args.pkcs11_module, root_key=args.root_key,
                  header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                  max_connections=args.max_connections,
                  metrics_port=args.metrics_port, metrics_host=args.metrics_host,
                  metrics_token_file=Path(args.metrics_token_file)
                  if args.metrics_token_file else None,
                  log_format=args.log_format,
                  **audit_config(args))


def _ssl_context(cfg: Config) -> tuple[ssl.SSLContext, Path | None]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if cfg.tls_cert:
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        return ctx, None
    from kms.crypto.tls import ensure_self_signed
    files = ensure_self_signed(cfg.data_dir / "tls", cfg.domains)
    ctx.load_cert_chain(files.cert, files.key)
    return ctx, files.ca


# Descriptors the process needs besides client connections: SQLite databases with their -wal
# and -shm (KMS, IAM, one listing index per bucket), audit files, the thread pool's open objects.
_FD_RESERVE = 256


def _connection_budget(wanted: int) -> int:
    """``wanted``, or fewer if RLIMIT_NOFILE cannot be raised to hold them (logged): the cap
    exists so that a flood of connections never exhausts the process's descriptors."""
    try:
        import resource
    except ImportError:     # not POSIX
        return wanted
    need = wanted + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted
    budget = soft - _FD_RESERVE
    if budget < 1:
        raise SystemExit(f"coffer: the open-files limit ({soft}) leaves no room for client "
                         "connections; raise it (ulimit -n)")
    logging.getLogger("coffer").warning(
        "open-files limit %d (hard %d) cannot hold --max-connections %d; serving at most %d",
        soft, hard, wanted, budget)
    return budget


async def _run_server(cfg: Config, ssl_ctx: ssl.SSLContext | None, limits: EdgeLimits,
                      token: bytes | None) -> None:
    from gateway.access_log import access_logger_class
    from gateway.app import make_app
    from gateway.listener import LimitedSite, handler_kwargs
    from gateway.metrics import Metrics, start_metrics_listener

    metrics = Metrics()
    observer = access_logger_class(metrics, fmt=cfg.log_format)
    runner = web.AppRunner(make_app(cfg, metrics=metrics), handle_signals=False,
                           shutdown_timeout=10, **handler_kwargs(limits, observer))
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics_runner = None
    try:
        await LimitedSite(runner, cfg.host, cfg.port, limits=limits, ssl_context=ssl_ctx,
                          access_log_class=observer).start()
        if cfg.metrics_port is not None:
            try:
                metrics_runner = await start_metrics_listener(metrics, cfg.metrics_host,
                                                              cfg.metrics_port, token)
            except OSError as exc:
                raise SystemExit(f"coffer: cannot serve metrics on {cfg.metrics_host}:"
                                 f"{cfg.metrics_port}: {exc.strerror or exc}") from None
        await stop.wait()
    finally:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await runner.cleanup()


def serve(cfg: Config) -> int:
    try:
        secure_data_dir(cfg.data_dir)       # 0700, ours: only the server reads it
    except (DataDirError, OSError) as exc:
        print(f"coffer: {exc}", file=sys.stderr)
        return 2
    from gateway.listener import EdgeLimits
    limits = EdgeLimits(header_timeout=cfg.header_timeout, body_timeout=cfg.body_timeout,
                        max_connections=_connection_budget(cfg.max_connections))
    token = None
    if cfg.metrics_token_file is not None:
        from gateway.metrics import MetricsTokenError, read_token_file
        try:
            token = read_token_file(cfg.metrics_token_file)
        except MetricsTokenError as exc:
            print(f"coffer: {exc}", file=sys.stderr)
            return 2
    if cfg.metrics_port is not None and cfg.metrics_port == cfg.port \
            and cfg.metrics_host == cfg.host:
        print("coffer: --metrics-port must differ from --port (metrics never share the S3 "
              "port)", file=sys.stderr)
        return 2
    root = load_or_create_root(cfg.data_dir, cfg.root_access_key, cfg.root_secret_key)
    scheme = "https" if cfg.tls else "http"
    ssl_ctx, ca = _ssl_context(cfg) if cfg.tls else (None, None)
    out = sys.stdout
    print(f"Coffer listening on {scheme}://{cfg.host}:{cfg.port}  (data dir {cfg.data_dir}, "
          f"region {cfg.region})", file=out)
    if root.created:
        # Printed exactly once, on the start that created them; kept 0600 in the data dir.
        print("Root credentials (shown once; stored in "
              f"{cfg.data_dir / 'root-credentials.json'}):", file=out)
        print(f"  AWS_ACCESS_KEY_ID={root.credential.access_key_id}", file=out)
        print(f"  AWS_SECRET_ACCESS_KEY={root.credential.secret_access_key}", file=out)
        print("Try it: run `coffer demo` in a second terminal, from this directory"
              + ("" if cfg.data_dir == Path("coffer-data") else
                 f" (with --data-dir {cfg.data_dir})"), file=out)
    else:
        print(f"Root access key: {root.credential.access_key_id} "
              f"(secret in {cfg.data_dir / 'root-credentials.json'})", file=out)
    if ca is not None:
        print(f"TLS CA certificate: {ca}  (export AWS_CA_BUNDLE={ca})", file=out)
    out.flush()
    if cfg.metrics_port is not None:
        print(f"Metrics on http://{cfg.metrics_host}:{cfg.metrics_port}/metrics"
              + ("  (bearer token required)" if token else ""), file=out)
    out.flush()
    asyncio.run(_run_server(cfg, ssl_ctx, limits, token))
    return 0


def fsck(data_dir: Path) -> int:
    from storage.fs import FSObjectStore

    async def run() -> None:
        store = FSObjectStore(data_dir / "s3")
        await store.open()
        try:
            for b in await store.list_buckets():
                count = await store.rebuild_index(b.name)
                print(f"{b.name}: index rebuilt ({count} objects)")
        finally:
            await store.close()

    asyncio.run(run())
    return 0


def account(args: argparse.Namespace) -> int:
    from gateway.identity import IdentityStore

    data_dir = Path(args.data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = load_or_create_root(data_dir)
    store = IdentityStore.open(data_dir, key_file=Path(args.iam_key_file)
                               if args.iam_key_file else None)
    try:
        store.ensure_account(root.credential.account_id)
        if args.account_command == "create":
            new = store.create_account()
            # Printed once: only the sealed form is kept (data dir + iam/secret.key).
            print(f"Account {new.account_id} created. Root credentials (shown once):")
            print(f"  AWS_ACCESS_KEY_ID={new.root_key.key.access_key_id}")
            print(f"  AWS_SECRET_ACCESS_KEY={new.root_key.secret_access_key}")
            return 0
        if args.account_command == "list":
            for acct in store.list_accounts():
                print(acct)
            return 0
    finally:
        store.close()
    print("usage: coffer account {create,list} [--data-dir DIR]", file=sys.stderr)
    return 2


def credentials(data_dir: Path, region: str) -> int:
    import shlex

    from gateway.demo import DemoError, load_credentials
    try:
        akid, secret, _ = load_credentials(data_dir, env=False)
    except DemoError as exc:
        print(f"coffer credentials: {exc}", file=sys.stderr)
        return 1
    for name, value in (("AWS_ACCESS_KEY_ID", akid), ("AWS_SECRET_ACCESS_KEY", secret),
                        ("AWS_DEFAULT_REGION", region)):
        print(f"export {name}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    # Before anything is created: whatever any subcommand (or a library under it) writes into
    # a data dir is private to this user (gateway/datadir.py).
    restrict_umask()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        from gateway.access_log import configure_logging
        configure_logging(args.log_level, args.log_format)
        return serve(config_from_args(args))
    if args.command == "fsck":
        return fsck(Path(args.data_dir))
    if args.command == "kms":
        from gateway.kms_admin import run as kms_admin
        return kms_admin(args)
    if args.command == "account":
        return account(args)
    if args.command == "audit":
        from gateway.audit_cli import run as audit
        return audit(args)
    if args.command == "credentials":
        return credentials(Path(args.data_dir), args.region)
    if args.command == "demo":
        from gateway.demo import run as demo
        return demo(args)
    if args.command == "s3" and args.s3_command == "reencrypt":
        from gateway.reencrypt import run as reencrypt
        return reencrypt(args)
    if args.command == "s3":
        from gateway.encryption_report import run as s3_admin
        return s3_admin(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
