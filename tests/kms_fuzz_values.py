"""Values for the KMS fuzz tests: what the KMS JSON face can hand the library after
``json.loads`` (None, bools, ints of any size, floats incl. nan/inf, strings with lone
surrogates and NULs, lists, objects, nested), plus bytes and a caller-given set of near-valid
values so that validation deeper than the type checks is reached.

Hypothesis draws one integer per case and ``value(seed)`` builds the value from it with a
seeded ``random.Random``: the cases stay deterministic and reproducible (hypothesis prints the
falsifying value), and drawing costs what drawing an integer costs, so 10,000 cases stay well
inside the time budget on a loaded machine (composite hypothesis strategies cost 3-5x more).
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = ["FUZZ", "SEEDS", "jsonish", "text", "value"]

# database=None: derandomized runs are the same every time; nothing is replayed from or
# written to a .hypothesis directory.
FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
SEEDS = st.integers(min_value=0, max_value=2**64 - 1)

_CHARS = ("a", "A", "z", "0", "9", ":", "/", "-", "_", "*", " ", "\x00", "\n", "\"", "\\",
          "\u00e9", "\u0130", "\u212a", "\ud800", "\udfff", "\U0001f600", "\uffff", "%")
_INTS = (0, 1, -1, 7, 30, 1000, 1024, 4096, 2**31, 2**32, 2**63, -(2**63), 10**30)
_FLOATS = (0.0, -0.0, 1.5, float("nan"), float("inf"), float("-inf"), 1e308)


def text(rng: random.Random) -> str:
    n = rng.choice((0, 1, 2, 5, 10, 36, 64, 300)) if rng.random() < 0.9 else \
        rng.choice((1025, 8193))
    if n > 64:
        return rng.choice(_CHARS) * n
    return "".join(rng.choice(_CHARS) for _ in range(n))


def jsonish(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(_INTS) if rng.random() < 0.7 else rng.randint(-(2**70), 2**70)
    if kind == 3:
        return rng.choice(_FLOATS)
    if kind in (4, 5):
        return text(rng)
    if kind == 6:
        return rng.randbytes(rng.choice((0, 1, 16, 64)))
    if kind == 7:
        return [jsonish(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {text(rng): jsonish(rng, depth + 1) for _ in range(rng.randrange(4))}


def value(seed: int, near: Sequence[Any] = ()) -> Any:
    """A JSON-ish value; with ``near``, half the time one of those (near-valid) values."""
    rng = random.Random(seed)
    if near and rng.random() < 0.5:
        return rng.choice(near)
    return jsonish(rng)
