"""Challenge files: one model checks built-in and custom TOML; `challenges add` refuses clearly."""

from __future__ import annotations

import asyncio
import logging
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bot.app import open_database
from bot.cli import main
from bot.settings import load_settings
from core.challenge_file import (
    DIFFICULTIES,
    KEYS,
    ChallengeFile,
    challenge_from_mapping,
    challenge_from_toml,
)
from core.challenges import DEFAULT_SYSTEM_PROMPT, builtin_challenges, system_prompt_for
from core.commands import parse_command
from core.errors import InvalidInput
from core.models import Challenge

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "core" / "challenges"
BUILTIN_FILES = sorted(BUILTIN_DIR.glob("*.toml"))
BUILTIN_SLUGS = [
    "bug-hunt",
    "log-analyzer",
    "lru-cache",
    "merge-intervals",
    "rate-limiter",
    "two-sum",
    "url-shortener",
]

VALID = """\
slug = "queue-design"
title = "Queue Design"
difficulty = "hard"
time_limit = "1h30m"
token_budget = 25000
description = \"\"\"
Design a persistent job queue.
\"\"\"
rubric = ["clear naming", "tests"]
system_prompt = "Help with {title} ({difficulty}). {{Be brief.}}\\n{description}"
model = "gpt-4o"
temperature = 0.3
"""

MINIMAL = {"slug": "two-sum", "title": "Two Sum", "difficulty": "easy", "description": "Do it."}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("SLACK_BOT_TOKEN", "DISCORD_BOT_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/bot.db")
    # Log handlers left by other tests would add "schema upgraded" lines to stderr.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    return tmp_path


def write(folder: Path, name: str, content: str | bytes) -> str:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(textwrap.dedent(content), "utf-8")
    return name  # relative to the working directory, as a person would type it


def toml_with(**changes: str) -> str:
    """The minimal valid file with some lines replaced (value "" drops the key)."""
    values = {key: f'"{value}"' for key, value in MINIMAL.items()}
    values.update(changes)
    return "".join(f"{key} = {value}\n" for key, value in values.items() if value)


def add(*args: str) -> Result:
    return CliRunner().invoke(main, ["challenges", "add", *args])


def listing() -> list[str]:
    result = CliRunner().invoke(main, ["challenges", "list"])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def custom_challenges() -> list[Challenge]:
    async def go() -> list[Challenge]:
        database = await open_database(load_settings())
        try:
            async with database() as uow:
                return await uow.challenges.list(None)
        finally:
            await database.close()

    return asyncio.run(go())


def assert_refused(result: Result, *lines: str) -> None:
    """Exit code 2, exactly these lines on stderr, no traceback, nothing saved."""
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == list(lines)
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert custom_challenges() == []
    assert [line.split()[0] for line in listing()] == BUILTIN_SLUGS


# -- challenges add: refusals ------------------------------------------------------------


def test_slug_with_a_space_is_refused(clean_env: Path) -> None:
    name = write(clean_env, "two-sum.toml", toml_with(slug='"two sum"'))
    assert_refused(
        add(name),
        'two-sum.toml: slug: "two sum" must be lower-case letters, digits and hyphens '
        '(e.g. "two-sum")',
    )


def test_slug_with_a_slash_is_refused(clean_env: Path) -> None:
    name = write(clean_env, "c.toml", toml_with(slug='"team/two-sum"'))
    assert_refused(
        add(name),
        'c.toml: slug: "team/two-sum" must be lower-case letters, digits and hyphens '
        '(e.g. "team-two-sum")',
    )


def test_unknown_difficulty_is_refused(clean_env: Path) -> None:
    name = write(clean_env, "c.toml", toml_with(difficulty='"extreme"'))
    assert_refused(
        add(name), 'c.toml: difficulty: "extreme" must be one of "easy", "medium", "hard"'
    )


