"""``coffer kms ...``: root key administration, and the PKCS#11 flags of ``coffer serve``.

    coffer kms init-hsm                   create the root key in the token (if absent)
    coffer kms migrate-root --to pkcs11   rewrap a data dir from root.key to the token's key
    coffer kms backup --out FILE          encrypted KMS snapshot (gateway/kms_backup_cli.py)
    coffer kms restore FILE               into a data dir whose KMS is empty

PKCS#11 settings: ``--pkcs11-module`` (``COFFER_PKCS11_MODULE``), ``COFFER_PKCS11_TOKEN`` (token
label), ``COFFER_PKCS11_PIN`` or ``COFFER_PKCS11_PIN_FILE`` (never a flag, so it stays out of
``ps`` and shell history; never printed or logged), ``COFFER_PKCS11_KEY_LABEL`` (default
``coffer-root``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.config import env_default

__all__ = ["add_serve_arguments", "add_kms_parser", "run"]


def _module_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pkcs11-module", default=env_default("pkcs11_module"),
                   help="PKCS#11 module (COFFER_PKCS11_MODULE), e.g. "
                        "/usr/lib/softhsm/libsofthsm2.so")


def add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    _module_arg(serve)
    serve.add_argument("--root-key", choices=("file", "pkcs11"),
                       default=env_default("root_key"),
                       help="root key provider of a new data dir (COFFER_ROOT_KEY; default: "
                            "what the data dir records, else file)")


def add_kms_parser(sub, data_dir_arg) -> None:
    kms = sub.add_parser("kms", help="KMS administration: HSM root key, backup and restore, "
                         "key usage")
    kms_sub = kms.add_subparsers(dest="kms_command", metavar="ACTION")
    init = kms_sub.add_parser("init-hsm", help="create the root key in the PKCS#11 token")
    _module_arg(init)
    migrate = kms_sub.add_parser("migrate-root", help="rewrap every key version under another "
                                 "root key (stop the server first)")
    migrate.add_argument("--to", required=True, choices=("pkcs11",))
    _module_arg(migrate)
    data_dir_arg(migrate)
    migrate.add_argument("--region", default=env_default("region", "us-east-1"))
    from gateway.audit_cli import add_key_usage_parser
    add_key_usage_parser(kms_sub, data_dir_arg)
    from gateway.kms_backup_cli import add_backup_parsers
    add_backup_parsers(kms_sub, data_dir_arg, _module_arg)


def run(args: argparse.Namespace) -> int:
    from kms.crypto.pkcs11 import HSMError
    from kms.crypto.rootkey import RootKeyError
    from kms.rootkeys import HSMSettings, init_hsm, migrate_root_to_pkcs11

    if args.kms_command == "key-usage":
        from gateway.audit_cli import run_key_usage
        return run_key_usage(args)
    if args.kms_command in ("backup", "restore"):
        from gateway.kms_backup_cli import run_backup, run_restore
        return (run_backup if args.kms_command == "backup" else run_restore)(args)
    try:
        hsm = HSMSettings.from_env(module_path=getattr(args, "pkcs11_module", None))
        if args.kms_command == "init-hsm":
            key_id, created = init_hsm(hsm)
            print(f"root key {key_id} {'created' if created else 'already exists'} "
                  "(sensitive, non-extractable)")
            return 0
        if args.kms_command == "migrate-root":
            n = migrate_root_to_pkcs11(Path(args.data_dir), hsm, region=args.region)
            print(f"{n} records rewrapped under the pkcs11 root key "
                  f"{hsm.token_label}/{hsm.key_label}; root.key removed")
            return 0
    except (RootKeyError, HSMError) as exc:
        print(f"coffer kms: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("usage: coffer kms {init-hsm,migrate-root --to pkcs11,backup,restore,key-usage}",
          file=sys.stderr)
    return 2
