"""Built-in offline stand-ins for the console try-out: a chat model (deterministic, streamed,
honestly counted) and a rule-based judge."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import cast

from core.evaluation import (
    SIGNALS,
    CriterionScore,
    Evaluation,
    Evidence,
    JudgeRequest,
    JudgeResult,
    Score,
)
from core.ports import ChatRequest, ChatResult, OnDelta, Usage
from core.tokens import TokenCounter

OFFLINE_LABEL = "offline model (no API key set; replies are canned, not AI)"

_OPENERS = (
    "Good question. Let's reason about it step by step.",
    "Here is one way to think about it.",
    "Let's break that down.",
    "A useful first step is to restate the problem.",
)
_BODY = (
    "Start from the simplest correct solution and measure what it costs: for most interview "
    "problems that is a brute force over all pairs or all orderings. Then look for the repeated "
    "work. A hash map often turns a nested loop into a single pass, because a lookup replaces a "
    "scan. Write down the invariant your loop keeps, check it on a tiny example, and only then "
    "think about edge cases: empty input, duplicates, negative numbers and very large values. "
    "Finally, name the time and space complexity and the tests you would write first."
)


class OfflineChatModel:
    """Streams a canned reply chosen from the prompt; usage is counted with the real encoding."""

    label: str | None = OFFLINE_LABEL

    def __init__(self, chunk_tokens: int = 6, delay_s: float = 0.0) -> None:
        self._chunk_tokens = chunk_tokens
        self._delay_s = delay_s

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        counter = TokenCounter(request.model)
        prompt_tokens = counter.count_messages(request.messages)
        question = request.messages[-1]["content"] if request.messages else ""
        digest = int(hashlib.sha256(question.encode()).hexdigest(), 16)
        text = f"{_OPENERS[digest % len(_OPENERS)]} {_BODY}"
        tokens = counter.encode(text)
        finish = "stop"
        if len(tokens) > request.max_completion_tokens:
            tokens = tokens[: request.max_completion_tokens]
            finish = "length"
        sent = ""
        for start in range(0, len(tokens), self._chunk_tokens):
            # Decode cumulatively so multi-byte characters split across chunks stay intact.
            upto = counter.encoding.decode(tokens[: start + self._chunk_tokens])
            delta, sent = upto[len(sent) :], upto
            if delta:
                await on_delta(delta)
            if self._delay_s:
                await asyncio.sleep(self._delay_s)
        return ChatResult(
            text=sent,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(tokens)),
            reached_model=True,
            finish_reason=finish,
        )


# ---- the offline judge ------------------------------------------------------------------

OFFLINE_JUDGE_LABEL = "offline evaluation (no API key set; scores come from simple rules, not AI)"

TRANSCRIPT_HEADER = "Transcript (turn numbers in brackets):"
_TURN_LINE = re.compile(r"^\s*\[(\d+)\]\s*(.*)$")
_SPEAKER = re.compile(r"(candidate|assistant)\s*(\([^)]*\))?:\s*", re.I)
_WORD = re.compile(r"[a-z0-9']+")
_PLAN = re.compile(r"\b(first|step|plan|then|next|break (it )?down|split|part)\b", re.I)
_CONTEXT = re.compile(
    r"\b(input|output|constraint|must|should|example|return|given|assume|o\(n)", re.I
)
_VERIFY = re.compile(
    r"\b(test|edge case|corner case|complexity|why|what if|verify|check|wrong|bug|correct|"
    r"counterexample|fail|prove)",
    re.I,
)
_EXPLAIN = re.compile(
    r"\b(because|so that|trade-?off|i think|i want|since|instead|decide|approach|prefer)\b",
    re.I,
)
_STOPWORDS = frozenset(
    {"and", "are", "for", "from", "how", "into", "its", "not", "the", "use", "used", "uses"}
    | {"using", "with"}
)
_QUOTE_CHARS = 100


def _clamp(score: int) -> Score:
    return cast("Score", max(1, min(5, score)))


def _by_count(matches: int) -> Score:
    """None -> 1, one -> 3, two -> 4, three or more -> 5."""
    return _clamp(1 if matches == 0 else matches + 2)


def _prompts(request: JudgeRequest) -> list[tuple[int, str]]:
    """(turn, prompt) for the turns of ``request.turn_numbers`` found in the transcript.

    The transcript (``core.transcript.judge_transcript``) writes each turn as
    ``[n] Candidate: …`` then ``[n] Assistant: …``; lines without a marker continue the one
    before. A turn's prompt is its first block that is not the assistant's, without the
    speaker label.
    """
    wanted = set(request.turn_numbers)
    blocks: list[tuple[int, list[str]]] = []
    for message in request.messages:
        if message.get("role") != "user":
            continue
        text = message.get("content", "").split(TRANSCRIPT_HEADER, 1)[-1]
        current: list[str] | None = None
        for line in text.splitlines():
            match = _TURN_LINE.match(line)
            if match is not None:
                current = [match.group(2)]
                blocks.append((int(match.group(1)), current))
            elif current is not None:
                current.append(line)
    prompts: dict[int, str] = {}
    for turn, lines in blocks:
        block = "\n".join(lines).strip()
        speaker = _SPEAKER.match(block)
        if turn not in wanted or turn in prompts:
            continue
        if speaker is not None and speaker.group(1).lower() == "assistant":
            continue
        prompts[turn] = block[speaker.end() :] if speaker is not None else block
    return list(prompts.items())


class OfflineJudge:
    """:class:`core.ports.Judge` without AI: deterministic scores from transparent rules
    (turn count, prompt length, words that show planning, context, checking, explaining).
    Usage is counted with the real encoding (the prompt, and the answer's JSON)."""

    label: str | None = OFFLINE_JUDGE_LABEL

    async def evaluate(self, request: JudgeRequest) -> JudgeResult:
        evaluation = self.rule_evaluation(request)
        counter = TokenCounter(request.model)
        usage = Usage(
            prompt_tokens=counter.count_messages(request.messages),
            completion_tokens=counter.count_text(evaluation.model_dump_json()),
        )
        return JudgeResult(evaluation, usage)

    @staticmethod
    def rule_evaluation(request: JudgeRequest) -> Evaluation:
        """The rules' :class:`Evaluation` of ``request`` (pure)."""
        prompts = _prompts(request)
        turns = len(set(request.turn_numbers))
        words = [len(_WORD.findall(p.lower())) for _, p in prompts]
        average_words = sum(words) / len(words) if words else 0.0

        def matching(pattern: re.Pattern[str]) -> list[tuple[int, str]]:
            return [(t, p) for t, p in prompts if pattern.search(p)]

        def cite(cited: list[tuple[int, str]]) -> list[Evidence]:
            return [Evidence(turn=t, quote=p[:_QUOTE_CHARS]) for t, p in cited[:3]]

        plan, context = matching(_PLAN), matching(_CONTEXT)
        verify, explain = matching(_VERIFY), matching(_EXPLAIN)
        findings: dict[str, tuple[Score, list[Evidence], str]] = {}
        if turns:
            findings["decomposition"] = (
                _clamp((2 if turns == 1 else 3) + min(len(plan), 2)),
                cite(plan or prompts[:1]),
                f"{turns} turn(s), {len(plan)} with planning words (first, step, then)",
            )
            # 1 under 4 words a prompt, 2 under 10, 3 under 25, else 4; +1 if half give context
            quality = 1 + sum(average_words >= least for least in (4, 10, 25))
            if quality >= 3 and 2 * len(context) >= len(prompts):
                quality += 1
            longest = sorted(prompts, key=lambda tp: -len(tp[1]))[:1]
            findings["prompt_quality"] = (
                _clamp(quality),
                cite(longest),
                f"prompts average {average_words:.0f} words; {len(context)} give inputs, "
                "outputs or constraints",
            )
            findings["verification"] = (
                _by_count(len(verify)),
                cite(verify),
                f"{len(verify)} prompt(s) ask about tests, edge cases, complexity or why",
            )
            findings["efficiency"] = (
                _clamp(4 if turns <= 8 else 3 if turns <= 15 else 2 if turns <= 25 else 1),
                [],
                f"{turns} turn(s) sent (8 or fewer score 4)",
            )
            findings["communication"] = (
                _by_count(len(explain)),
                cite(explain),
                f"{len(explain)} prompt(s) explain intent (because, so that, trade-off)",
            )

        scores: list[CriterionScore] = []
        strengths: list[str] = []
        concerns: list[str] = []
        for criterion in request.criteria:
            finding: tuple[Score, list[Evidence], str]
            if not turns:
                finding = (1, [], "no prompts were sent")
            elif criterion.key in findings:
                finding = findings[criterion.key]
            else:
                finding = OfflineJudge._hint(criterion.name, prompts)
            score, evidence, why = finding
            scores.append(CriterionScore(criterion=criterion.key, score=score, evidence=evidence))
            line = f"{criterion.name}: {why} (offline rule, scored {score})."
            if score >= 4:
                strengths.append(line)
            elif score <= 2:
                concerns.append(line)

        follow_up = ["How did you check that the assistant's answers were correct?"]
        if not verify:
            follow_up.append("Which tests or edge cases would you run on the final solution?")
        if not explain:
            follow_up.append("Why did you choose this approach over the alternatives?")
        average = sum(s.score for s in scores) / len(scores) if scores else 1.0
        signal = SIGNALS[min(4, max(0, int(average + 0.5) - 1))]  # nearest, halves up
        if turns:
            rationale = (
                f"Offline rule-based evaluation, not AI: {turns} turn(s), prompts averaging "
                f"{average_words:.0f} words; {len(plan)} show planning, {len(verify)} "
                f"checking, {len(explain)} explaining. Scores count these signals in the "
                f"prompts and do not judge the work itself (average {average:.1f} of 5)."
            )
        else:
            rationale = (
                "Offline rule-based evaluation, not AI: no prompts were sent, so every "
                "criterion scores 1."
            )
        return Evaluation(
            criteria=scores,
            strengths=strengths or ["No strength stood out under the offline rules."],
            concerns=concerns or ["No concern stood out under the offline rules."],
            follow_up_questions=[f"{q} (suggested by the offline rules)" for q in follow_up],
            signal=signal,
            rationale=rationale,
        )

    @staticmethod
    def _hint(name: str, prompts: list[tuple[int, str]]) -> tuple[Score, list[Evidence], str]:
        """A challenge's own criterion: how many of its words the prompts mention."""
        wanted = [w for w in _WORD.findall(name.lower()) if w not in _STOPWORDS and len(w) > 2]
        found = {w for w in wanted if any(w in _WORD.findall(p.lower()) for _, p in prompts)}
        cited = [(t, p) for t, p in prompts if found & set(_WORD.findall(p.lower()))]
        score = _clamp(1 if not found else 4 if found == set(wanted) else 3)
        why = f"the prompts mention {len(found)} of its {len(wanted)} key word(s)"
        return score, [Evidence(turn=t, quote=p[:_QUOTE_CHARS]) for t, p in cited[:3]], why
