"""Requests that are not what they claim (issue 11): forged or stale Slack signatures on
commands, events and interactivity get 401 and change nothing; Discord interactions addressed
to another application are ignored (no answer, no change).

Both through the real clients (slack-bolt behind the bot's HTTP endpoint, discord.py on the
fake gateway). Each forgery is followed by the very same request made properly, which does
act: the forged bodies were valid, only their credentials were not.

Elsewhere: Socket Mode refuses every HTTP request whatever its signature
(tests/test_slack_modes.py::test_socket_mode_refuses_slack_requests_over_http); a request of
another Slack workspace (another ``team_id``) is in the authorization matrix
(tests/test_authorization_matrix.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from adapters.discord import views
from adapters.slack import blocks
from bench.fakes.slack_signing import (
    FORM,
    JSON,
    block_action_body,
    event_body,
    message_event,
    signed_headers,
    slash_command_body,
    view_submission_body,
)
from bot.settings import Settings
from core.clock import ManualClock
from core.models import Status
from tests.test_discord import DiscordWorld, discord_world
from tests.test_discord import open_interview as open_discord_interview
from tests.test_slack import CANDIDATE, INTERVIEWER, SECRET, SlackWorld, slack_world
from tests.test_slack import open_interview as open_slack_interview

# The state a refused request must leave alone (rate_limits and leases are bookkeeping).
STATE_TABLES = (
    "workspaces",
    "interviews",
    "turns",
    "audit_events",
    "challenges",
    "jobs",
    "programs",
    "occurrences",
    "reports",
)


def db_state(settings: Settings) -> dict[str, list[str]]:
    """Every row of the bot's tables (its SQLite file, read-only)."""
    path = make_url(settings.database_url).database
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {
            table: sorted(repr(row) for row in conn.execute(f"SELECT * FROM {table}"))
            for table in STATE_TABLES
        }


def slack_state(world: SlackWorld) -> dict[str, Any]:
    """What Slack shows: every message (text, blocks, edits), ephemerals, modals, files."""
    slack = world.slack
    return {
        "messages": {
            f"{channel}:{ts}": json.dumps([m.text, m.blocks, m.edited_ts, m.chunks], default=str)
            for (channel, ts), m in slack.messages.items()
        },
        "ephemerals": len(slack.ephemerals),
        "views": len(slack.views),
        "files": len(slack.files),
        "responses": {k: list(v) for k, v in slack.responses.items()},
    }


def manual_world_clock() -> ManualClock:
    """Nothing falls due by itself while a test runs (the scheduler wakes on real time)."""
    return ManualClock(datetime.now(UTC))


# ---------------------------------------------------------------------------- Slack


