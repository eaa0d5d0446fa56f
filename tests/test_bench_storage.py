"""The storage benchmark runs at the smallest scale and prints consistent figures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_benchmark_prints_every_figure_and_a_constant_statement_count(backend: str) -> None:
    if backend == "postgres" and not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    command = [sys.executable, "-m", "bench.storage", "--only", backend]
    command += ["--interviews", "2", "--repeat", "2", "--histories", "2,30"]
    if PG_URL:
        command += ["--postgres", PG_URL]
    out = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.startswith("== storage: ") and "machine: " in out and "settings: " in out, out
    counts = {
        int(history): (p50, p99, top)
        for history, p50, p99, top in re.findall(
            rf"{backend} statements per candidate turn at (\d+) earlier turns: "
            r"p50 (\d+), p99 (\d+), max (\d+) \(n=2\)",
            out,
        )
    }
    assert set(counts) == {2, 30}, out
    assert counts[2] == counts[30] and len(set(counts[2])) == 1, counts  # a constant
    for history in (2, 30):
        assert re.search(rf"{backend} whole candidate turn .* at {history}: p50 .*\(n=2\)", out)
        assert re.search(rf"{backend} candidate message -> model call .* at {history}: p50 ", out)
        assert re.search(rf"{backend} CPU of the whole candidate turn at {history}: p50 ", out)
        assert re.search(rf"{backend} interview load at {history} turns: p50 .*\(n=4\)", out)
        for unit in ("pending", "streaming", "answered", "sum"):
            line = rf"{backend} turn write \({unit}\) at {history}\+ turns: p50 .*\(n=4\)"
            assert re.search(line, out), (unit, out)
