"""The token-counting benchmark runs at the smallest scale and prints its figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_benchmark_prints_its_header_and_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.token_counting", "--rounds", "3", "--texts", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    out = done.stdout
    assert out.startswith("== offline token counting"), out
    assert "machine: " in out and "command: " in out and "settings: rounds=3" in out
    assert re.search(r"corpus: 10 texts, [\d,]+ tokens \(o200k_base\); 3 rounds", out), out
    for side in ("offline counter", "tiktoken direct"):
        assert re.search(rf"round time, {side}: p50 .* \(n=3\)", out), out
    ratio = r"throughput offline / tiktoken direct: p50 [\d.]+, .*\(n=3\), min [\d.]+"
    assert re.search(ratio, out), out
