"""Code shape: no function in python_analysis/ is longer than 60 lines unless its docstring says why.

The reason is a docstring sentence starting with "Long:" (ruff's C901 bounds the branching separately).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "python_analysis"
MAX_LINES = 60


def long_functions_without_a_reason(root: Path = PACKAGE, limit: int = MAX_LINES) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit and "Long:" not in (ast.get_docstring(node) or ""):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_long_functions_give_a_reason():
    assert long_functions_without_a_reason() == []


def test_the_shape_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    (tmp_path / "m.py").write_text(f"def f():\n    '''No reason.'''\n{body}\n\n\ndef g():\n    '''Long: a table.'''\n{body}\n")
    assert long_functions_without_a_reason(tmp_path) == [f"{tmp_path.name}/m.py:1 f (72 lines)"]
