"""Persistent interviewer buttons: stable custom ids, no timeout, re-registered at start-up.

The buttons are the engine's controls (``core.lifecycle.controls``): labels come from the
engine's amounts, custom ids are ``ib:<control name>``. Those ids are what Discord stores in
messages already posted, so they must never change: counters posted before a restart (or
by another process) keep working.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

from adapters.discord.access import for_this_app
from core.lifecycle import Control
from core.models import Status

PREFIX = "ib:"


def custom_id(name: str) -> str:
    """The Discord custom id of an engine control."""
    return f"{PREFIX}{name}"


def control_name(custom: str) -> str | None:
    """The engine control a custom id names (None for ids that are not ours)."""
    return custom[len(PREFIX) :] if custom.startswith(PREFIX) else None


EXTEND_TIME = custom_id("extend_time")
EXTEND_TOKENS = custom_id("extend_tokens")
PAUSE = custom_id("pause")
RESUME = custom_id("resume")
END = custom_id("end")

ButtonHandler = Callable[[discord.Interaction[Any], str], Awaitable[None]]

STYLES = {
    "pause": discord.ButtonStyle.primary,
    "resume": discord.ButtonStyle.success,
    "end": discord.ButtonStyle.danger,
}
# Which control a state leaves out (there is nothing to pause while paused, and so on).
HIDDEN = {Status.ACTIVE: "resume", Status.PAUSED: "pause"}


class ControlButton(discord.ui.Button["ControlsView"]):
    def __init__(self, control: Control) -> None:
        super().__init__(
            custom_id=custom_id(control.name),
            label=control.label,
            style=STYLES.get(control.name, discord.ButtonStyle.secondary),
        )
        self.control = control

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        assert self.view is not None
        await self.view.handler(interaction, self.control.name)


class ControlsView(discord.ui.View):
    """The buttons under a counter. With ``status=None`` every button (for registration)."""

    def __init__(
        self, handler: ButtonHandler, controls: Sequence[Control], status: Status | None = None
    ) -> None:
        super().__init__(timeout=None)
        self.handler = handler
        hidden = HIDDEN.get(status) if status is not None else None
        for control in controls:
            if control.name != hidden:
                self.add_item(ControlButton(control))

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Clicks addressed to another application are dropped before the callback."""
        return for_this_app(interaction)
