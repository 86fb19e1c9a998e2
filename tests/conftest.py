"""Session fixtures shared by every tier: SoftHSM2 (tests/softhsm.py)."""
from __future__ import annotations

import pytest

from tests.softhsm import SoftHSM, start_softhsm


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory) -> SoftHSM:
    return start_softhsm(tmp_path_factory.mktemp("softhsm"))
