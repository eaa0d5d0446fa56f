"""Dependencies point inward: core imports no platform, storage or scheduler code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CORE = {
    "adapters",
    "bot",
    "storage",
    "scheduler",
    "slack_bolt",
    "slack_sdk",
    "discord",
    "sqlalchemy",
    "alembic",
    "aiosqlite",
    "asyncpg",
    "apscheduler",
    "aiohttp",
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted((ROOT / "core").rglob("*.py")), ids=lambda p: p.name)
def test_core_imports_nothing_outward(path: Path) -> None:
    assert imported_roots(path) & FORBIDDEN_IN_CORE == set()


@pytest.mark.parametrize("package", ["storage", "adapters"])
def test_outer_layers_do_not_import_each_other(package: str) -> None:
    other = {"storage": {"adapters", "bot"}, "adapters": {"storage"}}[package]
    for path in (ROOT / package).rglob("*.py"):
        assert imported_roots(path) & other == set(), path
