"""SoftHSM2 for the HSM tests: one fresh token directory per test session (``SOFTHSM2_CONF``
points into a temp dir), with the tokens the tests use already initialised.

Without SoftHSM2 (or python-pkcs11) the HSM tests are skipped with the install command; in CI
(``CI=true``) they fail instead, so they can never be skipped silently there.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["SoftHSM", "start_softhsm", "MODULE_CANDIDATES", "PIN", "SO_PIN", "TOKENS"]

MODULE_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so",
                     "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                     "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
                     "/usr/local/lib/softhsm/libsofthsm2.so")
PIN = "coffer-pin-1"          # CloudHSM passwords are 7..32 characters
SO_PIN = "coffer-so-pin-1"
# Root-key tests, custom key store tests (two "clusters"), and the wire server.
# botocore accepts a CloudHsmClusterId of 19..24 characters ("cluster-" + 11..16), so the
# tokens that stand for clusters carry labels of that length.
TOKENS = ("coffer-root", "cluster-test0000000a", "cluster-test0000000b", "wire-root",
          "cluster-wire0000001")
INSTALL = ("SoftHSM2 is not installed: `sudo apt-get install -y softhsm2` (Debian/Ubuntu) and "
           "`pip install python-pkcs11` (in the test extra) to run the HSM tests")


@dataclass
class SoftHSM:
    module: str
    conf: Path
    pin: str = field(default=PIN, repr=False)

    def env(self, token: str, **extra: str) -> dict[str, str]:
        """Environment for a ``coffer`` process using ``token``."""
        return {"SOFTHSM2_CONF": str(self.conf), "COFFER_PKCS11_MODULE": self.module,
                "COFFER_PKCS11_TOKEN": token, "COFFER_PKCS11_PIN": self.pin, **extra}


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"HSM tests must run in CI: {reason}. {INSTALL}", pytrace=False)
    pytest.skip(f"{reason}. {INSTALL}")


def start_softhsm(tmp: Path) -> SoftHSM:
    override = os.environ.get("COFFER_TEST_PKCS11_MODULE")
    module = next((m for m in ((override,) if override else MODULE_CANDIDATES)
                   if Path(m).exists()), None)
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        _unavailable("libsofthsm2.so or softhsm2-util not found")
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        _unavailable("python-pkcs11 is not installed")
    tokens = tmp / "tokens"
    tokens.mkdir(parents=True)
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\nslots.mechanisms = ALL\n"
                    "library.reset_on_fork = false\n")
    # The library reads SOFTHSM2_CONF once, when it is first loaded in this process.
    prev = os.environ.get("SOFTHSM2_CONF")
    if prev and prev != str(conf) and _loaded():
        pytest.fail("SoftHSM2 was loaded with another SOFTHSM2_CONF in this process")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for label in TOKENS:
        subprocess.run([util, "--init-token", "--free", "--label", label, "--so-pin", SO_PIN,
                        "--pin", PIN], check=True, capture_output=True,
                       env={**os.environ, "SOFTHSM2_CONF": str(conf)})
    return SoftHSM(module=module, conf=conf)


def _loaded() -> bool:
    try:
        return "libsofthsm2" in Path("/proc/self/maps").read_text()
    except OSError:
        return False
