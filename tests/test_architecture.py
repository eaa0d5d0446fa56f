"""Dependencies point inward: core imports no platform, storage, scheduler, LLM or metrics
code; the outer layers don't import each other; only the composition root (bot/) sees all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "adapters", "storage", "scheduler", "bot")
FORBIDDEN_IN_CORE = {
    "adapters",
    "bot",
    "storage",
    "scheduler",
    "tests",
    "bench",
    "slack_bolt",
    "slack_sdk",
    "discord",
    "sqlalchemy",
    "alembic",
    "aiosqlite",
    "asyncpg",
    "apscheduler",
    "aiohttp",
    "openai",
    "httpx",
    "httpx2",
    "prometheus_client",
    "prompt_toolkit",
}
# What each outer layer must not import (it reaches the others only through core's ports).
FORBIDDEN_OUTSIDE = {
    "adapters": {"storage", "scheduler", "bot", "tests", "bench", "sqlalchemy", "apscheduler"},
    "storage": {"adapters", "scheduler", "bot", "tests", "bench"},
    "scheduler": {"adapters", "storage", "bot", "tests", "bench", "sqlalchemy"},
    "bot": {"tests", "bench"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", sources("core"), ids=lambda p: p.name)
def test_core_imports_nothing_outward(path: Path) -> None:
    assert imported_roots(path) & FORBIDDEN_IN_CORE == set()


@pytest.mark.parametrize("package", sorted(FORBIDDEN_OUTSIDE))
def test_outer_layers_do_not_import_each_other(package: str) -> None:
    for path in sources(package):
        assert imported_roots(path) & FORBIDDEN_OUTSIDE[package] == set(), path


def test_apscheduler_lives_in_scheduler_only() -> None:
    for package in LAYERS:
        if package == "scheduler":
            continue
        for path in sources(package):
            assert "apscheduler" not in imported_roots(path), path


def test_every_layer_is_checked() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages - {"tests", "bench"} == set(LAYERS)


def test_benchmarks_do_not_import_the_test_suite() -> None:
    """``bench/`` (scripts and the shared fakes) stands on its own: tests import it, not back."""
    paths = sorted((ROOT / "bench").rglob("*.py"))
    assert paths
    for path in paths:
        assert "tests" not in imported_roots(path), path