def test_rubric_that_is_not_a_list_is_refused(clean_env: Path) -> None:
    name = write(clean_env, "c.toml", toml_with(rubric='"notalist"'))
    assert_refused(
        add(name),
        'c.toml: rubric: must be a list of strings, e.g. rubric = ["clear naming", "tests"]',
    )


def test_unknown_key_is_refused_with_a_suggestion(clean_env: Path) -> None:
    name = write(clean_env, "c.toml", toml_with(time_limt='"30m"'))
    assert_refused(add(name), 'c.toml: unknown key "time_limt" (did you mean "time_limit"?)')


def test_non_utf8_file_is_refused(clean_env: Path) -> None:
    content = toml_with(title='"Caf\u00e9"').encode("latin-1")
    name = write(clean_env, "c.toml", content)
    position = content.index(b"\xe9")
    assert_refused(add(name), f"c.toml: not UTF-8 text (byte 0xe9 at position {position})")


def test_temperature_that_is_a_string_is_refused(clean_env: Path) -> None:
    name = write(clean_env, "c.toml", toml_with(temperature='"hot"'))
    assert_refused(
        add(name), "c.toml: temperature: must be a number from 0 to 2, e.g. temperature = 0.2"
    )


def test_invalid_toml_is_refused_with_tomllibs_message(clean_env: Path) -> None:
    content = 'slug = "two-sum"\ntitle "Two Sum"\n'
    with pytest.raises(tomllib.TOMLDecodeError) as caught:
        tomllib.loads(content)
    assert str(caught.value) == (  # what this Python's tomllib says, quoted verbatim below
        "Expected '=' after a key in a key/value pair (at line 2, column 7)"
    )
    assert_refused(
        add(write(clean_env, "c.toml", content)), f"c.toml: not valid TOML: {caught.value}"
    )


def test_every_problem_gets_its_own_line(clean_env: Path) -> None:
    content = toml_with(slug="", difficulty='"Hard"', rubric='["a", ""]', time_limt='"1h"')
    name = write(clean_env, "c.toml", content)
    assert_refused(
        add(name),
        'c.toml: slug: required, e.g. slug = "two-sum"',
        'c.toml: difficulty: "Hard" must be one of "easy", "medium", "hard" (did you mean "hard"?)',
        "c.toml: rubric: item 2 must not be empty",
        'c.toml: unknown key "time_limt" (did you mean "time_limit"?)',
    )


def test_system_prompt_with_an_unknown_placeholder_is_refused(clean_env: Path) -> None:
    name = write(clean_env, "c.toml", toml_with(system_prompt='"You work for {company}."'))
    assert_refused(
        add(name),
        "c.toml: system_prompt: unknown placeholder {company}; only {title}, {difficulty} and "
        "{description} are filled in; write {{ and }} for a literal brace",
    )


def test_unreadable_file_is_refused(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write(clean_env, "c.toml", toml_with())

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    with monkeypatch.context() as patch:  # chmod would not stop root
        patch.setattr(Path, "read_bytes", refuse)
        result = add(name)
    assert_refused(result, "c.toml: cannot read the file (Permission denied)")


# -- challenges add: saving and replacing --------------------------------------------------


def test_valid_file_is_saved_and_listed(clean_env: Path) -> None:
    result = add(write(clean_env, "queue.toml", VALID))
    assert result.exit_code == 0, result.output
    assert result.stdout == "Saved challenge queue-design (Queue Design).\n"
    [saved] = custom_challenges()
    assert saved == Challenge(
        slug="queue-design",
        title="Queue Design",
        difficulty="hard",
        description="Design a persistent job queue.",
        time_limit_s=5400,
        token_budget=25000,
        rubric=("clear naming", "tests"),
        system_prompt="Help with {title} ({difficulty}). {{Be brief.}}\n{description}",
        model="gpt-4o",
        temperature=0.3,
        builtin=False,
    )
    assert system_prompt_for(saved) == (
        "Help with Queue Design (hard). {Be brief.}\nDesign a persistent job queue."
    )
    assert "queue-design       hard    custom   Queue Design" in listing()


def test_existing_custom_challenge_needs_replace(clean_env: Path) -> None:
    assert add(write(clean_env, "queue.toml", VALID)).exit_code == 0
    changed = VALID.replace('title = "Queue Design"', 'title = "Queue Design v2"')
    result = add(write(clean_env, "queue2.toml", changed))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "queue2.toml: a custom challenge queue-design (Queue Design) already exists; "
        "pass --replace to replace it"
    ]
    assert [c.title for c in custom_challenges()] == ["Queue Design"]


