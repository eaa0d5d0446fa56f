"""Parsing of human-typed durations and token budgets ("1h30m", "20k")."""

from __future__ import annotations

import re

from core.errors import InvalidInput

_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_TOKENS = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<k>k)?$")

MAX_DURATION_SECONDS = 24 * 3600
MAX_TOKEN_BUDGET = 10_000_000
MIN_TIME_LIMIT_SECONDS = 60
MIN_TOKEN_BUDGET = 1000  # less cannot hold a challenge's system prompt and one exchange
# A number with more digits than this (leading zeros aside) is beyond every limit here; it is
# refused as too large without converting it (int() refuses over 4300 digits, float() gives inf).
_MAX_DIGITS = 9


def _too_long(digits: str) -> bool:
    return len(digits.lstrip("0")) > _MAX_DIGITS


def looks_like_duration(text: str) -> bool:
    """True for strings such as ``45m``, ``1h``, ``1h30m``, ``+10m`` (a unit is required)."""
    body = text.strip().lower().lstrip("+")
    return bool(body) and bool(_DURATION.match(body)) and not body.isdigit()


def looks_like_tokens(text: str) -> bool:
    """True for strings such as ``20k``, ``15000``, ``+5k``."""
    return bool(_TOKENS.match(text.strip().lower().lstrip("+")))


def parse_duration(text: str) -> int:
    """``"1h30m"`` -> 5400 seconds. A unit is required; a bare number is refused."""
    body = text.strip().lower().lstrip("+")
    match = _DURATION.match(body)
    if not body or match is None or body.isdigit():
        raise InvalidInput(
            f"`{text}` is not a duration. Use a number with a unit, e.g. `45m`, `1h` or `1h30m`."
        )
    parts = [match[unit] or "0" for unit in "hms"]
    if any(_too_long(part) for part in parts):
        raise InvalidInput(f"`{text}` is longer than 24 hours, the longest interview allowed.")
    hours, minutes, secs = (int(part.lstrip("0") or "0") for part in parts)
    seconds = hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise InvalidInput(f"`{text}` is zero; a duration must be positive, e.g. `10m`.")
    if seconds > MAX_DURATION_SECONDS:
        raise InvalidInput(f"`{text}` is longer than 24 hours, the longest interview allowed.")
    return seconds


def parse_tokens(text: str) -> int:
    """``"20k"`` -> 20000, ``"15000"`` -> 15000."""
    body = text.strip().lower().lstrip("+").replace("_", "").replace(",", "")
    match = _TOKENS.match(body)
    if match is None:
        raise InvalidInput(
            f"`{text}` is not a token budget. Use a whole number with an optional `k`, "
            "e.g. `20k` or `15000`."
        )
    if _too_long(match["n"].split(".")[0]):
        raise InvalidInput(f"`{text}` is more than {MAX_TOKEN_BUDGET:,} tokens.")
    value = float(match["n"]) * (1000 if match["k"] else 1)
    if value != int(value) or value <= 0:
        raise InvalidInput(f"`{text}` must be a positive whole number of tokens.")
    if value > MAX_TOKEN_BUDGET:
        raise InvalidInput(f"`{text}` is more than {MAX_TOKEN_BUDGET:,} tokens.")
    return int(value)


def format_duration(seconds: int) -> str:
    """4530 -> ``"1h 15m 30s"``, 300 -> ``"5m"``; negative values are shown as ``"0s"``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return " ".join(p for p in parts if p) or "0s"
