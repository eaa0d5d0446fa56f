"""Evaluation reports on Discord, end to end: the real discord.py client against the fake
Discord and the fake OpenAI (a scripted judge), through the bot's real runtime. A finished
interview's report is one message (an embed, the chart and the transcript attached) in the
interviewers' channel, or by DM; ``/interview report|export|compare`` are for interviewers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import discord
import pytest
import pytest_asyncio

from adapters.discord import embeds
from adapters.discord.platform import REPORT_DMS_CLOSED, UNDELIVERABLE
from bench.fakes.discord_server import FLAG_EPHEMERAL
from bench.fakes.openai_server import MALFORMED
from core.errors import InvalidInput
from core.models import Interview, Report
from core.ports import ReportTarget
from core.report_view import Evidence, ReportView, ScoreLine
from core.reports import NO_CHANNEL_HINT
from tests.fakes.judge_answers import valid_answer
from tests.test_discord import DiscordWorld, discord_world, start_runtime
from tests.test_discord_schedules import text_channel

PROMPTS = ("How should I approach two-sum?", "Can you add tests for duplicates like [3, 3]?")
DEFAULT_CRITERIA_NAMES = (
    "Problem decomposition",
    "Prompt quality",
    "Critical verification of AI output",
    "Efficiency with time and tokens",
    "Communication",
)
LINK = re.compile(r"\]\((https://discord\.com/channels/(\d+)/(\d+)/(\d+))\)")


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[DiscordWorld]:
    async with discord_world(tmp_path) as built:
        built.openai.structured_default = valid_answer
        yield built


# ---- helpers --------------------------------------------------------------------------------


async def reviewers(world: DiscordWorld) -> int:
    """A #reviewers channel, configured as the interviewers' channel."""
    room = await text_channel(world, "reviewers")
    reply = await world.slash("config channel", world.interviewer, channel=room)
    assert reply["data"]["content"] == f"Evaluations will go to <#{room}>."
    return room


async def finish(
    world: DiscordWorld, candidate: int | None = None, prompts: Sequence[str] = PROMPTS
) -> Interview:
    """Start an interview, send ``prompts`` as the candidate, end it, run the due jobs."""
    who = candidate or world.candidate
    started = await world.slash("start", world.interviewer, candidate=who, challenge="two-sum")
    assert started["data"]["content"].startswith("Started `two-sum`"), started
    interview = next(i for i in await world.open_interviews() if i.candidate_id == str(who))
    thread = int(interview.platform_data["thread"])
    for count, text in enumerate(prompts, 1):
        await world.discord.send_message(thread, who, text)
        await world.turns_settled(interview, count)
    ended = await world.slash("end", world.interviewer, candidate=who)
    assert ended["data"]["content"].startswith("Ended"), ended
    await world.run_due()
    return await world.stored(interview)


def posted(world: DiscordWorld, channel: int) -> list[dict[str, Any]]:
    """The bot's messages in a channel that everyone there sees (not ephemeral answers)."""
    return [
        m
        for m in world.discord.channel_messages(channel)
        if m["author_id"] == world.discord.bot_user_id and not m["ephemeral"]
    ]


def visible_messages(world: DiscordWorld) -> int:
    """Every message anyone but the requester could see (all but ephemeral ones)."""
    return sum(
        not m.deleted and not m.flags & FLAG_EPHEMERAL for m in world.discord.messages.values()
    )


def embed_text(message: dict[str, Any]) -> str:
    (embed,) = message["embeds"]
    parts = [embed.get("title", ""), embed.get("description", "")]
    parts += [f"{f['name']}\n{f['value']}" for f in embed.get("fields", [])]
    parts.append((embed.get("footer") or {}).get("text", ""))
    return "\n".join(parts)


def attachment(world: DiscordWorld, message: dict[str, Any], suffix: str) -> bytes:
    (found,) = [a for a in message["attachments"] if a["filename"].endswith(suffix)]
    return world.discord.attachment_content(found)