def test_replace_overwrites_a_custom_challenge(clean_env: Path) -> None:
    assert add(write(clean_env, "queue.toml", VALID)).exit_code == 0
    changed = VALID.replace('title = "Queue Design"', 'title = "Queue Design v2"')
    result = add("--replace", write(clean_env, "queue2.toml", changed))
    assert result.exit_code == 0, result.output
    assert result.stdout == "Replaced custom challenge queue-design (Queue Design).\n"
    assert [c.title for c in custom_challenges()] == ["Queue Design v2"]


def test_shadowing_a_builtin_challenge_needs_replace(clean_env: Path) -> None:
    name = write(clean_env, "two-sum.toml", toml_with(title='"Our Two Sum"'))
    assert_refused(
        add(name),
        "two-sum.toml: a built-in challenge two-sum (Two Sum) already exists; "
        "pass --replace to replace it",
    )


def test_replace_shadows_a_builtin_challenge_and_list_marks_it(clean_env: Path) -> None:
    name = write(clean_env, "two-sum.toml", toml_with(title='"Our Two Sum"'))
    result = add(name, "--replace")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Replaced built-in challenge two-sum (Two Sum) for this installation.\n"
    assert [c.title for c in custom_challenges()] == ["Our Two Sum"]
    lines = listing()
    assert [line.split()[0] for line in lines] == BUILTIN_SLUGS
    assert "two-sum            easy    custom   Our Two Sum (replaces built-in Two Sum)" in lines
    assert "lru-cache          medium  built-in LRU Cache" in lines

    again = add(name)  # now the custom one exists, and it is the one that would be overwritten
    assert again.exit_code == 2
    assert again.stderr.splitlines() == [
        "two-sum.toml: a custom challenge two-sum (Our Two Sum) already exists; "
        "pass --replace to replace it"
    ]


def test_replace_without_anything_to_replace_just_saves(clean_env: Path) -> None:
    result = add("--replace", write(clean_env, "queue.toml", VALID))
    assert result.exit_code == 0, result.output
    assert result.stdout == "Saved challenge queue-design (Queue Design).\n"


# -- the built-in files obey the same model --------------------------------------------------


@pytest.mark.parametrize("path", BUILTIN_FILES, ids=lambda p: p.name)
def test_builtin_file_passes_the_model(path: Path) -> None:
    parsed = ChallengeFile.model_validate(tomllib.loads(path.read_text("utf-8")))
    assert f"{parsed.slug}.toml" == path.name
    assert parsed.rubric and parsed.description


def test_builtin_challenges_still_loads_all_seven() -> None:
    found = builtin_challenges()
    assert [c.slug for c in found] == BUILTIN_SLUGS
    assert len(BUILTIN_FILES) == 7
    assert all(c.builtin for c in found)
    two_sum = next(c for c in found if c.slug == "two-sum")
    assert (two_sum.title, two_sum.time_limit_s, two_sum.token_budget) == ("Two Sum", 1800, 15000)


def test_difficulties_are_the_ones_the_builtins_use() -> None:
    assert {c.difficulty for c in builtin_challenges()} == set(DIFFICULTIES)


# -- the model, key by key --------------------------------------------------------------------


def problems(**changes: Any) -> list[str]:
    """The lines challenge_from_mapping refuses MINIMAL with these changes (None drops a key)."""
    data = {**MINIMAL, **changes}
    data = {key: value for key, value in data.items() if value is not None}
    with pytest.raises(InvalidInput) as caught:
        challenge_from_mapping(data, builtin=False)
    return str(caught.value).splitlines()


