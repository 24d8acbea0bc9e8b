"""The shape of the code: imports point one way, pieces stay small, every setting is documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from rag.settings import Settings
from tests.conftest import ROOT

MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400
# Functions allowed to be longer, each with the reason (the closing note lists them too).
LONG_FUNCTIONS: dict[str, str] = {}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_library_never_imports_the_web_app():
    """rag/ is the library, ui/ the web app that uses it; only the CLI (the composition root)
    reaches into ui/."""
    wrong = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] == "ui")
        for path in _modules("rag")
        if path.name != "cli.py"
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_the_web_app_does_not_import_the_cli():
    wrong = [str(p) for p in _modules("ui") if "rag.cli" in _imports(p)]
    assert wrong == []


def _long_functions() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in [*_modules("rag"), *_modules("ui")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found[f"{path.relative_to(ROOT)}:{node.name}"] = length
    return found


def test_functions_and_files_stay_small():
    too_long = {k: v for k, v in _long_functions().items() if k not in LONG_FUNCTIONS}
    assert too_long == {}, f"split these, or list them in LONG_FUNCTIONS with a reason: {too_long}"
    big = {
        str(p.relative_to(ROOT)): n
        for p in [*_modules("rag"), *_modules("ui")]
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    }
    assert big == {}


def test_every_setting_is_in_env_example():
    listed = set(re.findall(r"^#?\s*RAG_([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - listed == set(), "add these to .env.example"
    assert listed - fields == set(), "these are not settings any more"


@pytest.mark.parametrize("package", ["rag", "ui"])
def test_public_functions_have_docstrings(package):
    missing = []
    for path in _modules(package):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            public = isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name[0] != "_"
            if public and ast.get_docstring(node) is None:
                missing.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert missing == []