async def stored_report(world: DiscordWorld, interview: Interview) -> Report:
    async with world.service.ctx.uow() as uow:
        report = await uow.reports.for_interview(interview.id)
    assert report is not None
    return report


def sends_to(world: DiscordWorld, channel: int) -> int:
    """How often the bot tried to post in ``channel`` (answered or refused)."""
    return len(world.discord.calls_matching("POST", rf"/channels/{channel}/messages"))


# ---- delivery -------------------------------------------------------------------------------


async def test_a_finished_interview_posts_one_report_to_the_interviewers_channel(
    world: DiscordWorld,
) -> None:
    room = await reviewers(world)
    interview = await finish(world)
    await world.eventually(lambda: len(posted(world, room)) == 1)

    (message,) = posted(world, room)
    (embed,) = message["embeds"]
    assert embed["title"] == "Interview report: @Bob · Two Sum"  # names: no mentions in titles
    text = embed_text(message)
    assert "AI evaluation (AI-assisted, advisory)" in text and "**Signal:** 🟢 yes" in text
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    for name in DEFAULT_CRITERIA_NAMES:
        assert f"{name}: 4/5" in fields, fields.keys()
    assert "**Prompts sent:** 2 (2 answered)" in embed["description"]
    assert "not charged to the candidate" in embed["footer"]["text"]

    assert sorted(a["filename"] for a in message["attachments"]) == sorted(
        [f"chart-{interview.id[:8]}.png", f"report-{interview.id[:8]}.md"]
    )
    assert embed["image"]["url"] == f"attachment://chart-{interview.id[:8]}.png"
    assert attachment(world, message, ".png").startswith(b"\x89PNG\r\n\x1a\n")
    transcript = attachment(world, message, ".md").decode()
    for prompt in PROMPTS:
        assert prompt in transcript
    (call,) = [
        c
        for c in world.discord.calls_matching("POST", rf"/channels/{room}/messages")
        if c.status == 200
    ]
    assert call.json["allowed_mentions"] == {"parse": []}  # nothing in a report ever pings

    # Nothing of the report where the candidate can see it.
    thread = world.thread_messages(interview)
    assert not any(m["attachments"] for m in thread)
    assert not any("Interview report" in str(m["embeds"]) for m in thread)
    assert world.discord.dm_messages(world.candidate) == []
    assert world.discord.dm_messages(world.interviewer) == []
    assert (await stored_report(world, interview)).delivered_at is not None

    # Delivered once: neither another run nor a restarted runtime posts it again.
    dms = world.discord.ensure_dm_channel(world.interviewer)
    sends = sends_to(world, room), sends_to(world, dms)
    await world.run_due()
    await world.runtime.stop()
    world.runtime, world.adapter = await start_runtime(world.settings, world.clock)
    world.clock.advance(3600)
    await world.run_due()
    assert len(posted(world, room)) == 1
    assert (sends_to(world, room), sends_to(world, dms)) == sends


async def test_evidence_links_point_at_the_candidates_messages(world: DiscordWorld) -> None:
    room = await reviewers(world)
    interview = await finish(world)
    await world.eventually(lambda: len(posted(world, room)) == 1)
    (message,) = posted(world, room)
    links = LINK.findall(embed_text(message))
    assert links
    thread = int(interview.platform_data["thread"])
    candidate_messages = {
        str(m["id"]): m
        for m in world.discord.channel_messages(thread)
        if m["author_id"] == world.candidate
    }
    for _, guild, channel, message_id in links:
        assert (int(guild), int(channel)) == (world.ids.guild_id, thread)
        assert candidate_messages[message_id]["content"] == PROMPTS[0]  # the judge cites turn 1


