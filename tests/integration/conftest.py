"""Shared fixtures for the KMS integration tests: an injected clock (nothing sleeps), an
in-memory audit sink, and a KMS on a real SQLite store in a temp dir."""
from __future__ import annotations

import pytest

from kms.audit import MemorySink
from kms.service import KMS

T0 = 1_700_000_000.0


class Clock:
    """A settable clock: tests move ``t`` to cross rotation periods and deletion windows."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def kms(tmp_path, clock, sink):
    k = KMS.open(tmp_path, clock=clock, audit=sink)
    yield k
    k.close()
