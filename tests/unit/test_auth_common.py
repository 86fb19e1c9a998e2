"""Shared fixtures for the auth tests (not a test module)."""
from __future__ import annotations

import json
from pathlib import Path

from multidict import CIMultiDict

from gateway.auth.types import Credential

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "sigv4_aws_examples.json")
                     .read_text())
AKID = VECTORS["access_key_id"]
SECRET = VECTORS["secret_access_key"]
EPOCH = VECTORS["epoch"]
CRED = Credential(access_key_id=AKID, secret_access_key=SECRET, account_id="123456789012",
                  principal_arn="arn:aws:iam::123456789012:user/test", user_name="test")


def lookup(akid: str):
    return CRED if akid == AKID else None


def headers(d: dict[str, str]) -> CIMultiDict:
    return CIMultiDict(d)


class FakeStream:
    """An aiohttp StreamReader stand-in: readany() returns the given pieces, then b''."""

    def __init__(self, pieces):
        self._pieces = list(pieces)

    async def readany(self) -> bytes:
        return self._pieces.pop(0) if self._pieces else b""
