"""The acknowledgement benchmark runs at the smallest scale and prints consistent figures."""

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
@pytest.mark.parametrize("platform", ["slack", "discord"])
def test_the_benchmark_times_every_command_and_click_it_sent(platform: str) -> None:
    command = [sys.executable, "-m", "bench.ack_latency", "--platform", platform]
    command += ["--interviews", "2", "--idle", "1", "--seconds", "1", "--rate", "6"]
    command += ["--reply-tokens", "40"]
    command += ["--postgres", PG_URL] if PG_URL else ["--sqlite"]
    out = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.startswith("== Acknowledgement latency") and "machine: " in out, out
    assert f"{platform}: opened 2 interviews" in out, out
    counts = {
        kind: int(n)
        for kind, n in re.findall(
            rf"{platform} (command|click) ack: p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms "
            r"\(n=(\d+)\)",
            out,
        )
    }
    assert counts == {"command": 3, "click": 3}, out  # 6 a second for 1 s, alternately
    (answered,) = re.findall(rf"{platform} responses: (.*), lost (\d+)", out)
    assert answered[1] == "0", out
    assert f"{platform} all acks: " in out and f"{platform} bench process loop lag: " in out
    assert re.search(rf"{platform} command: p99 [\d.]+ ms -> (met|MISSED)", out), out
