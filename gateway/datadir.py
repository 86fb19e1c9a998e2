"""Who may read the data dir: the user the server runs as, and nobody else.

The data dir holds the root key, the IAM database, root credentials, wrapped data keys and
ciphertext; group or world access to any of it is a leak. The rule (issue 11, finding 19):
every file 0600, every directory 0700, whatever the umask of the shell that started Coffer and
whatever the mode of a directory the user made beforehand.

How it holds:

1. ``restrict_umask()`` sets the process umask to 0o077 as the first thing every ``coffer``
   subcommand does. Everything created afterwards, by us or by libraries we do not control
   (SQLite's ``-wal`` / ``-shm`` / journal files, ``Path.write_text``), is at most 0600 / 0700.
   Modules that create files also pass explicit modes, so library use without the CLI holds too.
2. ``secure_data_dir()`` runs before the server opens anything: the data dir must be a directory
   owned by our effective uid (else we refuse: another user controls what we would trust); if
   its mode lets group or others in we tighten it to 0700 and log it. Then one pass over the
   tree (never following symlinks) drops group/other bits from what an earlier, looser umask
   left behind. ``kms/root.key`` is left alone: ``kms.crypto.rootkey`` refuses a root key others
   could read, and that refusal must not be silenced by quietly fixing the mode.

Tightening rather than refusing a loose data dir: a fresh ``mkdir`` under the common umask 022
gives 0755, and refusing that would make the default start fail; nothing is readable through
the data dir after the chmod, and the log names what changed.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["DataDirError", "PRIVATE_UMASK", "restrict_umask", "secure_data_dir"]

log = logging.getLogger("coffer.datadir")

PRIVATE_UMASK = 0o077
_LEFT_TO_OWNER = {Path("kms") / "root.key"}


class DataDirError(Exception):
    """The data dir cannot be made private (wrong owner, not a directory)."""


def restrict_umask() -> int:
    """Set the process umask to 0o077; returns the previous one."""
    return os.umask(PRIVATE_UMASK)


def secure_data_dir(data_dir: Path) -> int:
    """Create ``data_dir`` 0700 or make an existing one private. Returns how many entries were
    tightened. Raises ``DataDirError`` if it is not a directory we own."""
    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.stat(data_dir)
    if not stat.S_ISDIR(st.st_mode):
        raise DataDirError(f"data dir {data_dir} is not a directory")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise DataDirError(f"data dir {data_dir} is owned by uid {st.st_uid}, not by the user "
                           f"coffer runs as (uid {os.geteuid()}); refusing to use it")
    fixed = 0
    if stat.S_IMODE(st.st_mode) != 0o700:
        log.warning("data dir %s had mode %04o; tightened to 0700", data_dir,
                    stat.S_IMODE(st.st_mode))
        os.chmod(data_dir, 0o700)
        fixed += 1
    return fixed + _tighten_tree(data_dir)


def _tighten_tree(root: Path) -> int:
    fixed = 0
    stack = [root]
    while stack:
        top = stack.pop()
        try:
            entries = list(os.scandir(top))
        except OSError as exc:
            log.warning("data dir: cannot list %s: %s", top, exc)
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue        # removed meanwhile
            if stat.S_ISLNK(st.st_mode):
                continue        # never chmod through a link: its target may be anyone's
            is_dir = stat.S_ISDIR(st.st_mode)
            if is_dir:
                stack.append(Path(entry.path))
            mode = stat.S_IMODE(st.st_mode)
            # Directories need 0700 for the server to work in them; a file keeps its owner
            # bits (a 0400 file stays read-only) and loses group/other.
            want = 0o700 if is_dir else mode & 0o700
            if mode == want or not (is_dir or stat.S_ISREG(st.st_mode)):
                continue
            if Path(entry.path).relative_to(root) in _LEFT_TO_OWNER:
                continue
            try:
                os.chmod(entry.path, want)    # not a symlink (checked above), in a 0700 dir
            except OSError as exc:
                log.warning("data dir: cannot chmod %s: %s", entry.path, exc)
                continue
            log.info("data dir: %s had mode %04o; now %04o", entry.path, mode, want)
            fixed += 1
    return fixed
