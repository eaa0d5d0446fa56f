"""The two-replica benchmark runs at the smallest scale: figures printed, nothing doubled."""

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
def test_two_replicas_behind_the_proxy_answer_each_message_once() -> None:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set; two replicas share PostgreSQL")
    command = [sys.executable, "-m", "bench.two_replicas", "--postgres", PG_URL]
    command += ["--interviews", "2", "--clients", "2", "--seconds", "1", "--reply-tokens", "40"]
    command += ["--no-reminders", "--replicas", "2"]
    out = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.startswith("== Two replicas") and "machine: " in out, out
    (line,) = re.findall(r"2 replica\(s\) via (.+?): ([\d.]+) commands acknowledged/s", out)
    assert line[0].startswith(("nginx", "bench/proxy.py")) and float(line[1]) > 0, out
    assert re.search(r"ack latency p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms \(n=\d+\)", out)
    assert (
        "2 replica(s): doubled model calls 0, threads with a doubled reply 0, "
        "threads with a missing reply 0" in out
    ), out
