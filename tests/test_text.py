"""Splitting long replies into platform-sized messages keeps code blocks intact."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from core.text import FENCE, MessageSplitter, split_message


def unsplit(messages: list[str]) -> str:
    """Undo the fence closing/reopening the splitter adds between messages."""
    out = messages[0]
    for previous, message in itertools.pairwise(messages):
        if previous.rstrip().endswith(FENCE) and message.startswith(FENCE):
            opener_end = message.index("\n") + 1
            out = out[: out.rstrip().rfind(FENCE)].removesuffix("\n")
            out += "\n" if not out.endswith("\n") else ""
            message = message[opener_end:]
        out += message
    return out


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


line = st.one_of(st.text(alphabet="abc xyz", max_size=120), st.just("```"), st.just("```js"))


@given(lines=st.lists(line, max_size=80), limit=st.integers(60, 500), chunk=st.integers(1, 50))
def test_streamed_splitting_respects_the_limit_and_loses_nothing(
    lines: list[str], limit: int, chunk: int
) -> None:
    text = "\n".join(lines)
    splitter = MessageSplitter(limit)
    committed_before: list[str] = []
    for start in range(0, len(text), chunk):
        splitter.feed(text[start : start + chunk])
        assert all(len(m) <= limit for m in splitter.messages())
        # what was committed earlier is never changed, only extended
        for old, new in zip(committed_before, splitter.segments, strict=False):
            assert new.startswith(old) or old == ""
        committed_before = list(splitter.segments)
    messages = splitter.finish()
    assert all(len(m) <= limit for m in messages)
    assert unsplit(messages).replace("\n", "") == text.replace("\n", "")
