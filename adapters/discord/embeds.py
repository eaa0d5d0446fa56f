"""Embeds for the interview thread: the challenge and the live counter."""

from __future__ import annotations

import discord

from core.counter import CounterView, progress_bar
from core.models import Challenge, Status

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
