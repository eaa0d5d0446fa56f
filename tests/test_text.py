"""Splitting long replies into platform-sized messages keeps code blocks intact."""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import example, given
from hypothesis import strategies as st

from core.text import FENCE, Boundary, MessageSplitter, split_message

REOPEN = re.compile(r"```[^`\n]*\n")


def unsplit(messages: list[str], boundaries: list[Boundary]) -> str:
    """Undo exactly what the splitter added, and nothing the model wrote.

    ``boundaries[i]`` is what the splitter put between message ``i`` and ``i + 1``: a
    closing fence at the end of message ``i`` and the block's opening fence at the top of
    message ``i + 1`` (both empty outside a code block). Stripping those and joining the
    messages must give back the streamed text exactly.
    """
    assert len(boundaries) == len(messages) - 1
    parts = []
    for index, message in enumerate(messages):
        if index > 0:
            reopen = boundaries[index - 1].reopen
            assert message.startswith(reopen)
            message = message[len(reopen) :]
        if index < len(boundaries):
            close = boundaries[index].close
            assert message.endswith(close)
            message = message[: len(message) - len(close)]
        parts.append(message)
    return "".join(parts)


def check_boundaries(boundaries: list[Boundary]) -> None:
    for close, reopen in boundaries:
        assert (close, reopen) == ("", "") or (
            close in (FENCE, "\n" + FENCE) and REOPEN.fullmatch(reopen)
        )


def empty_blocks_made(messages: list[str], boundaries: list[Boundary]) -> list[int]:
    """Messages where the splitter's close or reopen shows an empty code block.

    Allowed: a closing fence after blank lines or indentation at the top of a message, as
    the previous message may have room to close the block but not for those characters.
    """
    found = []
    for index, boundary in enumerate(boundaries):
        if not boundary.close:
            continue
        before = messages[index][: -len(boundary.close)]
        opened = before[before.rfind(FENCE) + len(FENCE) :]
        if "\n" not in opened or not opened.split("\n", 1)[1].strip():
            found.append(index)
        after = messages[index + 1][len(boundary.reopen) :]
        if after.startswith(FENCE):
            found.append(index + 1)
    return found


def test_short_text_is_one_message() -> None:
    assert split_message("hello", 2000) == ["hello"]


def test_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "```python\n" + "".join(f"print({i})\n" for i in range(400)) + "```\nDone."
    messages = split_message(code, 2000)
    assert len(messages) > 1
    for message in messages:
        assert len(message) <= 2000
        assert message.count(FENCE) % 2 == 0
    assert all(m.startswith("```python\n") for m in messages[1:-1])
    assert messages[-1].endswith("```\nDone.")


def stream(text: str, limit: int, chunk: int = 1, max_tail: int = 200) -> MessageSplitter:
    splitter = MessageSplitter(limit, max_tail)
    for start in range(0, len(text), chunk):
        splitter.feed(text[start : start + chunk])
    splitter.finish()
    return splitter


def test_a_block_opened_at_the_end_of_a_message_starts_the_next_one() -> None:
    # It used to end the first message with an empty block ("```py\n```") and cut the
    # block's ninth line in two ("a" / " = 1").
    text = "x" * 50 + "\n```py\n" + "a = 1\n" * 10
    splitter = stream(text, 60)
    assert splitter.messages() == [
        "x" * 50 + "\n",
        "```py\n" + "a = 1\n" * 8 + "```",
        "```py\n" + "a = 1\n" * 2,
    ]
    assert splitter.boundaries == [Boundary("", ""), Boundary(FENCE, "```py\n")]


def test_a_fence_the_model_wrote_at_a_message_boundary_is_kept() -> None:
    # From the known failing draw (plus a last line): the first message ends outside a
    # block, after the model's tenth fence, and its eleventh starts the second message.
    # The old ``unsplit`` took that for a close/reopen pair; the boundaries say it is not.
    lines = ["aaaaaaaaa", "```", "```", "a", "```", "```", "```", "```", "```", "```js"]
    lines += ["```js", "```", "```", "more"]
    text = "\n".join(lines)
    splitter = stream(text, 60)
    assert splitter.messages() == ["\n".join(lines[:-2]) + "\n", "```\nmore"]
    assert splitter.boundaries == [Boundary("", "")]
    assert unsplit(splitter.messages(), splitter.boundaries) == text


def test_a_closing_fence_streamed_into_a_full_message_stays_whole() -> None:
    # It used to be committed as "``" (the message was full) and "`" in the next message:
    # no fence in either, so the second showed an unclosed "```js" block.
    lines = ["aaaaaaaaaaa", "aaaaaaaaaaa", "aaaaaaaaaaa", "```js", "aaaaaaaaaaa", "```"]
    assert stream("\n".join(lines), 60).messages() == ["\n".join(lines)]


def test_a_block_closed_at_a_full_message_keeps_its_own_fence() -> None:
    # "```js" closes the block where only its fence fits: the fence ends the message. It
    # used to give ["```\n```", "```\nbbb…\n```", "```\n\n```js\nafter"]: an empty block
    # at each end.
    text = "```\n" + "b" * 40 + "\n```js\nafter"
    assert split_message(text, 48) == ["```\n" + "b" * 40 + "\n```", "js\nafter"]


