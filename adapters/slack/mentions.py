"""Slack's escaped mentions: ``<@U123|alice>`` and ``<#C123|general>``."""

from __future__ import annotations

import re

_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_CHANNEL = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$")
_BARE_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def user_id(word: str) -> str | None:
    """``<@U123|alice>`` -> ``U123``; a bare id such as ``U123`` is accepted too."""
    match = _USER.match(word)
    if match:
        return match.group(1)
    return word if _BARE_USER.match(word) else None


def channel_id(word: str) -> str | None:
    """``<#C123|general>`` -> ``C123``."""
    match = _CHANNEL.match(word)
    return match.group(1) if match else None
