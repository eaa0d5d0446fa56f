"""Block Kit of an evaluation report: the metrics, the signal and the scores in one message
(the chart and the transcript follow as files in its thread).

The judge's words (and the quotes it took from the candidate) are escaped, so nothing in
them can mention ``@channel`` or a person; only our own mentions are live.
"""

from __future__ import annotations

from dataclasses import replace

from adapters.slack.blocks import Block, escape
from core.report_view import ReportView, evidence_text

SECTION_LIMIT = 3000  # characters of a section's text
FIELD_LIMIT = 2000
HEADER_LIMIT = 150


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SECTION_LIMIT)}}


def _link(url: str, text: str) -> str:
    return f"<{url}|{text}>"


def report_summary(view: ReportView) -> str:
    """The notification text (and what clients without blocks show)."""
    signal = f" · signal: {view.signal}" if view.signal else ""
    return f"{view.title}{signal}"


def report_blocks(view: ReportView) -> list[Block]:
    title = view.title + (" (re-posted)" if view.reposted else "")
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut("📋 Interview report", HEADER_LIMIT)},
        },
        _section(f"*{title.removeprefix('Interview report: ')}*"),
    ]
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{label}*\n{value}", FIELD_LIMIT)}
        for label, value in view.facts
    ]
    for start in range(0, len(fields), 10):  # at most 10 fields per section
        blocks.append({"type": "section", "fields": fields[start : start + 10]})
    blocks.append({"type": "divider"})
    blocks.append(_section(f"*{escape(view.evaluation_heading)}*"))
    if view.evaluation_note:
        blocks.append(_section(f"⚠️ {escape(view.evaluation_note)}"))
    if view.signal_text:
        blocks.append(_section(f"*Signal:* {escape(view.signal_text)}"))
    for score in view.scores:
        lines = [
            f"*{escape(score.name)}*: {'●' * score.score}{'○' * (5 - score.score)} {score.score}/5"
        ]
        for evidence in score.evidence[:2]:
            safe = replace(evidence, quote=escape(evidence.quote))
            lines.append(f"> {evidence_text(safe, _link)}")
        blocks.append(_section("\n".join(lines)))
    for heading, items in (
        ("Strengths", view.strengths),
        ("Concerns", view.concerns),
        ("Follow-up questions", view.follow_ups),
    ):
        if items:
            blocks.append(
                _section(f"*{heading}*\n" + "\n".join(f"• {escape(i)}" for i in items[:8]))
            )
    if view.rationale:
        blocks.append(_section(f"*Rationale*\n{escape(view.rationale)}"))
    context = "The candidate never sees this report."
    if view.evaluation_tokens:
        context = (
            f"The evaluation used {view.evaluation_tokens:,} tokens, not charged to the "
            f"candidate. {context}"
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return blocks[:50]  # Slack's limit per message