def test_a_long_line_inside_a_block_is_cut_and_reopened() -> None:
    text = "```sh\n" + "y" * 100 + "\n```"
    splitter = stream(text, 40, chunk=7)
    assert splitter.messages() == [
        "```sh\n" + "y" * 30 + "\n```",
        "```sh\n" + "y" * 30 + "\n```",
        "```sh\n" + "y" * 30 + "\n```",
        "```sh\n" + "y" * 10 + "\n```",
    ]
    assert unsplit(splitter.messages(), splitter.boundaries) == text


def test_an_opening_line_too_long_to_repeat_is_reopened_as_a_bare_fence() -> None:
    # The old splitter looped for ever: reopening with this line left no room in a message.
    text = "```" + "x" * 40 + "\n" + "code\n" * 20
    assert split_message(text, 40) == [
        "```" + "x" * 33 + "\n```",
        "```\n" + "x" * 7 + "\n" + "code\n" * 5 + "```",
        "```\n" + "code\n" * 6 + "```",
        "```\n" + "code\n" * 6 + "```",
        "```\n" + "code\n" * 3,
    ]


line = st.one_of(
    st.text(alphabet="abc xyz", max_size=120),
    st.just("```"),
    st.just("```js"),
    st.sampled_from(["  ```py", "````", "a ```", "``` b ```", "`x`", "``"]),
    st.text(alphabet="ab `", max_size=12),
)


# Draws that failed, run every time: (the lines joined by "\n", limit, chunk, max_tail).
PINNED: list[tuple[str, int, int, int]] = [
    # the splitter was right; the old ``unsplit`` took the model's fences at a boundary
    # for a close/reopen pair
    ("aaaaaaaaa\n```\n```\na\n```\n```\n```\n```\n```\n```js\n```js\n```\n```", 60, 1, 200),
    ("aaaaaaaaaaaaaaaaaa\n```js\naaaa\naaaaaaaaaaaaaaaaaa\n```\n```\n", 60, 10, 200),
    ("\n```\n\n\n```\n```\n```\n```\n```\n```js\n```js\n```js\n\n\n```\n```js\n", 60, 19, 200),
    # old splitter cut a fence streamed a backtick at a time into "``" and "`"
    ("aaaaaaaaaaa\naaaaaaaaaaa\naaaaaaaaaaa\n```js\naaaaaaaaaaa\n```", 60, 1, 200),
    ("```\n```\n```js\n```js\n```js\naaaaaaaaaaaaaaaaaaaaa\n```js\n```", 60, 1, 200),
    # old splitter: an indented fence, a run of backticks
    ("aaaaaaaaaaaa\naaaaaaaaaaaa\n  ```py\n```", 40, 1, 200),
    ("aaaaa\naaaaaa\naaaaaaaaaaa\n````````````", 40, 1, 200),
    # empty code blocks at a boundary, found while fixing
    ("\n\n`x`\n```\n```js\n\n```js\n\n```js\n```js\na", 40, 1, 0),
    ("aaaaaaaaaaaa\n```\n```js\n  ```py\naaaa\n  ```py", 40, 1, 200),
    ("```\n```js\naaaa\n```js\n\n\naaaa\n`x`\n``` b ```", 40, 1, 200),
    ("```\n```js\naaaa\na ```\naaaa\n`` `` `` ` `\naa\naaa\naaaaaaaaa\n``\n\n```", 40, 1, 200),
]


def pinned(test: Callable[..., None]) -> Callable[..., None]:
    for text, limit, chunk, max_tail in reversed(PINNED):
        lines = text.split("\n")
        test = example(lines=lines, limit=limit, chunk=chunk, max_tail=max_tail)(test)
    return test


@pinned
@given(
    lines=st.lists(line, max_size=80),
    limit=st.integers(40, 500),
    chunk=st.integers(1, 50) | st.just(100_000),  # 100_000: all at once
    max_tail=st.sampled_from([200, 0, 5]),
)
def test_streamed_splitting_respects_the_limit_and_loses_nothing(
    lines: list[str], limit: int, chunk: int, max_tail: int
) -> None:
    text = "\n".join(lines)
    splitter = MessageSplitter(limit, max_tail)
    committed_before = list(splitter.segments)
    boundaries_before = list(splitter.boundaries)
    for start in range(0, len(text), chunk):
        splitter.feed(text[start : start + chunk])
        shown = splitter.messages()
        assert max(map(len, shown)) <= limit and all(shown)
        # what was committed earlier is never changed; only the last segment may grow
        last = len(committed_before) - 1
        assert splitter.segments[:last] == committed_before[:last]
        assert splitter.segments[last].startswith(committed_before[last])
        assert splitter.boundaries[: len(boundaries_before)] == boundaries_before
        committed_before = list(splitter.segments)
        boundaries_before = list(splitter.boundaries)
    messages = splitter.finish()
    assert all(len(m) <= limit for m in messages)
    assert all(messages) or messages == [""]
    check_boundaries(splitter.boundaries)
    # each message renders its code blocks on its own; the last one as the text leaves them
    assert all(m.count(FENCE) % 2 == 0 for m in messages[:-1])
    assert messages[-1].count(FENCE) % 2 == text.count(FENCE) % 2
    assert unsplit(messages, splitter.boundaries) == text
    assert empty_blocks_made(messages, splitter.boundaries) == []
