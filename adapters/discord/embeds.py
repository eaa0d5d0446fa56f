"""Embeds: the challenge and the live counter of the interview thread, and the report."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import discord

from core.counter import CounterView, progress_bar
from core.models import Challenge, Status
from core.report_view import ReportView, evidence_text

LEVEL_COLOURS = {
    "ok": discord.Colour.green(),
    "notice": discord.Colour.gold(),
    "warning": discord.Colour.orange(),
    "critical": discord.Colour.red(),
}


def challenge_embed(challenge: Challenge, candidate_id: str) -> discord.Embed:
    embed = discord.Embed(
        title=f"🧑‍💻 {challenge.title} ({challenge.difficulty})"[:256],
        description=challenge.description[:4000],
        colour=discord.Colour.blurple(),
    )
    embed.set_footer(
        text="Write here to talk to the AI assistant. Every message re-sends the conversation, "
        "so it costs more tokens as it grows."
    )
    return embed


def counter_embed(view: CounterView) -> discord.Embed:
    """Time left as a relative timestamp (counts down in every client without edits)."""
    if view.status is Status.ACTIVE and view.deadline is not None:
        unix = int(view.deadline.timestamp())
        time_value = f"ends <t:{unix}:R> (at <t:{unix}:t>)\n`{progress_bar(view.time_left_pct)}`"
    elif view.status is Status.PAUSED:
        time_value = (
            f"⏸ paused with {view.time_left_text} left\n`{progress_bar(view.time_left_pct)}`"
        )
    elif view.status is Status.SCHEDULED:
        time_value = f"{view.time_left_text}, starting now"
    else:
        time_value = f"finished with {view.time_left_text} left"
    colour = (
        discord.Colour.dark_grey()
        if view.status is Status.ENDED
        else LEVEL_COLOURS.get(view.warning_level, discord.Colour.green())
    )
    embed = discord.Embed(title=f"⏱ {view.challenge_title}", colour=colour)
    embed.add_field(name="Time", value=time_value, inline=True)
    embed.add_field(
        name="Tokens",
        value=(
            f"{view.tokens_used:,} / {view.token_budget:,} ({view.tokens_used_pct}%)\n"
            f"`{progress_bar(view.tokens_used_pct)}`"
            + (f"\n{view.forecast_text}" if view.forecast_text else "")
        ),
        inline=True,
    )
    status = view.status_text
    if view.warning_level != "ok" and view.status is not Status.ENDED:
        status += f" · warning level: {view.warning_level}"
    embed.add_field(
        name="Status",
        value=f"{status}\ncandidate <@{view.candidate_id}> · interviewer <@{view.interviewer_id}>",
        inline=False,
    )
    return embed


# ---- the report --------------------------------------------------------------------------
# Discord's documented embed limits; the fake Discord enforces them the same way.
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FIELDS_MAX = 25
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000
LIST_MAX = 600  # strengths, concerns, follow-ups each: model text gives way to the scores
EVIDENCE_SHOWN = 2
MIN_FIELD_VALUE = 40  # a field with less room than this is left out

SIGNAL_COLOURS = {
    "strong yes": discord.Colour.dark_green(),
    "yes": discord.Colour.green(),
    "mixed": discord.Colour.gold(),
    "no": discord.Colour.orange(),
    "strong no": discord.Colour.red(),
}
_MENTION = re.compile(r"<@!?(\d+)>")


def clip(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut with "…"."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…" if limit > 0 else ""


def untrusted(text: str) -> str:
    """Model text as plain text: no Markdown, no masked links, no mentions (none would ping
    anyway: every report is sent with ``AllowedMentions.none()``)."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(" ".join(text.split())))


def _masked_link(url: str, text: str) -> str:
    return f"[{text}]({url})"


def _add_field(embed: discord.Embed, name: str, value: str, *, reserve: int = 0) -> bool:
    """Add a field cut to what is left of the embed (``reserve`` kept for later fields);
    False (nothing added) when there is no room worth using."""
    if len(embed.fields) >= FIELDS_MAX:
        return False
    left = EMBED_TOTAL_MAX - len(embed) - reserve
    name = clip(name, min(FIELD_NAME_MAX, max(left - MIN_FIELD_VALUE, 0)))
    room = min(FIELD_VALUE_MAX, left - len(name))
    if not name or room < MIN_FIELD_VALUE:
        return False
    embed.add_field(name=name, value=clip(value, room) or "—", inline=False)
    return True


def report_title(view: ReportView, names: Mapping[str, str] | None = None) -> str:
    """The title, with people by name: mentions do not render in an embed's title."""
    title = view.title + (" (re-posted)" if view.reposted else "")
    found = names or {}
    return _MENTION.sub(lambda m: "@" + found.get(m[1], m[1]), title)


def report_embed(
    view: ReportView, *, names: Mapping[str, str] | None = None, chart: str | None = None
) -> discord.Embed:
    """The report as one embed, within Discord's limits: the metrics as the description,
    the evaluation as fields (signal and rationale first, then a field per criterion with
    up to two linked pieces of evidence, then strengths, concerns, follow-ups), the
    evaluation's tokens in the footer and ``chart`` (an attachment's filename) as the image.
    What does not fit is cut with "…", the model's lists first."""
    embed = discord.Embed(
        title=clip(report_title(view, names), TITLE_MAX),
        colour=SIGNAL_COLOURS.get(view.signal or "", discord.Colour.blurple()),
    )
    if view.evaluation_tokens:
        embed.set_footer(
            text=clip(
                f"The evaluation used {view.evaluation_tokens:,} tokens, not charged to the "
                "candidate.",
                FOOTER_MAX,
            )
        )
    facts = "\n".join(f"**{label}:** {value}" for label, value in view.facts)
    embed.description = clip(facts, min(DESCRIPTION_MAX, EMBED_TOTAL_MAX - len(embed) - 1500))
    if chart is not None:
        embed.set_image(url=f"attachment://{chart}")

    summary = []
    if view.signal_text:
        summary.append(f"**Signal:** {view.signal_text}")
    if view.rationale:
        summary.append(untrusted(view.rationale))
    if view.evaluation_note:
        summary.append(view.evaluation_note)
    _add_field(embed, view.evaluation_heading, "\n".join(summary) or "—")

    for index, line in enumerate(view.scores):
        if len(embed.fields) == FIELDS_MAX - 1 and index < len(view.scores) - 1:
            rest = view.scores[index:]  # one field left for several: scores without evidence
            _add_field(embed, "More criteria", "\n".join(f"{s.name}: {s.score}/5" for s in rest))
            break
        shown = [
            "• " + evidence_text(dataclasses.replace(e, quote=untrusted(e.quote)), _masked_link)
            for e in line.evidence[:EVIDENCE_SHOWN]
        ]
        _add_field(embed, f"{line.name}: {line.score}/5", "\n".join(shown) or "_no evidence cited_")

    for heading, items in (
        ("Strengths", view.strengths),
        ("Concerns", view.concerns),
        ("Follow-up questions", view.follow_ups),
    ):
        if items:
            text = "\n".join(f"• {untrusted(item)}" for item in items)
            _add_field(embed, heading, clip(text, LIST_MAX))
    return embed
