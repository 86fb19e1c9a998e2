"""Import rules of STYLE.md for kms/: only kms/crypto imports cryptography; no gateway or aiohttp;
kms/audit imports nothing else from kms."""
from __future__ import annotations

import ast
from pathlib import Path

KMS = Path(__file__).parents[2] / "kms"


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_import_rules():
    files = list(KMS.rglob("*.py"))
    assert files
    for path in files:
        rel = path.relative_to(KMS).as_posix()
        mods = _imports(path)
        tops = {m.split(".")[0] for m in mods}
        assert not tops & {"gateway", "aiohttp", "storage"}, rel
        if not rel.startswith("crypto/"):
            assert "cryptography" not in tops, rel
        if rel.startswith("audit/"):
            assert all(m.startswith("kms.audit") for m in mods if m.split(".")[0] == "kms"), rel
