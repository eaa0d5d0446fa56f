"""The ``/interview`` group's discord.py hooks, end to end against the fake Discord:
``interaction_check`` (defer, who is who, interviewers only, also for ``config ...``) and
``on_error`` (refusals, failures, interactions Discord no longer accepts)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from adapters.discord import views
from adapters.discord.commands import DISCORD_USAGE, FAILURE
from core.models import Status
from tests.test_discord import DiscordWorld, discord_world, open_interview


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[DiscordWorld]:
    async with discord_world(tmp_path) as built:
        yield built


def our_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """ERROR records of the adapter and of discord.py ("Ignoring exception in ...")."""
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith(("adapters.discord", "discord"))
    ]


async def test_config_commands_pass_the_groups_check_too(world: DiscordWorld) -> None:
    refused = await world.slash("config timezone", world.stranger, timezone="Europe/Berlin")
    assert refused["data"]["content"].startswith("❌ Only interviewers")
    assert refused["data"]["flags"] & 64
    role = await world.slash("config role", world.stranger, role=world.ids.admin_role_id)
    assert role["data"]["content"].startswith("❌ Only interviewers")
    assert "timezone" not in (await world.workspace()).settings
    assert "interviewer_role" not in (await world.workspace()).settings

    wrong = await world.slash("config timezone", world.interviewer, timezone="Mars/Olympus")
    assert wrong["data"]["content"] == (
        "❌ `Mars/Olympus` is not a time zone like Europe/Berlin.\n"
        f"Usage: `{DISCORD_USAGE['config']}`"
    )
    assert "timezone" not in (await world.workspace()).settings

    # Open to everyone: help and the challenge list.
    helped = await world.slash("help", world.stranger)
    assert "/interview start candidate:@user" in helped["data"]["content"]


async def test_unexpected_failures_answer_privately_and_are_logged(
    world: DiscordWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def broken_status(*args: Any) -> Any:
        raise RuntimeError("the status query broke")

    monkeypatch.setattr(world.service.queries, "status", broken_status)
    reply = await world.slash("status", world.interviewer)
    assert reply["data"]["content"] == FAILURE and reply["data"]["flags"] & 64
    (logged,) = our_errors(caplog)
    assert logged.name == "adapters.discord.commands"
    assert logged.getMessage() == "/interview status failed"
    assert logged.exc_info is not None and "status query broke" in str(logged.exc_info[1])

    # In the check itself: discord.py catches only AppCommandErrors there, so a plain
    # exception would escape it unanswered; the check wraps it.
    caplog.clear()

    async def broken_workspace(*args: Any) -> Any:
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(world.service.queries, "workspace", broken_workspace)
    reply = await world.slash("challenges", world.stranger)
    assert reply["data"]["content"] == FAILURE
    (logged,) = our_errors(caplog)
    assert logged.getMessage() == "/interview challenges failed"
    assert logged.exc_info is not None and "database is gone" in str(logged.exc_info[1])


async def test_an_interaction_discord_no_longer_accepts_changes_and_says_nothing(
    world: DiscordWorld, caplog: pytest.LogCaptureFixture
) -> None:
    interview = await open_interview(world)
    caplog.set_level(logging.INFO)
    fake = world.discord
    fake.interaction_ack_timeout = -1.0  # every acknowledgement comes too late: 10062
    iid = await fake.send_slash_command(
        world.ids.guild_id,
        world.ids.channel_id,
        world.interviewer,
        subcommand="end",
        options={"candidate": world.candidate},
    )
    click = await fake.send_component_click(
        views.PAUSE,
        int(interview.platform_data["counter_message"]),
        int(interview.platform_data["thread"]),
        world.interviewer,
        world.ids.guild_id,
    )
    for refused in (iid, click):
        (call,) = await fake.wait_for_call("POST", rf"/interactions/{refused}/[^/]+/callback")
        assert call.status == 404  # 10062 Unknown interaction
    await world.eventually(
        lambda: sum("not answered" in r.getMessage() for r in caplog.records) == 2
    )
    await world.settle()
    assert fake.interaction_responses.get(iid) is None
    assert fake.interaction_responses.get(click) is None
    assert len(fake.calls_matching("POST", r"/webhooks/\d+/[^/]+")) == 1  # the start's only
    assert (await world.stored(interview)).status is Status.ACTIVE
    assert our_errors(caplog) == []