def accepted(**changes: Any) -> Challenge:
    return challenge_from_mapping({**MINIMAL, **changes}, builtin=False)


def test_optional_keys_left_out_and_strings_stripped() -> None:
    challenge = accepted(title="  Two Sum ", description="\n  Do it.\n", rubric=[" a "])
    assert challenge == Challenge(
        slug="two-sum",
        title="Two Sum",
        difficulty="easy",
        description="Do it.",
        time_limit_s=None,  # the bot's defaults apply
        token_budget=None,
        rubric=("a",),
        builtin=False,
    )


def test_missing_keys_are_named_one_line_each() -> None:
    with pytest.raises(InvalidInput) as caught:
        challenge_from_mapping({}, builtin=True)
    assert str(caught.value).splitlines() == [
        'slug: required, e.g. slug = "two-sum"',
        'title: required, e.g. title = "Two Sum"',
        'difficulty: required, e.g. difficulty = "medium" (one of easy, medium, hard)',
        'description: required, e.g. description = """Write a function ..."""',
    ]


@pytest.mark.parametrize("slug", ["a", "two-sum", "lru-cache-2", "a-", "x" * 64])
def test_slugs_accepted(slug: str) -> None:
    assert accepted(slug=slug).slug == slug


@pytest.mark.parametrize(
    ("slug", "line"),
    [
        ("", 'slug: must not be empty, e.g. slug = "two-sum"'),
        (
            "Two-Sum",
            'slug: "Two-Sum" must be lower-case letters, digits and hyphens (e.g. "two-sum")',
        ),
        (
            "two_sum",
            'slug: "two_sum" must be lower-case letters, digits and hyphens (e.g. "two-sum")',
        ),
        ("-x", 'slug: "-x" must be lower-case letters, digits and hyphens (e.g. "x")'),
        (
            "two-sum\n",
            'slug: "two-sum\\n" must be lower-case letters, digits and hyphens (e.g. "two-sum")',
        ),
        ("ünï", 'slug: "ünï" must be lower-case letters, digits and hyphens (e.g. "n")'),
        (
            "2sum",
            'slug: "2sum" must start with a letter (/interview start reads a word starting with a '
            'digit as a duration or token budget), e.g. "two-sum"',
        ),
        ("x" * 65, 'slug: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…" is 65 characters; at most 64'),
        (
            7,
            "slug: must be a string of lower-case letters, digits and hyphens, e.g. slug = "
            '"two-sum"',
        ),
    ],
)
def test_slugs_refused(slug: object, line: str) -> None:
    assert problems(slug=slug) == [line]