def forgeries(body: str) -> dict[str, dict[str, str]]:
    """The same body with credentials Slack would never send."""
    content_type = JSON if body.startswith("{") else FORM
    now = int(time.time())
    good = signed_headers(SECRET, body)
    return {
        "unsigned": {"Content-Type": content_type},
        "wrong secret": signed_headers("not-the-signing-secret", body),
        "empty secret": signed_headers("", body),
        "stale (6 minutes old)": signed_headers(SECRET, body, timestamp=now - 360),
        "from the future (6 minutes ahead)": signed_headers(SECRET, body, timestamp=now + 360),
        "signature of another body": {
            **good,
            "X-Slack-Signature": signed_headers(SECRET, body + " ")["X-Slack-Signature"],
        },
        "no timestamp": {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
        "signature without v0=": {
            **good,
            "X-Slack-Signature": good["X-Slack-Signature"].removeprefix("v0="),
        },
    }


async def post(world: SlackWorld, body: str, headers: dict[str, str]) -> int:
    async with world.http.post(world.url, data=body, headers=headers) as response:
        return response.status


KINDS = ("command", "event", "block_actions", "view_submission")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_forged_or_stale_slack_request_gets_401_and_changes_nothing(
    tmp_path: Path, kind: str
) -> None:
    async with slack_world(tmp_path, clock=manual_world_clock(), job_sweep_s=300) as world:
        channel, root_ts, interview_id = await open_slack_interview(world)
        await world.settle()
        response_url = world.slack.new_response_url()
        body, acted = request_for(kind, world, channel, root_ts, interview_id, response_url)
        db_before, slack_before = db_state(world.runtime.settings), slack_state(world)
        calls_before = len(world.slack.calls)
        for name, headers in forgeries(body).items():
            assert await post(world, body, headers) == 401, name
        await world.settle()
        assert db_state(world.runtime.settings) == db_before
        assert slack_state(world) == slack_before
        assert world.slack.calls[calls_before:] == []  # not even a lookup
        assert world.openai.requests == []
        # the same request, signed as Slack signs it, acts: only the credentials were wrong
        assert await post(world, body, signed_headers(SECRET, body)) == 200
        await world.settle()
        await acted()


def request_for(
    kind: str,
    world: SlackWorld,
    channel: str,
    root_ts: str,
    interview_id: str,
    response_url: str,
) -> tuple[str, Callable[[], Any]]:
    """A request of ``kind`` that changes something when it is genuine, and the check."""

    async def interview_is(status: Status) -> None:
        assert (await world.interview(interview_id)).status is status

    if kind == "command":
        body = slash_command_body(
            text=f"end <@{CANDIDATE}|alice>", user_id=INTERVIEWER, response_url=response_url
        )
        return body, lambda: interview_is(Status.ENDED)
    if kind == "event":
        event = message_event(channel, CANDIDATE, "hello?", "1700004000.000001", thread_ts=root_ts)

        async def answered() -> None:
            await world.eventually(lambda: _answered(world, interview_id))
            assert len(world.openai.requests) == 1

        return event_body(event), answered
    if kind == "block_actions":
        body = block_action_body(
            blocks.action_id("pause"), interview_id, user_id=INTERVIEWER, response_url=response_url
        )
        return body, lambda: interview_is(Status.PAUSED)
    state = {
        "candidate": {"value": {"type": "users_select", "selected_user": "UOTHER01"}},
        "duration": {"value": {"type": "plain_text_input", "value": "30m"}},
        "tokens": {"value": {"type": "plain_text_input", "value": "20k"}},
        "challenge": {"value": {"type": "static_select", "selected_option": {"value": "two-sum"}}},
    }

    async def started() -> None:
        await world.settle()
        assert len(await world.service.queries.open_interviews()) == 2

    return view_submission_body(blocks.START_MODAL, state, user_id=INTERVIEWER), started


async def _answered(world: SlackWorld, interview_id: str) -> bool:
    turns = await world.turns(interview_id)
    return bool(turns) and turns[0].status.value == "answered"


# ---------------------------------------------------------------------------- Discord


def discord_state(world: DiscordWorld) -> dict[str, Any]:
    """Every message (content, embeds, components, edits) and every interaction answer."""
    return {
        "messages": {
            m.id: json.dumps([m.content, m.embeds, m.components, m.edit_count, m.deleted])
            for m in world.discord.messages.values()
        },
        "threads": json.dumps(world.discord.threads, default=str),
    }


async def as_application(world: DiscordWorld, application_id: int, send: Any) -> int:
    """Dispatch an interaction as if it were addressed to ``application_id``."""
    fake = world.discord
    own = fake.application_id
    fake.application_id = application_id
    try:
        iid: int = await send()
    finally:
        fake.application_id = own
    return iid


async def test_discord_interactions_for_another_application_are_ignored(tmp_path: Path) -> None:
    async with discord_world(tmp_path, clock=manual_world_clock()) as world:
        interview = await open_discord_interview(world)
        await world.settle()
        fake, ids = world.discord, world.ids
        other_app = fake.application_id + 1
        thread = int(interview.platform_data["thread"])
        counter = int(interview.platform_data["counter_message"])

        def pause_command() -> Any:
            return fake.send_slash_command(
                ids.guild_id,
                ids.channel_id,
                world.interviewer,
                subcommand="pause",
                options={"candidate": world.candidate},
            )

        def end_click() -> Any:
            return fake.send_component_click(
                views.END, counter, thread, world.interviewer, ids.guild_id
            )

        def autocomplete() -> Any:
            return fake.send_autocomplete(
                ids.guild_id,
                ids.channel_id,
                world.interviewer,
                "interview",
                "start",
                {"candidate": world.candidate, "challenge": "two"},
                "challenge",
            )

        db_before, shown_before = db_state(world.settings), discord_state(world)
        foreign = [
            await as_application(world, other_app, send)
            for send in (pause_command, end_click, autocomplete)
        ]
        await world.settle()
        await world.settle()
        for iid in foreign:
            assert fake.interaction_responses.get(iid) is None  # not even acknowledged
        assert db_state(world.settings) == db_before
        assert discord_state(world) == shown_before
        assert (await world.stored(interview)).status is Status.ACTIVE

        # the same interactions for this application act
        for send in (autocomplete, pause_command):
            iid = await send()
            await fake.wait_interaction_response(iid, timeout=5)
        await world.settle()
        assert (await world.stored(interview)).status is Status.PAUSED
        await fake.wait_interaction_response(await end_click(), timeout=5)
        await world.settle()
        assert (await world.stored(interview)).status is Status.ENDED
