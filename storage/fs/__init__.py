"""Filesystem object store: the default ``ObjectStore`` (see store.py and layout.py)."""
from __future__ import annotations

from .store import FSObjectStore

__all__ = ["FSObjectStore"]
