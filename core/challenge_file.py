"""Challenge files: the TOML format of built-in and custom challenges, checked key by key.

:class:`ChallengeFile` is the one set of rules for ``core/challenges/*.toml`` and for files
added with ``interview-buddy challenges add``; errors are one line per problem.
"""

from __future__ import annotations

import json
import re
import tomllib
from difflib import get_close_matches
from string import Formatter
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from core.errors import InvalidInput
from core.models import Challenge
from core.parsing import (
    MAX_DURATION_SECONDS,
    MAX_TOKEN_BUDGET,
    MIN_TIME_LIMIT_SECONDS,
    MIN_TOKEN_BUDGET,
    looks_like_duration,
    looks_like_tokens,
    parse_duration,
    parse_tokens,
)

DIFFICULTIES = ("easy", "medium", "hard")
"""The difficulties a challenge may have (the ones the built-ins use)."""

PLACEHOLDERS = ("title", "difficulty", "description")
"""What :func:`system_prompt_for` fills into a challenge's ``system_prompt``."""

MAX_SLUG_LENGTH = 64
MAX_TITLE_LENGTH = 200

# A slug is typed as one word after `/interview start @candidate`; a word starting with a digit
# is read as a duration or token budget there, so a slug starts with a letter.
_SLUG = re.compile(r"[a-z][a-z0-9-]*")


def _show(value: object, limit: int = 40) -> str:
    """A value as it would look in TOML (strings in double quotes), cut short if long."""
    if isinstance(value, float):
        return f"{value:g}"
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 2] + "…" + text[-1]


_DIFFICULTY_CHOICES = ", ".join(_show(d) for d in DIFFICULTIES)


def _check_slug(value: str) -> str:
    if not value:
        raise ValueError('must not be empty, e.g. slug = "two-sum"')
    if len(value) > MAX_SLUG_LENGTH:
        raise ValueError(f"{_show(value)} is {len(value)} characters; at most {MAX_SLUG_LENGTH}")
    if not _SLUG.fullmatch(value):
        suggestion = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
        example = suggestion if _SLUG.fullmatch(suggestion) else "two-sum"
        if value[0].isdigit() and re.fullmatch(r"[a-z0-9-]+", value):
            raise ValueError(
                f"{_show(value)} must start with a letter (/interview start reads a word "
                'starting with a digit as a duration or token budget), e.g. "two-sum"'
            )
        raise ValueError(
            f"{_show(value)} must be lower-case letters, digits and hyphens (e.g. {_show(example)})"
        )
    return value


def _check_title(value: str) -> str:
    title = value.strip()
    if not title:
        raise ValueError('must not be empty, e.g. title = "Two Sum"')
    if "\n" in title or "\r" in title:
        raise ValueError("must be one line")
    if len(title) > MAX_TITLE_LENGTH:
        raise ValueError(f"is {len(title)} characters; at most {MAX_TITLE_LENGTH}")
    return title


def _check_difficulty(value: str) -> str:
    if value not in DIFFICULTIES:
        close = get_close_matches(value.strip().lower(), DIFFICULTIES, n=1)
        hint = f" (did you mean {_show(close[0])}?)" if close else ""
        raise ValueError(f"{_show(value)} must be one of {_DIFFICULTY_CHOICES}{hint}")
    return value


def _check_description(value: str) -> str:
    description = value.strip()
    if not description:
        raise ValueError("must not be empty; it is the problem shown to the candidate")
    return description


def _check_time_limit(value: str) -> str:
    if not looks_like_duration(value):
        raise ValueError(f'{_show(value)} is not a duration; use e.g. "45m", "1h" or "1h30m"')
    try:
        seconds = parse_duration(value)
    except InvalidInput:
        seconds = 0
    if not MIN_TIME_LIMIT_SECONDS <= seconds <= MAX_DURATION_SECONDS:
        raise ValueError(f'{_show(value)} must be from 1 minute to 24 hours, e.g. "45m"')
    return value


def _check_token_budget(value: int | str) -> int | str:
    if isinstance(value, str) and not looks_like_tokens(value.replace("_", "").replace(",", "")):
        raise ValueError(
            f"{_show(value)} is not a token budget; use a whole number with an optional k, "
            'e.g. "20k" or 20000'
        )
    try:
        tokens = parse_tokens(str(value))
    except InvalidInput:
        tokens = 0
    if not MIN_TOKEN_BUDGET <= tokens <= MAX_TOKEN_BUDGET:
        raise ValueError(
            f"{_show(value)} must be a whole number from {MIN_TOKEN_BUDGET:,} to "
            f'{MAX_TOKEN_BUDGET:,} tokens, e.g. "20k"'
        )
    return value


def _check_rubric_item(value: str) -> str:
    item = value.strip()
    if not item:
        raise ValueError("must not be empty")
    return item


_BRACES_HINT = "write {{ and }} for a literal brace"


