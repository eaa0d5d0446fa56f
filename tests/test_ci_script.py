"""`.ci/postgres.sh` changes the machine (packages, pg_hba.conf, the cluster) only when CI=true
or PostgreSQL is not installed: run against stub commands that record what they were asked."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("bash", "cat", "grep", "mv", "ls", "head", "seq", "sleep", "touch")
HBA = "local all postgres peer\n"


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f'#!/bin/bash\necho {name} "$@" >> "$STUB_LOG"\n{body}\n')
    path.chmod(0o755)


def run_script(
    tmp_path: Path, *, installed: bool, running: bool, ci: bool, hba: str = HBA
) -> tuple[int, str, list[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    up = tmp_path / "up"
    if running:
        up.touch()
    if installed:
        stub(bin_dir, "pg_isready", f'[ -e "{up}" ]')
        stub(bin_dir, "pg_ctlcluster", f'touch "{up}"')
    stub(bin_dir, "apt-get", "")
    stub(bin_dir, "psql", "echo 1")
    conf = tmp_path / "etc" / "15" / "main"
    conf.mkdir(parents=True)
    (conf / "pg_hba.conf").write_text(hba)
    log = tmp_path / "calls.log"
    log.touch()
    env = {
        "PATH": str(bin_dir),
        "STUB_LOG": str(log),
        "PG_CONF_DIR": str(tmp_path / "etc"),
        "PG_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        "PG_WAIT_S": "1",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    if ci:
        env["CI"] = "true"
    result = subprocess.run(
        [
            str(bin_dir / "bash"),
            "-c",
            'set -euo pipefail; . .ci/postgres.sh; echo "URL=$TEST_DATABASE_URL"',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    return (
        result.returncode,
        result.stdout + result.stderr,
        calls,
        (conf / "pg_hba.conf").read_text(),
    )


def test_a_running_postgresql_is_used_and_nothing_is_changed(tmp_path: Path) -> None:
    code, output, calls, hba = run_script(tmp_path, installed=True, running=True, ci=False)
    assert code == 0 and "URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test" in output
    assert "apt-get" not in calls and "pg_ctlcluster" not in calls
    assert hba == HBA


def test_outside_ci_a_stopped_postgresql_is_reported_not_started(tmp_path: Path) -> None:
    code, output, calls, hba = run_script(tmp_path, installed=True, running=False, ci=False)
    assert code == 1 and "installed but not running" in output and "CI=true" in output
    assert "apt-get" not in calls and "pg_ctlcluster" not in calls
    assert hba == HBA


def test_in_ci_the_cluster_is_configured_and_started(tmp_path: Path) -> None:
    code, output, calls, hba = run_script(tmp_path, installed=True, running=False, ci=True)
    assert code == 0, output
    assert "pg_ctlcluster" in calls and "apt-get" not in calls
    assert "host all all 127.0.0.1/32 trust # interview-buddy-ci" in hba and hba.endswith(HBA)


def test_in_ci_a_configured_running_cluster_is_left_as_it_is(tmp_path: Path) -> None:
    """The second CI run on a machine: the trust lines are there already."""
    configured = "host all all 127.0.0.1/32 trust # interview-buddy-ci\n" + HBA
    code, output, calls, hba = run_script(
        tmp_path, installed=True, running=True, ci=True, hba=configured
    )
    assert code == 0, output
    assert hba == configured and "pg_ctlcluster" not in calls


@pytest.mark.parametrize("ci", [False, True])
def test_a_missing_postgresql_is_installed(tmp_path: Path, ci: bool) -> None:
    _, _, calls, _ = run_script(tmp_path, installed=False, running=False, ci=ci)
    assert calls[:2] == ["apt-get", "apt-get"]  # update, install
