"""The Slack adapter's Bolt wiring: one middleware says who is asking, plain listeners do
the rest; the counter's buttons come from the engine's controls."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest

from adapters.slack import blocks
from bench.fakes.slack_signing import (
    block_action_body,
    event_body,
    message_event,
    slash_command_body,
)
from core.counter import CounterView
from core.lifecycle import controls
from core.models import Status, Workspace
from core.service import EngineConfig
from tests.test_slack import (
    CANDIDATE,
    HANG_GUARD_S,
    INTERVIEWER,
    STRANGER,
    SlackWorld,
    counter_view,
    open_interview,
)
from tests.test_slack import world as world  # the fixture

ROOT = Path(__file__).resolve().parents[1]


def users_info_calls(world: SlackWorld, user: str) -> int:
    return sum(1 for c in world.slack.calls_to("users.info") if c.params.get("user") == user)


# ---------------------------------------------------------------- structure


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at run time or under TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_listeners_do_not_import_the_runner() -> None:
    assert "adapters.slack.runner" not in imported_modules(ROOT / "adapters/slack/listeners.py")
    for module in ("listeners", "people", "platform", "outbox", "limiter", "blocks"):
        assert "adapters.slack.runner" not in imported_modules(
            ROOT / f"adapters/slack/{module}.py"
        ), module


# ---------------------------------------------------------------- buttons


def buttons(view: CounterView, config: EngineConfig) -> dict[str, str]:
    rendered = blocks.control_blocks(view, controls(config))
    (actions,) = [b for b in rendered if b["type"] == "actions"]
    return {e["action_id"]: e["text"]["text"] for e in actions["elements"]}


def test_buttons_are_the_engines_controls_with_their_amounts() -> None:
    config = EngineConfig(extend_time_s=15 * 60, extend_tokens=10_000)
    assert buttons(counter_view(Status.ACTIVE, 600), config) == {
        # the ids of messages posted long ago still work
        "ib_extend_time": "+15 min",
        "ib_extend_tokens": "+10k tokens",
        "ib_pause": "⏸ Pause",
        "ib_end": "End",
    }
    paused = buttons(counter_view(Status.PAUSED, 600), EngineConfig())
    assert paused == {
        "ib_extend_time": "+10 min",
        "ib_extend_tokens": "+5k tokens",
        "ib_resume": "▶️ Resume",
        "ib_end": "End",
    }
    assert blocks.control_blocks(counter_view(Status.ENDED, 600), controls(config)) == []
    assert [blocks.control_name(blocks.action_id(c.name)) for c in controls(config)] == [
        c.name for c in controls(config)
    ]


async def test_an_unknown_button_changes_nothing(world: SlackWorld) -> None:
    _, _, interview_id = await open_interview(world)
    before = await world.interview(interview_id)
    (refusal,) = await world.click("ib_self_destruct", interview_id, INTERVIEWER)
    assert refusal["text"] == "❌ Unknown button."
    after = await world.interview(interview_id)
    assert (after.status, after.extra_time_s, after.version) == (
        before.status,
        before.extra_time_s,
        before.version,
    )


# ---------------------------------------------------------------- the middleware


async def test_who_is_asking_is_resolved_once_per_request_and_cached(world: SlackWorld) -> None:
    _, _, interview_id = await open_interview(world)
    # STRANGER is no interviewer: users.info tells, once; the answer is cached.
    for control in ("pause", "extend_time", "end"):
        (refusal,) = await world.click(blocks.action_id(control), interview_id, STRANGER)
        assert refusal["text"].startswith("❌")
    (refusal,) = await world.command("status", user=STRANGER)
    assert refusal["text"].startswith("❌ Only interviewers")
    assert users_info_calls(world, STRANGER) == 1
    # SLACK_INTERVIEWERS needs no lookup at all
    assert users_info_calls(world, INTERVIEWER) == 0


async def test_events_pass_the_middleware_without_lookups(world: SlackWorld) -> None:
    channel, root_ts, _ = await open_interview(world)
    status, _ = await world.send(
        event_body(message_event(channel, STRANGER, "hi", "1700000800.000100", thread_ts=root_ts))
    )
    assert status == 200
    await world.settle()
    assert users_info_calls(world, STRANGER) == 0
    assert world.openai.requests == []  # not the candidate: not sent to the model


async def test_a_configured_interviewer_is_one_without_a_lookup(world: SlackWorld) -> None:
    await world.command(f"config interviewers <@{STRANGER}|sam>")
    (started,) = await world.command(f"start <@{CANDIDATE}|alice> 30m", user=STRANGER)
    assert started["text"].startswith("Started")
    assert users_info_calls(world, STRANGER) == 0


async def test_a_slow_users_info_does_not_hold_up_the_answer(world: SlackWorld) -> None:
    world.slack.hold("users.info")
    # An admin, but Slack doesn't say in time: treated as no interviewer this once.
    sent = asyncio.create_task(world.command("status", user="UADMIN01"))
    (refusal,) = await asyncio.wait_for(sent, HANG_GUARD_S)
    assert refusal["text"].startswith("❌ Only interviewers")
    world.slack.release("users.info")
    # ...and not remembered: the next request asks again and gets the truth.
    (status,) = await world.command("status", user="UADMIN01")
    assert status["text"] == "No interviews are running."
    assert users_info_calls(world, "UADMIN01") == 2


async def test_when_nobody_can_be_resolved_the_request_is_answered_with_an_apology(
    world: SlackWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, interview_id = await open_interview(world)

    async def unreachable(team_id: str) -> Workspace:
        raise ConnectionError("the database is gone")

    monkeypatch.setattr(world.adapter.people, "workspace", unreachable)
    body = slash_command_body(text="status", user_id=INTERVIEWER)
    status, text = await world.send(body)
    assert status == 200 and json.loads(text)["text"].startswith("Something went wrong")

    response_url = world.slack.new_response_url()
    status, _ = await world.send(
        block_action_body(
            blocks.action_id("pause"), interview_id, user_id=INTERVIEWER, response_url=response_url
        )
    )
    assert status == 200
    (apology,) = world.slack.responses[response_url.rsplit("/", 1)[1]]
    assert apology["text"].startswith("Something went wrong")
    assert (await world.interview(interview_id)).status is Status.ACTIVE
