"""``coffer kms backup`` and ``coffer kms restore`` (the format and policy: kms/backup.py).

    coffer kms backup --out FILE [--data-dir D] [--passphrase-file F | --pkcs11-key LABEL]
    coffer kms restore FILE [--data-dir D] [--passphrase-file F]

The passphrase comes from ``--passphrase-file`` (its first line) or ``COFFER_BACKUP_PASSPHRASE``,
or is asked for on a terminal; never from a flag value, so it stays out of ``ps`` and shell
history, and it is never printed or logged. ``--pkcs11-key LABEL`` seals the backup under an AES
key inside the token named by ``COFFER_PKCS11_*`` instead (created there, non-extractable, if
absent); restoring such a file needs that token, and the header says which.

A restore that is refused prints one line and exits 2: the same line for a wrong passphrase and
for a file that was altered (kms.crypto.backup), so it cannot serve as an oracle.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

__all__ = ["add_backup_parsers", "run_backup", "run_restore"]

PASSPHRASE_ENV = "COFFER_BACKUP_PASSPHRASE"
MIN_PASSPHRASE = 12     # characters; scrypt slows guessing, it cannot save a short secret


class _Refused(Exception):
    pass


def add_backup_parsers(kms_sub, data_dir_arg, module_arg) -> None:
    backup = kms_sub.add_parser(
        "backup", help="write an encrypted, integrity-protected snapshot of the KMS "
        "(safe while the server runs)",
        description="Snapshot the KMS database (key material stays wrapped by the root key) "
        "and the file root key, sealed with AES-256-GCM under a key derived from a passphrase "
        f"(scrypt; {PASSPHRASE_ENV} or --passphrase-file) or held in a PKCS#11 token "
        "(--pkcs11-key). HSM-held keys are listed, never exported.")
    backup.add_argument("--out", required=True, help="the backup file to create (0600; an "
                        "existing file is refused)")
    data_dir_arg(backup)
    backup.add_argument("--passphrase-file", help=f"file whose first line is the passphrase "
                        f"(default: {PASSPHRASE_ENV}, else asked on the terminal)")
    backup.add_argument("--pkcs11-key", metavar="LABEL", help="seal under this AES key in the "
                        "COFFER_PKCS11_TOKEN token instead of a passphrase")
    backup.add_argument("--json", action="store_true", help="print the summary as JSON")
    module_arg(backup)
    restore = kms_sub.add_parser(
        "restore", help="restore a backup into a data dir whose KMS is empty",
        description="Authenticate and restore a coffer-kms-backup/1 file into <data-dir>/kms "
        "(files 0600, directory 0700). Refuses a data dir that holds KMS data, a wrong "
        "passphrase and an altered file (exit status 2). Stop the server first.")
    restore.add_argument("file", help="the backup file")
    data_dir_arg(restore)
    restore.add_argument("--passphrase-file", help=f"file whose first line is the passphrase "
                         f"(default: {PASSPHRASE_ENV}, else asked on the terminal)")
    restore.add_argument("--json", action="store_true", help="print the summary as JSON")
    module_arg(restore)


def _passphrase(args: argparse.Namespace, *, confirm: bool) -> str:
    if args.passphrase_file:
        try:
            text = Path(args.passphrase_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _Refused(f"cannot read --passphrase-file: "
                           f"{getattr(exc, 'strerror', None) or 'not UTF-8'}") from None
        value = text.splitlines()[0] if text else ""
    elif os.environ.get(PASSPHRASE_ENV):
        value = os.environ[PASSPHRASE_ENV]
    elif sys.stdin.isatty():
        value = getpass.getpass("Backup passphrase: ")
        if confirm and getpass.getpass("Again: ") != value:
            raise _Refused("the passphrases differ")
    else:
        raise _Refused(f"no passphrase: set {PASSPHRASE_ENV} or pass --passphrase-file")
    if not value:
        raise _Refused("the passphrase is empty")
    if confirm and len(value) < MIN_PASSPHRASE:
        raise _Refused(f"the passphrase must be at least {MIN_PASSPHRASE} characters")
    return value


def _token(args: argparse.Namespace, token_label: str | None = None):
    from kms.crypto.pkcs11 import Token
    from kms.rootkeys import HSMSettings
    hsm = HSMSettings.from_env(module_path=getattr(args, "pkcs11_module", None))
    return Token(hsm.token_config(token_label))


def _print(summary, args: argparse.Namespace, verb: str) -> None:
    if args.json:
        print(json.dumps({**summary.manifest, "size": summary.size}, indent=2))
        return
    print(verb)
    for line in summary.lines():
        print(f"  {line}")


def run_backup(args: argparse.Namespace) -> int:
    from kms.backup import BackupError, create_backup
    from kms.crypto.backup import PassphraseProtector, TokenProtector
    from kms.crypto.pkcs11 import HSMError
    from kms.crypto.rootkey import RootKeyError

    token = None
    try:
        if args.pkcs11_key:
            token = _token(args)
            if not token.has_key(args.pkcs11_key):
                token.generate_key(args.pkcs11_key)
                print(f"backup key {token.label}/{args.pkcs11_key} created in the token "
                      "(non-extractable); keep the token to restore", file=sys.stderr)
            protector = TokenProtector(token, args.pkcs11_key)
        else:
            protector = PassphraseProtector(_passphrase(args, confirm=True))
        summary = create_backup(Path(args.data_dir), Path(args.out), protector)
    except (_Refused, BackupError, RootKeyError, HSMError) as exc:
        print(f"coffer kms backup: {exc}", file=sys.stderr)
        return 1
    finally:
        if token is not None:
            token.close()
    _print(summary, args, f"backup written to {args.out} ({summary.size} bytes)")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from kms.backup import BackupError, restore_backup
    from kms.crypto.backup import (PKCS11, BackupCryptoError, PassphraseProtector,
                                   TokenProtector, read_header)
    from kms.crypto.pkcs11 import HSMError
    from kms.crypto.rootkey import RootKeyError

    token = None
    try:
        try:
            with open(args.file, "rb") as f:
                head = f.read(4096)
        except OSError as exc:
            raise _Refused(f"cannot read {args.file}: {exc.strerror}") from None
        info = read_header(head)
        if info.protector == PKCS11:
            token = _token(args, info.token_label)
            protector = TokenProtector(token, info.key_label)
        else:
            protector = PassphraseProtector(_passphrase(args, confirm=False))
        summary = restore_backup(Path(args.data_dir), Path(args.file), protector)
    except (_Refused, BackupCryptoError, BackupError, RootKeyError, HSMError) as exc:
        print(f"coffer kms restore: {exc}", file=sys.stderr)
        return 2
    finally:
        if token is not None:
            token.close()
    _print(summary, args, f"restored into {Path(args.data_dir) / 'kms'}")
    return 0
