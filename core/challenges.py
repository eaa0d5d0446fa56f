"""The challenge library: built-in challenges shipped as TOML files, plus custom ones in the DB."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib.resources import files
from typing import Any

from core.errors import InvalidInput, NotFound
from core.models import Challenge
from core.parsing import parse_duration, parse_tokens
from core.ports import InterviewStore

DEFAULT_SYSTEM_PROMPT = """\
You are the AI assistant in a technical interview. The candidate may use you the way they would \
use an AI assistant at work: ask questions, discuss approaches, have code reviewed or written. \
Be accurate and concise. The interviewers will later read this conversation.

The candidate's challenge:
# {title} ({difficulty})
{description}"""


def challenge_from_mapping(data: dict[str, Any], *, builtin: bool) -> Challenge:
    """Build a Challenge from parsed TOML (or any mapping); raises InvalidInput on bad data."""
    missing = [k for k in ("slug", "title", "difficulty", "description") if not data.get(k)]
    if missing:
        raise InvalidInput(f"challenge is missing {', '.join(missing)}")
    temperature = data.get("temperature")
    return Challenge(
        slug=str(data["slug"]).strip().lower(),
        title=str(data["title"]),
        difficulty=str(data["difficulty"]),
        description=str(data["description"]).strip(),
        time_limit_s=parse_duration(str(data.get("time_limit", "45m"))),
        token_budget=parse_tokens(str(data.get("token_budget", "20k"))),
        rubric=tuple(str(item) for item in data.get("rubric", [])),
        system_prompt=data.get("system_prompt"),
        model=data.get("model"),
        temperature=float(temperature) if temperature is not None else None,
        builtin=builtin,
    )


@lru_cache(maxsize=1)
def builtin_challenges() -> tuple[Challenge, ...]:
    """The challenges shipped in ``core/challenges/*.toml``, sorted by slug."""
    folder = files("core") / "challenges"
    found = [
        challenge_from_mapping(tomllib.loads(entry.read_text("utf-8")), builtin=True)
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    ]
    return tuple(sorted(found, key=lambda c: c.slug))


def system_prompt_for(challenge: Challenge) -> str:
    template = challenge.system_prompt or DEFAULT_SYSTEM_PROMPT
    return template.format(
        title=challenge.title, difficulty=challenge.difficulty, description=challenge.description
    )


class ChallengeLibrary:
    """Looks challenges up by slug: the workspace's custom ones first, then the built-ins."""

    def __init__(self, store: InterviewStore) -> None:
        self._store = store

    async def get(self, workspace_id: str | None, slug: str) -> Challenge:
        key = slug.strip().lower()
        custom = await self._store.get_custom_challenge(workspace_id, key)
        if custom is not None:
            return custom
        for challenge in builtin_challenges():
            if challenge.slug == key:
                return challenge
        known = ", ".join(c.slug for c in await self.list(workspace_id))
        raise NotFound(f"There is no challenge `{slug}`. Known challenges: {known}.")

    async def list(self, workspace_id: str | None) -> list[Challenge]:
        custom = await self._store.list_custom_challenges(workspace_id)
        slugs = {c.slug for c in custom}
        merged = custom + [c for c in builtin_challenges() if c.slug not in slugs]
        return sorted(merged, key=lambda c: c.slug)
