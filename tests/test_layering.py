"""The package's layering: every module imports alone (no import cycle hides behind an import order), SQL
text lives only in the store's repositories, api/ and web/ neither open SQLite nor reach into the book's
dictionaries, and nothing but the CLI imports app.py (the services type lives in services.py)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import routeway

PACKAGE = Path(routeway.__file__).parent
SQL = re.compile(r"\b(SELECT\b.+\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I | re.S)
NOT_YET: set[str] = set()  # modules allowed to break a rule for now: none


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(relative.parts).removesuffix(".__init__")
        found.append((name, path))
    return found


def in_package(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}

    def load(name: str) -> tuple[str, int, str]:
        done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=env,
                              timeout=120)
        return name, done.returncode, done.stderr[-800:]

    names = [name for name, _ in modules() if name != "routeway.__main__"]  # __main__ runs the CLI
    with ThreadPoolExecutor(2) as pool:
        failed = [result for result in pool.map(load, names) if result[1] != 0]
    assert not failed, failed


def test_sql_lives_only_in_the_store() -> None:
    offenders = []
    for _, path in modules():
        if in_package(path).startswith("store/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                offenders.append(f"{in_package(path)}:{node.lineno}: {node.value[:60]!r}")
    assert not offenders, offenders


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_module_under_api_or_web_imports_sqlite3() -> None:
    offenders = [in_package(path) for _, path in modules()
                 if in_package(path).startswith(("api/", "web/")) and "sqlite3" in imports(path)]
    assert not offenders, offenders


def test_only_the_cli_imports_app() -> None:
    """Type-checking imports count too: importing app.py for the Services type is how cycles started."""
    offenders = [in_package(path) for _, path in modules()
                 if "routeway.app" in imports(path) and in_package(path) not in {"cli.py", *NOT_YET}]
    assert not offenders, offenders


def test_api_and_web_ask_the_accounts_book_not_its_dictionaries() -> None:
    offenders = []
    for _, path in modules():
        where = in_package(path)
        if not where.startswith(("api/", "web/")) or where in NOT_YET:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "book":
                offenders.append(f"{where}:{node.lineno}")
    assert not offenders, offenders
