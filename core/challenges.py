"""The challenge library: built-in challenges shipped as TOML files, plus custom ones in the DB.

Built-in files (``core/challenges/*.toml``) and custom files (``interview-buddy challenges add``)
are checked by the same rules (:mod:`core.challenge_file`).
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from core.challenge_file import challenge_from_toml
from core.errors import NotFound
from core.models import Challenge
from core.ports import ChallengeRepository

DEFAULT_SYSTEM_PROMPT = """\
You are the AI assistant in a technical interview. The candidate may use you the way they would \
use an AI assistant at work: ask questions, discuss approaches, have code reviewed or written. \
Be accurate and concise. The interviewers will later read this conversation.

The candidate's challenge:
# {title} ({difficulty})
{description}"""


@lru_cache(maxsize=1)
def builtin_challenges() -> tuple[Challenge, ...]:
    """The challenges shipped in ``core/challenges/*.toml``, sorted by slug."""
    folder = files("core") / "challenges"
    found = [
        challenge_from_toml(entry.read_bytes(), source=entry.name, builtin=True)
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    ]
    return tuple(sorted(found, key=lambda c: c.slug))


def builtin_challenge(slug: str) -> Challenge | None:
    """The built-in challenge with this slug, if there is one."""
    return next((c for c in builtin_challenges() if c.slug == slug), None)


def system_prompt_for(challenge: Challenge) -> str:
    template = challenge.system_prompt or DEFAULT_SYSTEM_PROMPT
    return template.format(
        title=challenge.title, difficulty=challenge.difficulty, description=challenge.description
    )


async def find_challenge(
    repository: ChallengeRepository, workspace_id: str | None, slug: str
) -> Challenge:
    """The workspace's custom challenge, else a global custom one, else the built-in one."""
    key = slug.strip().lower()
    custom = await repository.get(workspace_id, key)
    if custom is not None:
        return custom
    builtin = builtin_challenge(key)
    if builtin is not None:
        return builtin
    known = ", ".join(c.slug for c in await list_challenges(repository, workspace_id))
    raise NotFound(f"There is no challenge `{slug}`. Known challenges: {known}.")


async def list_challenges(
    repository: ChallengeRepository, workspace_id: str | None
) -> list[Challenge]:
    """Custom challenges and the built-ins they do not replace, by slug."""
    custom = await repository.list(workspace_id)
    slugs = {c.slug for c in custom}
    merged = custom + [c for c in builtin_challenges() if c.slug not in slugs]
    return sorted(merged, key=lambda c: c.slug)