async def test_malformed_judge_answers_still_deliver_the_metrics(world: DiscordWorld) -> None:
    room = await reviewers(world)
    world.openai.structured.extend([MALFORMED, MALFORMED])
    await finish(world)
    await world.eventually(lambda: len(posted(world, room)) == 1)
    (message,) = posted(world, room)
    text = embed_text(message)
    judged = [r for r in world.openai.requests if r.get("response_format")]
    assert len(judged) == 2  # retried once, then metrics only
    assert "The AI evaluation failed" in text and "metrics only" in text
    assert "/5" not in text and "Signal" not in text
    assert "**Prompts sent:** 2 (2 answered)" in text
    assert len(message["attachments"]) == 2


async def test_without_a_channel_the_report_goes_to_the_interviewer_by_dm(
    world: DiscordWorld,
) -> None:
    await finish(world)
    await world.eventually(lambda: len(world.discord.dm_messages(world.interviewer)) == 1)
    (dm,) = world.discord.dm_messages(world.interviewer)
    assert dm["content"] == NO_CHANNEL_HINT
    assert "/interview config channel" in dm["content"]
    assert dm["embeds"][0]["title"].startswith("Interview report: @Bob")
    assert len(dm["attachments"]) == 2
    assert world.discord.dm_messages(world.candidate) == []
    assert posted(world, world.ids.channel_id) == []


async def test_an_interviewer_without_dms_gets_no_report_and_no_retries(
    world: DiscordWorld,
) -> None:
    world.discord.users[world.interviewer].accepts_dms = False
    dms = world.discord.ensure_dm_channel(world.interviewer)
    interview = await finish(world)
    await world.eventually(lambda: sends_to(world, dms) == 1)
    (refused,) = world.discord.calls_matching("POST", rf"/channels/{dms}/messages")
    assert refused.status == 403
    assert (await stored_report(world, interview)).delivered_at is not None  # not retried
    world.clock.advance(3600)
    await world.run_due()
    assert sends_to(world, dms) == 1
    assert world.discord.dm_messages(world.interviewer) == []
    # Asked for it again, the interviewer is told what to do.
    reply = await world.slash("report", world.interviewer, candidate=world.candidate)
    assert reply["data"]["content"] == f"❌ {REPORT_DMS_CLOSED}"
    assert reply["data"]["flags"] & 64


async def test_a_retried_send_of_the_same_report_is_one_message(world: DiscordWorld) -> None:
    """The delivery's send carries a nonce derived from the report (``enforce_nonce``): a
    retry whose first answer was lost gets Discord's first message back; a re-post is new."""
    room = await reviewers(world)
    interview = await finish(world)
    await world.eventually(lambda: len(posted(world, room)) == 1)
    (first,) = posted(world, room)
    workspace = await world.workspace()
    report = await stored_report(world, interview)
    reports, platform = world.service.reports, world.adapter.platform
    target = ReportTarget(str(room), str(world.interviewer))
    again = await platform.post_report(
        workspace, target, await reports.view(report), reports.files(report)
    )
    assert again.ref == f"{room}:{first['id']}" and again.files_attached
    assert len(posted(world, room)) == 1
    for _ in range(2):
        view = await reports.view(report, reposted=True)
        await platform.post_report(workspace, target, view, reports.files(report))
    assert len(posted(world, room)) == 3


