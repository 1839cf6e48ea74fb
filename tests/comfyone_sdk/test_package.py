"""Package shape: sorted public names, typed marker, docstrings, and no Django on import."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import comfyone_sdk

PACKAGE = Path(comfyone_sdk.__file__).parent


def test_all_is_sorted_and_importable() -> None:
    assert comfyone_sdk.__all__ == sorted(comfyone_sdk.__all__)
    assert len(set(comfyone_sdk.__all__)) == len(comfyone_sdk.__all__)
    for name in comfyone_sdk.__all__:
        assert hasattr(comfyone_sdk, name), name


def test_py_typed_marker_is_shipped() -> None:
    assert (PACKAGE / "py.typed").is_file()


def test_every_module_starts_with_a_docstring() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree)
        assert doc, f"{path.name} has no module docstring"
        importlib.import_module(f"comfyone_sdk.{path.stem}")


def test_every_public_function_is_annotated() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args.args + node.args.kwonlyargs
                missing = [
                    a.arg for a in args if a.annotation is None and a.arg not in ("self", "cls")
                ]
                assert not missing, f"{path.name}:{node.lineno} {node.name} lacks {missing}"
                assert node.returns is not None, f"{path.name}:{node.lineno} {node.name}"


def test_import_does_not_pull_in_django() -> None:
    code = (
        "import json, sys, comfyone_sdk, comfyone_sdk.cli; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'rest_framework', 'channels', 'scheduler'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == []
