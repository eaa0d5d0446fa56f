"""Smoke run of bench/capacity.py at the smallest scale: it prints its figures, and its counts
agree (every level started its interviews, turns were answered, none lost)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.capacity import quantile, window_lag

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_the_bench_prints_the_curve_at_the_smallest_scale() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.capacity", "--levels", "2,4", "--window", "4", "--sqlite"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert out.startswith("== capacity of one process")
    assert "machine: " in out and "idle (connected, no interview): RSS" in out
    for level in (2, 4):
        assert f"-- {level} interviews: started in" in out
        assert re.search(rf"^\s+{level} \|\s+1 \|", out, re.M), out  # the curve's row
    answered = [int(n) for n in re.findall(r"turns answered (\d+), lost (\d+)", out)[0]]
    assert re.findall(r"lost (\d+)", out) == ["0", "0"]
    assert answered[0] >= 1
    assert "loop lag: p50" in out and "RSS: p50" in out
    # the bot froze what start-up built, and times its full collections
    frozen = [int(n) for n in re.findall(r"(\d+) objects frozen at start-up", out)]
    assert len(frozen) == 2 and min(frozen) > 10_000, out
    assert re.search(r"full garbage collections: p50 .*\(n=\d+\)", out), out
    shares = re.findall(r"time in garbage collection: ([\d.]+)% of the window", out)
    assert len(shares) == 2 and all(0 <= float(x) < 100 for x in shares), out


def test_quantiles_come_from_the_bucket_deltas() -> None:
    lag = "interview_buddy_event_loop_lag_seconds_bucket"
    before = {f'{lag}{{le="0.01"}}': 10.0, f'{lag}{{le="0.05"}}': 10.0, f'{lag}{{le="+Inf"}}': 10.0}
    after = {
        f'{lag}{{le="0.01"}}': 108.0,
        f'{lag}{{le="0.05"}}': 110.0,
        f'{lag}{{le="+Inf"}}': 110.0,
    }
    lags, bucket = window_lag(before, after)
    assert lags.n == 100
    assert lags.p50 == pytest.approx(0.01 * 50 / 98)
    assert bucket == "(10, 50] ms" and 0.01 < lags.p99 <= 0.05
    assert lags.max == 0.05
    assert quantile([], 0.5)[1] == "-"
