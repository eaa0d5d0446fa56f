"""The turn-overhead benchmark runs at the smallest scale and prints its figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_benchmark_prints_every_figure_for_every_turn() -> None:
    command = ["-m", "bench.turn_overhead", "--interviews", "1", "--turns", "2", "--sqlite"]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out = done.stdout
    assert out.startswith("== bot overhead per turn"), out
    assert "machine: " in out and "settings: interviews=1, turns=2" in out
    for platform in ("slack", "discord"):
        for figure in (
            "event -> model request",
            "model last byte -> final update",
            "event -> first words at the platform",
            "model TTFT",
            "first words / model TTFT",
            "platform calls per reply",
        ):
            assert re.search(rf"{platform}: {figure}: p50 .*\(n=2\)", out), (figure, out)
