"""Scheduling on Slack end to end: `/interview schedule` through the real endpoint, a fast
(manual) clock, reminders as DMs, the interview opening by itself, the weekly summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.clock import ManualClock
from tests.test_slack import CANDIDATE, INTERVIEWER, STRANGER, SlackWorld, slack_world


async def run_until(world: SlackWorld, clock: ManualClock, moment: datetime) -> None:
    """Run the bot up to ``moment``, waking at every due job (as the alarm would)."""
    while True:
        async with world.service.ctx.uow() as uow:
            due = await uow.jobs.next_due()
        step = moment if due is None or due > moment else max(due, clock.now())
        clock.advance(step - clock.now())
        await world.service.jobs.run_due()
        await world.service.jobs.run_due()  # a second wake-up sends nothing twice
        await world.settle()
        if step >= moment:
            return


def dms(world: SlackWorld, user: str) -> list[str]:
    """Texts the bot posted to its DM with ``user``."""
    channel = world.slack.conversation_with(user)
    return [] if channel is None else [m.text for m in world.slack.channel_messages(channel)]


async def test_schedule_reminds_once_and_opens_the_interview_by_itself(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 12, 4, 13, 0, tzinfo=UTC))  # a Friday, 13:00 UTC
    async with slack_world(tmp_path, clock=clock, job_sweep_s=300, reminders="5m,1m") as world:
        world.slack.add_channel("CTEAM01", name="team")
        await world.command("config timezone UTC")
        await world.command("config team-channel <#CTEAM01|team>")
        (reply,) = await world.command(f"schedule <@{CANDIDATE}|alice> fri 13:10 1w 20m 5k")
        assert reply["text"].startswith("Scheduled `"), reply
        assert "<!date^" in reply["text"] and "Fridays at 13:10 UTC, once" in reply["text"]
        (listed,) = await world.command("schedules")
        assert "next <!date^" in listed["text"] and "1 left" in listed["text"]
        refused = await world.command(f"schedule <@{CANDIDATE}|alice> fri", user=STRANGER)
        assert refused[0]["text"].startswith("❌ Only interviewers")

        start = datetime(2026, 12, 4, 13, 10, tzinfo=UTC)
        await run_until(world, clock, start - timedelta(minutes=5))
        await run_until(world, clock, start - timedelta(minutes=1))
        for user in (CANDIDATE, INTERVIEWER):
            texts = [t for t in dms(world, user) if "starts in" in t]
            assert [("5 minutes" in t, "1 minute" in t) for t in texts] == [
                (True, False),
                (False, True),
            ], texts
        assert "Your interview starts in 5 minutes" in dms(world, CANDIDATE)[0]
        assert "<!date^" in dms(world, CANDIDATE)[0]
        assert (
            world.service.queries is not None
            and await world.service.queries.open_interviews() == []
        )

        await run_until(world, clock, start)
        (interview,) = await world.service.queries.open_interviews()
        assert (interview.candidate_id, interview.time_limit_s, interview.token_budget) == (
            CANDIDATE,
            1200,
            5000,
        )
        channel = world.slack.conversation_with(INTERVIEWER, CANDIDATE)
        assert channel is not None and world.slack.channel_messages(channel)  # the room opened
        assert sum("has started" in t for t in dms(world, INTERVIEWER)) == 1
        await run_until(world, clock, start + timedelta(minutes=2))
        assert len(await world.service.queries.open_interviews()) == 1  # once


async def test_the_weekly_summary_goes_to_the_team_channel_once(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 12, 4, 16, 0, tzinfo=UTC))
    async with slack_world(tmp_path, clock=clock, job_sweep_s=300) as world:
        world.slack.add_channel("CTEAM01", name="team")
        await world.command("config timezone UTC")
        await world.command("config team-channel <#CTEAM01|team>")
        (reply,) = await world.command("config summary fri 16:30")
        assert reply["text"] == "Weekly summaries: Fridays at 16:30 team time."
        await run_until(world, clock, datetime(2026, 12, 4, 16, 31, tzinfo=UTC))
        posted = [m.text for m in world.slack.channel_messages("CTEAM01")]
        assert len(posted) == 1 and posted[0].startswith("📊 Interviews in the 7 days before")
        (private,) = await world.command("summary")
        assert private["text"].startswith("📊") and private["response_type"] == "ephemeral"
