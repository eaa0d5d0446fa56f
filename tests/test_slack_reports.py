"""Evaluation reports on Slack end to end: the real endpoint, the fake Slack Web API (with
``files_upload_v2``'s three steps and ``chat.getPermalink``) and the fake OpenAI answering
the judge with structured outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.fakes.openai_server import MALFORMED, TRUNCATED
from bench.fakes.slack_server import FakeMessage
from core.models import TurnStatus
from tests.fakes.judge_answers import valid_answer
from tests.test_slack import (
    CANDIDATE,
    INTERVIEWER,
    STRANGER,
    SlackWorld,
    slack_world,
)

REPORTS = "CREPORT1"


async def finish(world: SlackWorld, candidate: str = CANDIDATE) -> tuple[str, str, str]:
    """An interview with two answered prompts, ended by the interviewer."""
    (started,) = await world.command(f"start <@{candidate}|x> 45m 20k two-sum")
    assert started["text"].startswith("Started `two-sum`"), started
    channel = world.slack.conversation_with(INTERVIEWER, candidate)
    assert channel is not None
    root = world.slack.channel_messages(channel)[0].ts
    (interview,) = [
        i for i in await world.service.queries.open_interviews() if i.candidate_id == candidate
    ]
    interview_id = interview.id
    prompts = ("How do I start on two-sum?", "Which edge cases should I test?")
    for n, prompt in enumerate(prompts, start=1):
        # the candidate writes in the thread (stored in Slack), and Slack sends the event
        written = world.slack.add_message(channel, prompt, user=candidate, thread_ts=root)
        await world.say(channel, root, prompt, written.ts, candidate)

        async def answered(n: int = n) -> bool:
            turns = await world.turns(interview_id)
            return sum(t.status == TurnStatus.ANSWERED for t in turns) == n

        await world.eventually(answered)
    await world.command(f"end <@{candidate}|x>")
    await world.settle()
    return channel, root, interview_id


def judge_requests(world: SlackWorld) -> list[dict[str, Any]]:
    return [r for r in world.openai.requests if "response_format" in r]


def top_level(world: SlackWorld, channel: str) -> list[FakeMessage]:
    return world.slack.channel_messages(channel)


def everything_in(world: SlackWorld, channel: str) -> list[FakeMessage]:
    return world.slack.channel_messages(channel, include_replies=True)


async def test_one_report_with_chart_and_transcript_goes_to_the_interviewers_channel(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as world:
        world.openai.structured_default = valid_answer
        world.slack.add_channel(REPORTS, name="hiring")
        await world.command(f"config channel <#{REPORTS}|hiring>")
        room, _, interview_id = await finish(world)
        await world.settle()

        (report,) = top_level(world, REPORTS)
        text = json.dumps(report.blocks)
        assert "Interview report" in text and f"<@{CANDIDATE}>" in text
        assert "AI evaluation (AI-assisted, advisory)" in text and "*Signal:*" in text
        assert "Problem decomposition" in text and "/5" in text
        # the evidence links to the candidate's message (chat.getPermalink)
        assert "slack.com/archives/" in text and "thread_ts=" in text
        # the files are in the report's thread, uploaded with files_upload_v2
        files = [world.slack.files[f] for m in everything_in(world, REPORTS) for f in m.files]
        assert sorted(f.filename for f in files) == [
            f"chart-{interview_id[:8]}.png",
            f"report-{interview_id[:8]}.md",
        ]
        assert all(f.completed and f.thread_ts == report.ts for f in files)
        png = next(f for f in files if f.filename.endswith(".png"))
        assert png.data is not None and png.data.startswith(b"\x89PNG") and len(png.data) < 200_000
        md = next(f for f in files if f.filename.endswith(".md"))
        assert md.data is not None
        transcript = md.data.decode()
        for prompt in ("How do I start on two-sum?", "Which edge cases should I test?"):
            assert prompt in transcript
        # the judge asked with a strict schema, and its tokens were not charged
        (request,) = judge_requests(world)
        assert request["response_format"]["json_schema"]["strict"] is True
        interview = await world.interview(interview_id)
        turns = await world.turns(interview_id)
        assert interview.tokens_used == sum(t.charged_tokens for t in turns)
        # nothing of it in the candidate's conversation or DMs
        room_texts = json.dumps([m.to_api() for m in everything_in(world, room)])
        assert "Interview report" not in room_texts and "Signal" not in room_texts
        dm = world.slack.conversation_with(CANDIDATE)
        assert dm is None or not everything_in(world, dm)
        # more wake-ups post nothing more
        await world.service.jobs.run_due()
        await world.service.recover()
        await world.settle()
        assert len(top_level(world, REPORTS)) == 1


async def test_a_bad_or_cut_off_evaluation_leaves_a_metrics_only_report(tmp_path: Path) -> None:
    async with slack_world(tmp_path, slack_interviewer_channel=REPORTS) as world:
        world.slack.add_channel(REPORTS, name="hiring")
        world.openai.structured.extend([MALFORMED, TRUNCATED])
        await finish(world)
        await world.settle()
        (report,) = top_level(world, REPORTS)
        text = json.dumps(report.blocks)
        assert "The AI evaluation failed (the answer was cut off at the token limit)" in text
        assert "*Signal:*" not in text and "Time used" in text
        assert len(judge_requests(world)) == 2


async def test_without_a_channel_the_interviewer_gets_the_report_by_dm(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as world:
        world.openai.structured_default = valid_answer
        await finish(world)
        await world.settle()
        dm = world.slack.conversation_with(INTERVIEWER)
        assert dm is not None
        (report,) = top_level(world, dm)
        assert "/interview config channel" in json.dumps(report.blocks)
        assert world.slack.conversation_with(CANDIDATE) is None


async def test_report_export_and_compare_for_interviewers_only(tmp_path: Path) -> None:
    second = "UCANDI02"
    async with slack_world(tmp_path, slack_interviewer_channel=REPORTS) as world:
        world.slack.add_user(second, name="bob")
        world.slack.add_channel(REPORTS, name="hiring")
        world.openai.structured_default = valid_answer
        await finish(world)
        await finish(world, second)
        await world.settle()
        assert len(top_level(world, REPORTS)) == 2

        for user in (CANDIDATE, STRANGER):
            for command in (
                f"report <@{CANDIDATE}|a>",
                f"export <@{CANDIDATE}|a>",
                f"compare <@{CANDIDATE}|a> <@{second}|b>",
            ):
                (refused,) = await world.command(command, user=user)
                assert refused["response_type"] == "ephemeral"
                assert refused["text"].startswith("❌ Only interviewers"), refused
        assert len(top_level(world, REPORTS)) == 2
        assert world.slack.conversation_with(CANDIDATE) is None
        assert world.slack.conversation_with(STRANGER) is None

        (reply,) = await world.command(f"report <@{CANDIDATE}|a>")
        assert reply["text"] == f"Posted <@{CANDIDATE}>'s latest report in <#{REPORTS}>."
        reposted = top_level(world, REPORTS)[-1]
        assert len(top_level(world, REPORTS)) == 3 and "(re-posted)" in json.dumps(reposted.blocks)

        (reply,) = await world.command(f"export <@{CANDIDATE}|a>")
        assert reply["response_type"] == "ephemeral" and "privately" in reply["text"]
        dm = world.slack.conversation_with(INTERVIEWER)
        assert dm is not None
        (exported,) = [world.slack.files[f] for m in everything_in(world, dm) for f in m.files]
        assert exported.filename.endswith(".md") and exported.data is not None
        assert b"How do I start on two-sum?" in exported.data

        (reply,) = await world.command(f"compare <@{CANDIDATE}|a> <@{second}|b>")
        assert reply["text"] == f"Posted the comparison in <#{REPORTS}>."
        table = top_level(world, REPORTS)[-1].text
        assert "alice" in table and "bob" in table and "Problem decomposition" in table

        (bad,) = await world.command(f"compare <@{CANDIDATE}|a>")
        assert bad["text"].startswith("❌ Mention two to four different candidates.")
        assert "Usage: `/interview compare" in bad["text"]