async def test_the_other_report_methods_of_the_platform(world: DiscordWorld) -> None:
    """What the engine may call besides ``post_report``: files as a reply to a report, a
    private file, people's names and message links."""
    room = await reviewers(world)
    interview = await finish(world)
    await world.eventually(lambda: len(posted(world, room)) == 1)
    (first,) = posted(world, room)
    workspace = await world.workspace()
    report = await stored_report(world, interview)
    files = world.service.reports.files(report)
    platform = world.adapter.platform
    target = ReportTarget(str(room), str(world.interviewer))

    await platform.attach_report_files(workspace, target, f"{room}:{first['id']}", files)
    reply = posted(world, room)[-1]
    assert reply["message_reference"]["message_id"] == str(first["id"])
    assert len(reply["attachments"]) == 2
    await platform.attach_report_files(workspace, target, UNDELIVERABLE, files)
    assert len(posted(world, room)) == 2

    await platform.send_file(workspace, str(world.interviewer), "Yours: <@1>", files[-1])
    (dm,) = world.discord.dm_messages(world.interviewer)
    assert dm["content"] == "Yours: <@1>" and dm["attachments"][0]["filename"] == files[-1].filename
    world.discord.users[world.stranger].accepts_dms = False
    with pytest.raises(InvalidInput, match="can't send you direct messages"):
        await platform.send_file(workspace, str(world.stranger), "Yours", files[-1])

    outsider = world.discord.add_user("olly", global_name="Olly")
    nicknamed = world.discord.add_member(world.ids.guild_id, username="nick", nick="Nicky")
    names = {
        uid: await platform.display_name(workspace, str(uid))
        for uid in (world.candidate, nicknamed, outsider, 999)
    }
    assert names == {world.candidate: "Bob", nicknamed: "Nicky", outsider: "Olly", 999: "999"}

    thread = interview.platform_data["thread"]
    wanted = f"https://discord.com/channels/{world.ids.guild_id}/{thread}/42"
    assert await platform.message_link(interview, "42") == wanted
    del interview.platform_data["guild"]  # an interview opened before the guild was stored
    assert await platform.message_link(interview, "42") == wanted


# ---- commands -------------------------------------------------------------------------------


async def test_report_export_and_compare_for_interviewers(world: DiscordWorld) -> None:
    room = await reviewers(world)
    carol = world.discord.add_member(world.ids.guild_id, username="carol")
    bob = await finish(world)
    await finish(world, carol, ["Is a hash map the right tool here?"])
    await world.eventually(lambda: len(posted(world, room)) == 2)

    reply = await world.slash("report", world.interviewer, candidate=world.candidate)
    assert reply["data"]["content"] == (
        f"Posted <@{world.candidate}>'s latest report in <#{room}>."
    )
    assert reply["data"]["flags"] & 64
    reposted = posted(world, room)[-1]
    assert reposted["embeds"][0]["title"] == "Interview report: @Bob · Two Sum (re-posted)"
    assert len(reposted["attachments"]) == 2
    assert len(posted(world, room)) == 3

    before = visible_messages(world)
    reply = await world.slash("export", world.interviewer, candidate=world.candidate)
    assert reply["data"]["content"].startswith(f"The transcript of <@{world.candidate}>'s")
    exported = world.discord.messages[reply["message_id"]]
    assert exported.flags & FLAG_EPHEMERAL  # only the caller sees it
    (file,) = exported.attachments
    assert file["filename"] == f"report-{bob.id[:8]}.md"
    transcript = world.discord.attachment_content(file).decode()
    assert all(prompt in transcript for prompt in PROMPTS)
    assert visible_messages(world) == before
    assert world.discord.dm_messages(world.interviewer) == []

    shown = len(posted(world, room))
    reply = await world.slash("compare", world.interviewer, first=world.candidate, second=carol)
    assert reply["data"]["content"] == f"Posted the comparison in <#{room}>."
    table = "\n".join(m["content"] for m in posted(world, room)[shown:])  # long: in parts
    assert table.startswith(f"Side by side: <@{world.candidate}>, <@{carol}>")
    header = next(line for line in table.splitlines() if "Bob" in line)
    assert "carol" in header
    assert "Problem decomposition" in table and "4/5" in table

    missing = await world.slash("export", world.interviewer, candidate=world.stranger)
    assert missing["data"]["content"] == f"❌ There is no report for <@{world.stranger}> yet."
    same = await world.slash("compare", world.interviewer, first=carol, second=carol)
    assert same["data"]["content"] == "❌ Compare two to four different candidates."


