"""The console try-out end to end: scripted sessions piped into the real CLI, and terminal
sessions (a pseudo-terminal driven by pexpect) for the prompt, history and Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from bench.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
DEMO = (ROOT / "docs" / "console-demo.txt").read_text()


def console_env(**env: str) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "DATABASE_", "DEFAULT_", "LOG_LEVEL"))
    }
    return {**clean, "PYTHONPATH": str(ROOT), **env}


async def run_console(cwd: Path, script: str, *, expect_rc: int = 0, **env: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "console",
        cwd=cwd,
        env=console_env(**env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(script.encode()), timeout=60)
    text = out.decode()
    assert proc.returncode == expect_rc, text
    return text


def token_counts(output: str) -> list[tuple[int, int]]:
    return [
        (int(used.replace(",", "")), int(budget.replace(",", "")))
        for used, budget in re.findall(r"🪙 ([\d,]+)/([\d,]+) tokens", output)
    ]


def db_rows(cwd: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(cwd / "interview-buddy.db") as db:
        return db.execute(query).fetchall()


async def test_scripted_session_warns_before_the_end_extends_and_ends_on_tokens(
    tmp_path: Path,
) -> None:
    output = await run_console(tmp_path, DEMO)
    assert "offline model" in output
    assert "Started two-sum with me: 10m, 6,000 tokens." in output
    assert output.count("🤖 ") >= 4  # several turns answered
    assert "The interviewer added +5m." in output
    assert "🏁 The token budget is used up." in output and "reason: tokens_exhausted" in output
    # the candidate is warned, and each warning comes once, before the end
    end = output.index("🏁")
    for warning in ("About 2 more messages fit", "About 1 more message fits"):
        assert output.count(warning) == 1 and output.index(warning) < end
    assert output.count("75% of the token budget is used.") <= 1
    counts = token_counts(output)
    assert counts and all(used <= budget for used, budget in counts)
    assert [used for used, _ in counts] == sorted(used for used, _ in counts)
    # after the end the console says so and how to go on
    assert "→ me's interview has ended. Start another with /interview start NAME" in output
    # the final counter shows what was left, not 0s
    assert re.search(r"⏱ ended with 1[0-4]m \d+s left", output)
    ((status, reason, used, budget, extra),) = db_rows(
        tmp_path,
        "select status, end_reason, tokens_used, token_budget, extra_time_s from interviews",
    )
    ((charged,),) = db_rows(tmp_path, "select sum(charged_tokens) from turns")
    assert (status, reason, extra) == ("ended", "tokens_exhausted", 300)
    assert used == charged <= budget == 6000
    # the report prints, and its files are written to the current folder
    ((interview_id,),) = db_rows(tmp_path, "select id from interviews")
    short = str(interview_id)[:8]
    assert "Interview report: me · Two Sum" in output
    assert "Evaluation: offline evaluation" in output and "not AI" in output
    assert (
        f"Written to {tmp_path / f'chart-{short}.png'} and {tmp_path / f'report-{short}.md'}"
        in output
    )
    assert (tmp_path / f"chart-{short}.png").read_bytes().startswith(b"\x89PNG")
    transcript = (tmp_path / f"report-{short}.md").read_text()
    ((prompts,),) = db_rows(tmp_path, "select count(*) from turns where status = 'answered'")
    assert transcript.count("**me:**") >= prompts > 0


async def test_bad_commands_get_friendly_errors_in_console_syntax(tmp_path: Path) -> None:
    output = await run_console(
        tmp_path,
        "/interview start me 45 two-sum\n/interview frobnicate\n/interview start me 10m nope\n"
        "/interview status\nhello?\n/interview start <@U123> 10m\n",
    )
    assert "❌ A budget of 45 tokens is too small" in output and "did you mean 45m" in output
    assert "❌ frobnicate is not an /interview command." in output
    assert "❌ There is no challenge nope." in output
    assert "No interviews are running." in output
    assert "No interview is running." in output
    assert "❌ Mention the candidate first." in output  # <@U123> is not a console name
    assert "`" not in output.split("Type /interview help", 1)[1]  # no chat markup anywhere
    assert db_rows(tmp_path, "select count(*) from interviews") == [(0,)]


async def test_help_and_config_speak_console(tmp_path: Path) -> None:
    output = await run_console(
        tmp_path,
        "/interview help\n/interview config channel #evals\n"
        "/interview config timezone Europe/Berlin\n",
    )
    assert "• /interview start NAME [45m|1h|1h30m] [20k|15000] [challenge]" in output
    assert "/switch NAME" in output and "@candidate" not in output
    assert "config channel is a Slack/Discord setting" in output
    assert "Team time zone set to Europe/Berlin." in output
    ((settings,),) = db_rows(tmp_path, "select settings from workspaces")
    assert settings == '{"timezone": "Europe/Berlin"}'


async def test_lines_follow_the_running_interview_when_another_ends(tmp_path: Path) -> None:
    output = await run_console(
        tmp_path,
        "/interview start me 10m 5k two-sum\n/interview start bob 10m 5k lru-cache\n"
        "/interview end bob\nfirst question\n/switch bob\n/switch me\n",
    )
    assert "→ bob's interview has ended; your lines now go to me (two-sum, 9m" in output
    assert "❌ bob has no running interview. Running: me." in output
    rows = db_rows(
        tmp_path,
        "select i.candidate_id, t.content from turns t join interviews i on i.id = t.interview_id",
    )
    assert rows == [("me", "first question")]


async def test_after_a_restart_the_console_says_where_lines_go_and_closes_overdue_ones(
    tmp_path: Path,
) -> None:
    await run_console(
        tmp_path, "/interview start me 10m 5k two-sum\n/interview start bob 20m 5k lru-cache\n"
    )
    # me's interview ran out while the console was closed
    with sqlite3.connect(tmp_path / "interview-buddy.db") as db:
        db.execute(
            "update interviews set started_at = datetime(started_at, '-1 hour') "
            "where candidate_id = 'me'"
        )
    output = await run_console(tmp_path, "still there?\n")
    assert "🏁 Time is up." in output and "reason: time_up" in output
    assert output.index("🏁 Time is up.") < output.index("Still running: bob (lru-cache")
    assert "Still running: bob" in output and "me (" not in output
    assert "Your lines go to bob's interview." in output
    assert db_rows(tmp_path, "select status, end_reason from interviews order by candidate_id") == [
        ("active", None),
        ("ended", "time_up"),
    ]
    rows = db_rows(
        tmp_path,
        "select i.candidate_id, t.content from turns t join interviews i on i.id = t.interview_id",
    )
    assert rows == [("bob", "still there?")]


async def test_escape_sequences_and_control_characters_never_reach_the_model(
    tmp_path: Path,
) -> None:
    output = await run_console(
        tmp_path, "/interview start me 10m 5k two-sum\n\x1b[Ahello\x07 there\x1b[0m\n\x1b[B\n"
    )
    assert "> hello there" in output
    assert "\x1b[A" not in output and "\x07" not in output
    assert db_rows(tmp_path, "select content from turns") == [("hello there",)]


async def test_console_uses_the_real_gateway_when_a_base_url_is_set(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake:
        fake.replies.append("Use a hash map from value to index.")
        output = await run_console(
            tmp_path,
            "/interview start me 10m 5k two-sum\nHow?\n",
            OPENAI_BASE_URL=fake.base_url,
            OPENAI_API_KEY="sk-test-console",
        )
    assert "🤖 Use a hash map from value to index." in output
    assert "offline model" not in output
    (request,) = fake.requests
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert request["messages"][-1] == {"role": "user", "content": "How?"}
    assert "sk-test-console" not in output


async def test_a_local_server_needs_no_api_key(tmp_path: Path) -> None:
    """Ollama, LM Studio, vLLM: a base URL and no key must work, not crash."""
    async with FakeOpenAI() as fake:
        fake.replies.append("Local models answer too.")
        output = await run_console(
            tmp_path, "/interview start me 10m 5k two-sum\nHi\n", OPENAI_BASE_URL=fake.base_url
        )
    assert "Traceback" not in output and "Missing credentials" not in output
    assert f"No OPENAI_API_KEY set: talking to {fake.base_url} with a placeholder key" in output
    assert "🤖 Local models answer too." in output
    (headers,) = fake.request_headers
    assert headers["Authorization"] == "Bearer no-key-set"


async def test_unknown_default_challenge_is_refused_at_start(tmp_path: Path) -> None:
    output = await run_console(tmp_path, "", expect_rc=2, DEFAULT_CHALLENGE="nope")
    (line,) = output.strip().splitlines()
    assert line.startswith("invalid configuration: DEFAULT_CHALLENGE: there is no challenge 'nope'")
    assert "two-sum" in line


async def test_a_database_folder_that_does_not_exist_is_one_clear_line(tmp_path: Path) -> None:
    output = await run_console(
        tmp_path,
        "",
        expect_rc=1,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/missing/buddy.db",
    )
    (line,) = output.strip().splitlines()
    assert line.startswith(f"error: the folder {tmp_path}/missing for the SQLite database")
    assert "DATABASE_URL" in line


# ---- terminal sessions (a real pseudo-terminal) -------------------------------------------

# prompt_toolkit draws the prompt's trailing space as a cursor move
INTERVIEWER_PROMPT = "interviewer ›"
CANDIDATE_PROMPT = re.escape("[me · two-sum] candidate ›")


Spawn = Callable[..., pexpect.spawn]


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Spawn]:
    spawned: list[pexpect.spawn] = []

    def spawn(**env: str) -> pexpect.spawn:
        child = pexpect.spawn(
            sys.executable,
            ["-m", "bot", "console"],
            cwd=str(tmp_path),
            # a pty answers no cursor-position requests; a real terminal does
            env=console_env(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", **env),
            encoding="utf-8",
            timeout=20,
            dimensions=(40, 200),
        )
        spawned.append(child)
        return child

    yield spawn
    for child in spawned:
        child.close(force=True)


def test_the_prompt_shows_who_types_and_up_recalls_history(terminal: Spawn, tmp_path: Path) -> None:
    child = terminal()
    child.expect_exact(INTERVIEWER_PROMPT)
    child.sendline("/interview start me 10m 5k two-sum")
    child.expect(CANDIDATE_PROMPT)
    child.sendline("what is a hash map?")
    child.expect(r"tokens this turn")
    child.expect(CANDIDATE_PROMPT)
    child.send("\x1b[A")  # Up: the previous line comes back to be edited, not "^[[A"
    child.expect_exact("what is a hash map?")
    child.send("\x15")  # Ctrl-U clears it
    child.sendline("and a set?")
    child.expect(r"tokens this turn")
    child.expect(CANDIDATE_PROMPT)
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert db_rows(tmp_path, "select content from turns order by seq") == [
        ("what is a hash map?",),
        ("and a set?",),
    ]


def test_one_ctrl_c_at_the_prompt_ends_the_console(terminal: Spawn) -> None:
    child = terminal()
    child.expect_exact(INTERVIEWER_PROMPT)
    child.sendintr()
    child.expect_exact("Bye. Everything is saved")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


async def test_one_ctrl_c_during_a_reply_stops_it_records_it_and_ends(
    terminal: Spawn, tmp_path: Path
) -> None:
    async with FakeOpenAI(tokens_per_chunk=1, chunk_delay=0.2) as fake:
        fake.replies.append("word " * 200)
        child = terminal(OPENAI_BASE_URL=fake.base_url)
        await asyncio.to_thread(child.expect_exact, INTERVIEWER_PROMPT)
        child.sendline("/interview start me 10m 5k two-sum")
        await asyncio.to_thread(child.expect, CANDIDATE_PROMPT)
        child.sendline("talk for a long time")
        await asyncio.to_thread(child.expect_exact, "🤖 word word")
        child.sendintr()  # one Ctrl-C, mid-reply
        await asyncio.to_thread(child.expect_exact, "Interrupted. A reply in progress was stopped")
        await asyncio.to_thread(child.expect, pexpect.EOF)
        child.close()
    assert child.exitstatus == 0
    ((status, error, reply, charged, prompt),) = db_rows(
        tmp_path, "select status, error, reply, charged_tokens, prompt_tokens from turns"
    )
    assert status == "failed" and "interrupted" in str(error)
    assert str(reply).startswith("word word") and len(str(reply)) < len("word " * 200)
    assert int(str(charged)) > int(str(prompt))  # the prompt plus what arrived
    ((used,),) = db_rows(tmp_path, "select tokens_used from interviews")
    assert used == charged
