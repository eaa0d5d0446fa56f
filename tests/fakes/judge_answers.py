"""Scripted judge answers for the fake OpenAI server (``fake.structured_default``)."""

from __future__ import annotations

import re
from typing import Any

_CRITERION_LINE = re.compile(r"^- ([a-z0-9_]+) \(", re.MULTILINE)
_TURN_LINE = re.compile(r"^\[(\d+)\]\s*(.*)$", re.MULTILINE)


def _contents(body: dict[str, Any], role: str) -> list[str]:
    return [
        m["content"]
        for m in body.get("messages", [])
        if m.get("role") == role and isinstance(m.get("content"), str)
    ]


def valid_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A schema-valid Evaluation for a judge request: every criterion of the system
    message's rubric scored 4, citing the transcript's first turn; signal "yes"."""
    keys = [key for text in _contents(body, "system") for key in _CRITERION_LINE.findall(text)]
    turns = [
        (int(number), quote)
        for text in _contents(body, "user")
        for number, quote in _TURN_LINE.findall(text)
    ]
    evidence = [{"turn": turns[0][0], "quote": turns[0][1][:80]}] if turns else []
    return {
        "criteria": [{"criterion": key, "score": 4, "evidence": evidence} for key in keys],
        "strengths": ["Works in small, well-explained steps."],
        "concerns": ["Could test the AI's answers more."],
        "follow_up_questions": ["How would you test this solution?"],
        "signal": "yes",
        "rationale": "A scripted answer from the fake judge.",
    }