def test_an_accepted_slug_is_one_word_to_interview_start() -> None:
    command = parse_command(
        "start <@U1> 45m 20k lru-cache-2", lambda w: "U1" if w == "<@U1>" else None
    )
    assert command.challenge == "lru-cache-2"
    # Why a slug may not start with a digit: the grammar takes such a word for a budget.
    with pytest.raises(InvalidInput):
        parse_command("start <@U1> 2sum", lambda w: "U1" if w == "<@U1>" else None)


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({"title": " "}, 'title: must not be empty, e.g. title = "Two Sum"'),
        ({"title": "a\nb"}, "title: must be one line"),
        ({"title": "t" * 201}, "title: is 201 characters; at most 200"),
        ({"title": ["x"]}, 'title: must be a string, e.g. title = "Two Sum"'),
        (
            {"difficulty": "Easy"},
            'difficulty: "Easy" must be one of "easy", "medium", "hard" (did you mean "easy"?)',
        ),
        (
            {"difficulty": 1},
            'difficulty: must be one of "easy", "medium", "hard", e.g. difficulty = "medium"',
        ),
        (
            {"description": "  \n"},
            "description: must not be empty; it is the problem shown to the candidate",
        ),
        (
            {"time_limit": 45},
            'time_limit: must be a duration string, e.g. time_limit = "45m" or "1h30m"',
        ),
        (
            {"time_limit": "soon"},
            'time_limit: "soon" is not a duration; use e.g. "45m", "1h" or "1h30m"',
        ),
        (
            {"time_limit": "45"},
            'time_limit: "45" is not a duration; use e.g. "45m", "1h" or "1h30m"',
        ),
        ({"time_limit": "59s"}, 'time_limit: "59s" must be from 1 minute to 24 hours, e.g. "45m"'),
        ({"time_limit": "0m"}, 'time_limit: "0m" must be from 1 minute to 24 hours, e.g. "45m"'),
        (
            {"time_limit": "24h1m"},
            'time_limit: "24h1m" must be from 1 minute to 24 hours, e.g. "45m"',
        ),
        (
            {"token_budget": 999},
            'token_budget: 999 must be a whole number from 1,000 to 10,000,000 tokens, e.g. "20k"',
        ),
        (
            {"token_budget": "0.5k"},
            'token_budget: "0.5k" must be a whole number from 1,000 to 10,000,000 tokens, '
            'e.g. "20k"',
        ),
        (
            {"token_budget": 10_000_001},
            "token_budget: 10000001 must be a whole number from 1,000 to 10,000,000 tokens, "
            'e.g. "20k"',
        ),
        (
            {"token_budget": "1.5"},
            'token_budget: "1.5" must be a whole number from 1,000 to 10,000,000 tokens, e.g. '
            '"20k"',
        ),
        (
            {"token_budget": "lots"},
            'token_budget: "lots" is not a token budget; use a whole number with an optional '
            'k, e.g. "20k" or 20000',
        ),
        (
            {"token_budget": 2.5e4},
            "token_budget: must be a whole number or a string with k, e.g. token_budget = "
            '"20k" or 20000',
        ),
        (
            {"token_budget": True},
            "token_budget: must be a whole number or a string with k, e.g. token_budget = "
            '"20k" or 20000',
        ),
        (
            {"rubric": "notalist"},
            'rubric: must be a list of strings, e.g. rubric = ["clear naming", "tests"]',
        ),
        (
            {"rubric": ["ok", 3]},
            'rubric: item 2 must be a string, e.g. rubric = ["clear naming", "tests"]',
        ),
        ({"rubric": ["ok", " "]}, "rubric: item 2 must not be empty"),
        (
            {"system_prompt": ""},
            "system_prompt: must not be empty; leave it out to use the default prompt",
        ),
        (
            {"system_prompt": "Hi {name} {}"},
            "system_prompt: unknown placeholders {name}, {}; only {title}, {difficulty} and "
            "{description} are filled in; write {{ and }} for a literal brace",
        ),
        (
            {"system_prompt": "{title.upper}"},
            "system_prompt: unknown placeholder {title.upper}; only {title}, {difficulty} and "
            "{description} are filled in; write {{ and }} for a literal brace",
        ),
        (
            {"system_prompt": "Use a dict }"},
            "system_prompt: broken braces (Single '}' encountered in format string); write {{ "
            "and }} for a literal brace",
        ),
        (
            {"system_prompt": "Solve {title"},
            "system_prompt: broken braces (expected '}' before end of string); write {{ and "
            "}} for a literal brace",
        ),
        (
            {"system_prompt": "{title:d}"},
            "system_prompt: cannot be filled in: Unknown format code 'd' for object of type 'str'",
        ),
        (
            {"model": " "},
            'model: must not be empty; leave it out to use LLM_MODEL, e.g. model = "gpt-4o"',
        ),
        ({"model": 4}, 'model: must be a string, e.g. model = "gpt-4o-mini"'),
        (
            {"temperature": "hot"},
            "temperature: must be a number from 0 to 2, e.g. temperature = 0.2",
        ),
        (
            {"temperature": "0.5"},
            "temperature: must be a number from 0 to 2, e.g. temperature = 0.2",
        ),
        (
            {"temperature": True},
            "temperature: must be a number from 0 to 2, e.g. temperature = 0.2",
        ),
        ({"temperature": 2.5}, "temperature: 2.5 is out of range; it must be a number from 0 to 2"),
        (
            {"temperature": -0.1},
            "temperature: -0.1 is out of range; it must be a number from 0 to 2",
        ),
        (
            {"temperature": float("nan")},
            "temperature: nan is out of range; it must be a number from 0 to 2",
        ),
        (
            {"temperature": float("inf")},
            "temperature: inf is out of range; it must be a number from 0 to 2",
        ),
        ({"nmae": "x"}, 'unknown key "nmae" (known keys: ' + ", ".join(KEYS) + ")"),
        ({"titel": "x"}, 'unknown key "titel" (did you mean "title"?)'),
        (
            {"challenge": {"slug": "x"}},
            'unknown key "challenge" (known keys: ' + ", ".join(KEYS) + ")",
        ),
    ],
)
def test_values_refused(changes: dict[str, Any], line: str) -> None:
    assert problems(**changes) == [line]


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"time_limit": "1m"}, "time_limit_s", 60),
        ({"time_limit": "24h"}, "time_limit_s", 86400),
        ({"time_limit": "1h30m"}, "time_limit_s", 5400),
        ({"token_budget": 1000}, "token_budget", 1000),
        ({"token_budget": "1k"}, "token_budget", 1000),
        ({"token_budget": "20k"}, "token_budget", 20000),
        ({"token_budget": "15000"}, "token_budget", 15000),
        ({"token_budget": 10_000_000}, "token_budget", 10_000_000),
        ({"temperature": 0}, "temperature", 0.0),
        ({"temperature": 2}, "temperature", 2.0),
        ({"temperature": 0.7}, "temperature", 0.7),
        ({"rubric": []}, "rubric", ()),
        ({"title": "t" * 200}, "title", "t" * 200),
        ({"model": " gpt-4o "}, "model", "gpt-4o"),
        (
            {"system_prompt": "{title}{difficulty}{description} {{x}}"},
            "system_prompt",
            "{title}{difficulty}{description} {{x}}",
        ),
    ],
)
def test_values_accepted(changes: dict[str, Any], field: str, value: object) -> None:
    assert getattr(accepted(**changes), field) == value