def _check_system_prompt(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty; leave it out to use the default prompt")
    try:
        names = [name for _, name, _, _ in Formatter().parse(value) if name is not None]
    except ValueError as exc:
        raise ValueError(f"broken braces ({exc}); {_BRACES_HINT}") from None
    unknown = list(dict.fromkeys(name for name in names if name not in PLACEHOLDERS))
    if unknown:
        shown = ", ".join("{" + name + "}" for name in unknown)
        allowed = "{title}, {difficulty} and {description}"
        noun = "placeholder" if len(unknown) == 1 else "placeholders"
        raise ValueError(f"unknown {noun} {shown}; only {allowed} are filled in; {_BRACES_HINT}")
    try:
        value.format(title="Title", difficulty="easy", description="Description")
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ValueError(f"cannot be filled in: {exc}") from None
    return value


def _check_model(value: str) -> str:
    model = value.strip()
    if not model:
        raise ValueError('must not be empty; leave it out to use LLM_MODEL, e.g. model = "gpt-4o"')
    return model


def _check_temperature(value: float) -> float:
    if not 0 <= value <= 2:  # also refuses nan
        raise ValueError(f"{_show(value)} is out of range; it must be a number from 0 to 2")
    return value


class ChallengeFile(BaseModel):
    """One challenge file, key by key, as written in TOML (validated, not yet converted)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    slug: Annotated[str, AfterValidator(_check_slug)]
    title: Annotated[str, AfterValidator(_check_title)]
    difficulty: Annotated[str, AfterValidator(_check_difficulty)]
    description: Annotated[str, AfterValidator(_check_description)]
    # Suggested limits; left out, the settings DEFAULT_TIME_LIMIT / DEFAULT_TOKEN_BUDGET apply.
    time_limit: Annotated[str, AfterValidator(_check_time_limit)] | None = None
    token_budget: Annotated[int | str, AfterValidator(_check_token_budget)] | None = None
    rubric: list[Annotated[str, AfterValidator(_check_rubric_item)]] = []
    system_prompt: Annotated[str, AfterValidator(_check_system_prompt)] | None = None
    model: Annotated[str, AfterValidator(_check_model)] | None = None
    temperature: Annotated[float, AfterValidator(_check_temperature)] | None = None

    def to_challenge(self, *, builtin: bool) -> Challenge:
        tokens = self.token_budget
        return Challenge(
            slug=self.slug,
            title=self.title,
            difficulty=self.difficulty,
            description=self.description,
            time_limit_s=None if self.time_limit is None else parse_duration(self.time_limit),
            token_budget=None if tokens is None else parse_tokens(str(tokens)),
            rubric=tuple(self.rubric),
            system_prompt=self.system_prompt,
            model=self.model,
            temperature=self.temperature,
            builtin=builtin,
        )


KEYS = tuple(ChallengeFile.model_fields)

_RUBRIC_EXAMPLE = 'rubric = ["clear naming", "tests"]'

# What each key must hold, for type errors ("slug: must be ...") and missing keys.
_EXPECTED = {
    "slug": 'a string of lower-case letters, digits and hyphens, e.g. slug = "two-sum"',
    "title": 'a string, e.g. title = "Two Sum"',
    "difficulty": f'one of {_DIFFICULTY_CHOICES}, e.g. difficulty = "medium"',
    "description": 'a string, e.g. description = """Write a function ..."""',
    "time_limit": 'a duration string, e.g. time_limit = "45m" or "1h30m"',
    "token_budget": 'a whole number or a string with k, e.g. token_budget = "20k" or 20000',
    "rubric": f"a list of strings, e.g. {_RUBRIC_EXAMPLE}",
    "system_prompt": 'a string, e.g. system_prompt = "You help with {title}. {description}"',
    "model": 'a string, e.g. model = "gpt-4o-mini"',
    "temperature": "a number from 0 to 2, e.g. temperature = 0.2",
}
_REQUIRED_EXAMPLE = {
    "slug": 'slug = "two-sum"',
    "title": 'title = "Two Sum"',
    "difficulty": 'difficulty = "medium" (one of ' + ", ".join(DIFFICULTIES) + ")",
    "description": 'description = """Write a function ..."""',
}


def _problem(error: ErrorDetails) -> str:
    """One line for one pydantic error, naming the key and what is expected."""
    loc = error["loc"]
    key = str(loc[0]) if loc else ""
    kind = error["type"]
    if kind == "extra_forbidden":
        close = get_close_matches(key, KEYS, n=1)
        hint = f"did you mean {_show(close[0])}?" if close else "known keys: " + ", ".join(KEYS)
        return f"unknown key {_show(key, limit=60)} ({hint})"
    if kind == "missing":
        return f"{key}: required, e.g. {_REQUIRED_EXAMPLE.get(key, key)}"
    if kind == "value_error":
        reason = str(error.get("ctx", {}).get("error", error["msg"]))
        if len(loc) > 1 and isinstance(loc[1], int):
            return f"{key}: item {loc[1] + 1} {reason}"
        return f"{key}: {reason}"
    if key == "rubric" and len(loc) > 1 and isinstance(loc[1], int):
        return f"rubric: item {loc[1] + 1} must be a string, e.g. {_RUBRIC_EXAMPLE}"
    if key in _EXPECTED:
        return f"{key}: must be {_EXPECTED[key]}"
    return f"{key or 'file'}: {error['msg']}"


def challenge_from_mapping(data: dict[str, Any], *, builtin: bool) -> Challenge:
    """Build a Challenge from parsed TOML (or any mapping).

    Raises InvalidInput with one line per problem, each naming the key and what is expected.
    """
    try:
        parsed = ChallengeFile.model_validate(data)
    except ValidationError as exc:
        problems = list(dict.fromkeys(_problem(error) for error in exc.errors()))
        raise InvalidInput("\n".join(problems)) from None
    return parsed.to_challenge(builtin=builtin)


def challenge_from_toml(content: bytes, *, source: str, builtin: bool) -> Challenge:
    """Decode, parse and check a challenge file; every line of the error starts ``source: ``."""
    try:
        text = content.decode("utf-8").removeprefix("\ufeff")  # a BOM is harmless
        return challenge_from_mapping(tomllib.loads(text), builtin=builtin)
    except UnicodeDecodeError as exc:
        problems = f"not UTF-8 text (byte 0x{content[exc.start]:02x} at position {exc.start})"
    except tomllib.TOMLDecodeError as exc:
        problems = f"not valid TOML: {exc}"
    except InvalidInput as exc:
        problems = str(exc)
    raise InvalidInput("\n".join(f"{source}: {line}" for line in problems.splitlines()))
