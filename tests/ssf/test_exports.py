"""The public exports of ``ssf`` are complete, and ssf imports nothing of ours."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import ssf

OURS = {"ingest", "detectors", "revocation", "tokenwarden", "bench", "tests"}


def test_all_is_complete_and_resolvable() -> None:
    assert sorted(ssf.__all__) == sorted(set(ssf.__all__))
    for name in ssf.__all__:
        assert hasattr(ssf, name), name
    public = {
        name
        for module in ("errors", "events", "jwks", "replay", "subject", "verify")
        for name, value in vars(getattr(ssf, module)).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "") == f"ssf.{module}"
    }
    missing = (
        public
        - set(ssf.__all__)
        - {"excerpt", "describe", "numeric_date", "audience_of", "event_map"}
    )
    assert not missing, f"not exported from ssf: {sorted(missing)}"


def test_ssf_imports_nothing_of_ours() -> None:
    for path in Path(ssf.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in OURS, f"{path.name} imports {name}"