def test_default_system_prompt_passes_the_check() -> None:
    challenge = accepted(system_prompt=DEFAULT_SYSTEM_PROMPT)
    assert system_prompt_for(challenge).endswith("# Two Sum (easy)\nDo it.")


def test_toml_errors_are_prefixed_with_the_source() -> None:
    with pytest.raises(InvalidInput) as caught:
        challenge_from_toml(b'slug = "a b"\nfoo = 1\n', source="x.toml", builtin=False)
    assert str(caught.value).splitlines() == [
        'x.toml: slug: "a b" must be lower-case letters, digits and hyphens (e.g. "a-b")',
        'x.toml: title: required, e.g. title = "Two Sum"',
        'x.toml: difficulty: required, e.g. difficulty = "medium" (one of easy, medium, hard)',
        'x.toml: description: required, e.g. description = """Write a function ..."""',
        'x.toml: unknown key "foo" (known keys: ' + ", ".join(KEYS) + ")",
    ]


def test_a_byte_order_mark_is_accepted() -> None:
    content = b"\xef\xbb\xbf" + toml_with().encode()
    assert challenge_from_toml(content, source="x.toml", builtin=False).slug == "two-sum"


def test_bad_utf8_after_a_byte_order_mark_reports_the_file_position() -> None:
    content = b"\xef\xbb\xbf" + b'slug = "\xff"\n'
    with pytest.raises(InvalidInput) as caught:
        challenge_from_toml(content, source="x.toml", builtin=False)
    assert str(caught.value) == "x.toml: not UTF-8 text (byte 0xff at position 11)"