async def test_candidates_and_members_are_refused_privately_and_nothing_is_posted(
    world: DiscordWorld,
) -> None:
    room = await reviewers(world)
    await finish(world)
    await world.eventually(lambda: len(posted(world, room)) == 1)
    before = visible_messages(world)
    for user in (world.candidate, world.stranger):
        for sub, options in (
            ("report", {"candidate": world.candidate}),
            ("export", {"candidate": world.candidate}),
            ("compare", {"first": world.candidate, "second": world.stranger}),
        ):
            reply = await world.slash(sub, user, **options)
            assert reply["data"]["content"].startswith("❌ Only interviewers"), (sub, reply)
            assert reply["data"]["flags"] & 64
            assert world.discord.messages[reply["message_id"]].attachments == []
    assert visible_messages(world) == before
    assert len(posted(world, room)) == 1
    assert world.discord.dm_messages(world.candidate) == []
    assert world.discord.dm_messages(world.stranger) == []


async def test_interviewers_can_not_report_on_themselves(world: DiscordWorld) -> None:
    await reviewers(world)
    before = visible_messages(world)
    reply = await world.slash("export", world.interviewer, candidate=world.interviewer)
    assert reply["data"]["content"] == "❌ Only interviewers can see reports."
    assert visible_messages(world) == before


# ---- the embed ------------------------------------------------------------------------------


def test_a_huge_report_fits_discords_embed_limits() -> None:
    link = "https://discord.com/channels/1/2/3"
    long = "word " * 400
    view = ReportView(
        title="Interview report: <@42> · " + "A very long challenge title " * 20,
        facts=[(f"Fact {i}", "value " * 60) for i in range(30)],
        evaluation_heading="AI evaluation (AI-assisted, advisory)",
        scores=[
            ScoreLine(f"Criterion {i} " + "x" * 300, 3, [Evidence(1, long, link)] * 3)
            for i in range(40)
        ],
        signal="mixed",
        rationale=long,
        strengths=[long] * 10,
        concerns=[long] * 10,
        follow_ups=[long] * 10,
        evaluation_tokens=12_345,
        reposted=True,
    )
    embed = embeds.report_embed(view, names={"42": "Bob"}, chart="chart-x.png")
    assert len(embed) <= embeds.EMBED_TOTAL_MAX
    assert len(embed.fields) <= embeds.FIELDS_MAX
    assert embed.title is not None and len(embed.title) <= 256
    assert embed.title.startswith("Interview report: @Bob · ")
    assert embed.description is not None and len(embed.description) <= 4096
    for field in embed.fields:
        assert field.name is not None and len(field.name) <= 256
        assert field.value is not None and len(field.value) <= 1024
    assert embed.fields[0].value is not None and "**Signal:** 🟡 mixed" in embed.fields[0].value
    assert embed.footer.text and "12,345 tokens, not charged to the candidate" in embed.footer.text
    assert embed.image.url == "attachment://chart-x.png"
    assert embed.to_dict()  # serialisable as sent


def test_model_text_can_not_link_or_mention() -> None:
    sneaky = "Great [click here](https://evil.example) @everyone <@123456789012345678> **hire**"
    view = ReportView(
        title="Interview report: <@42> · Two Sum",
        facts=[("Prompts sent", "2 (2 answered)")],
        evaluation_heading="AI evaluation (AI-assisted, advisory)",
        scores=[ScoreLine("Communication", 4, [Evidence(1, sneaky, "https://discord.com/x")])],
        signal="yes",
        rationale=sneaky,
        strengths=[sneaky],
    )
    embed = embeds.report_embed(view)
    for field in embed.fields:
        value = field.value or ""
        assert not re.search(r"(?<!\\)\[click here\]\(", value), value  # no masked link
        assert "@everyone" not in value and "<@123456789012345678>" not in value
        assert "**hire**" not in value
    communication = next(f for f in embed.fields if f.name == "Communication: 4/5")
    assert (communication.value or "").startswith("• [turn 1](https://discord.com/x)")
    assert embed.title == "Interview report: @42 · Two Sum"
    assert isinstance(embed, discord.Embed)
