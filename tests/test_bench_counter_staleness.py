"""The counter-staleness benchmark runs at the smallest scale and prints its figure lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALLEST = [
    "--interviews", "3", "--minutes", "0.08", "--chatters", "1", "--warners", "0",
    "--short", "1", "--short-minutes", "1", "--start-every", "0.3",
    "--discord-interviews", "2", "--discord-minutes", "0.08", "--discord-start-every", "0.3",
    "--sqlite",
]  # fmt: skip


def n_of(line: str, out: str) -> list[int]:
    found = re.search(rf"^{line}.*$", out, re.MULTILINE)
    assert found, f"no line {line!r} in:\n{out}"
    return [int(n) for n in re.findall(r"\(n=(\d+)\)", found.group(0))]


@pytest.mark.slow
def test_the_benchmark_prints_its_figures_for_slack_and_discord() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.counter_staleness", *SMALLEST],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out = done.stdout
    assert out.startswith("== counter staleness against the rate-limit floor"), out
    assert "machine: " in out and "command: " in out and "settings: interviews=3" in out
    assert "setup: 3 interviews started" in out and "counters: 3 running after setup" in out
    interval, floor = n_of("counter update interval", out)
    assert interval == floor == n_of("interval / floor", out)[0]
    assert re.search(r"^429s: \d+ \(\d+ in setup\)", out, re.MULTILINE), out
    assert re.search(r"^warnings: \d+ time, \d+ token; due -> notice", out, re.MULTILINE), out
    replies = re.search(r"^replies: (\d+) of (\d+) candidate messages", out, re.MULTILINE)
    assert replies and replies.group(1) == replies.group(2) != "0", out  # each one answered
    for method in ("chat.startStream", "chat.appendStream", "chat.stopStream"):
        assert f"{method} a minute: p50" in out, out
    assert "setup: 2 interviews started" in out, out
    assert re.search(r"^counter edits after setup: \d+", out, re.MULTILINE), out
    assert n_of("reply final edit -> counter edit", out)
    assert len(re.findall(r"^429s: ", out, re.MULTILINE)) == 2, out
