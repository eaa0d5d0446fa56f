"""Persistent interviewer buttons: stable custom ids, no timeout, re-registered at start-up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord

from core.models import Status

EXTEND_TIME = "ib:extend_time"
EXTEND_TOKENS = "ib:extend_tokens"
PAUSE = "ib:pause"
RESUME = "ib:resume"
END = "ib:end"

ButtonHandler = Callable[[discord.Interaction[Any], str], Awaitable[None]]

_BUTTONS = (
    (EXTEND_TIME, "+10 min", discord.ButtonStyle.secondary),
    (EXTEND_TOKENS, "+5k tokens", discord.ButtonStyle.secondary),
    (PAUSE, "Pause", discord.ButtonStyle.primary),
    (RESUME, "Resume", discord.ButtonStyle.success),
    (END, "End", discord.ButtonStyle.danger),
)


class ControlButton(discord.ui.Button["ControlsView"]):
    def __init__(self, custom_id: str, label: str, style: discord.ButtonStyle) -> None:
        super().__init__(custom_id=custom_id, label=label, style=style)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        assert self.view is not None and self.custom_id is not None
        await self.view.handler(interaction, self.custom_id)


class ControlsView(discord.ui.View):
    """The buttons under a counter. With ``status=None`` every button (for registration)."""

    def __init__(self, handler: ButtonHandler, status: Status | None = None) -> None:
        super().__init__(timeout=None)
        self.handler = handler
        for custom_id, label, style in _BUTTONS:
            if status is Status.PAUSED and custom_id == PAUSE:
                continue
            if status is Status.ACTIVE and custom_id == RESUME:
                continue
            self.add_item(ControlButton(custom_id, label, style))
