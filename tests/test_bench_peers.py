"""The peers benchmark runs at the smallest scale: every policy answers every message once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_each_policy_streams_each_reply_once_and_prints_its_row() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.peers", "--levels", "1", "2", "--pause", "0", "--sqlite"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    out = done.stdout
    assert out.startswith("== reply streaming: ours vs llmcord"), out
    for platform, peer in (("slack", "ChatGPT-in-Slack"), ("discord", "llmcord")):
        for policy in ("ours", peer):
            for n in (1, 2):
                row = rf"{platform} {re.escape(policy)} +N={n} +429s \d+ +calls/reply .*\(n={n}\)"
                assert re.search(row, out), (row, out)
    # every reply showed words and its final text (none lost, none counted twice)
    assert len(re.findall(r"first visible words: p50 [\d.]+ ms.*\(n=(\d)\)", out)) == 8, out
    finals = re.findall(r"final-text latency: .*\(n=(\d)\), never (\d+)", out)
    assert [int(n) for n, _ in finals] == [1, 1, 2, 2] * 2 and {never for _, never in finals} == {
        "0"
    }, out
