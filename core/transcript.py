"""The interview as text: the Markdown transcript file, and the numbered version the judge
reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from core.models import AuditEvent, Challenge, Interview, Turn, TurnStatus
from core.parsing import format_duration
from core.report_metrics import ReportMetrics

JUDGE_REPLY_CHARS = 1500  # each reply is cut to this for the judge (the prompts never are)

_STATUS = {
    TurnStatus.ANSWERED: "answered",
    TurnStatus.FAILED: "failed",
    TurnStatus.REFUSED: "refused: did not fit the remaining budget",
    TurnStatus.UNANSWERED: "unanswered: sent while paused or after the end",
    TurnStatus.PENDING: "never handled",
    TurnStatus.STREAMING: "interrupted",
}
END_REASONS = {
    "time_up": "time up",
    "tokens_exhausted": "tokens exhausted",
    "ended_by_interviewer": "ended by an interviewer",
    "cancelled": "cancelled",
}


def _state(turn: Turn) -> str:
    """A refused turn with an ``error`` was refused for that reason (an input or rate limit,
    e.g. "refused: no visible text"), not for the budget."""
    if turn.status is TurnStatus.REFUSED and turn.error:
        return turn.error
    return _STATUS[turn.status]


def _at(moment: datetime | None) -> str:
    return "—" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])


def metrics_rows(metrics: ReportMetrics, name: Callable[[str], str]) -> list[tuple[str, str]]:
    """The metrics table, as (label, value) rows; ``name`` writes a person."""
    m = metrics
    allowed = m.allowed_time_s
    time_used = f"{format_duration(int(m.time_used_s))} of {format_duration(m.time_limit_s)}"
    if m.extra_time_s:
        time_used += (
            f" (+{format_duration(m.extra_time_s)} granted: {_pct(m.time_used_s, allowed)} "
            f"of {format_duration(allowed)})"
        )
    else:
        time_used += f" ({_pct(m.time_used_s, allowed)})"
    tokens = f"{m.tokens_used:,} of {m.token_budget:,}"
    if m.extra_tokens:
        tokens += (
            f" (+{m.extra_tokens:,} granted: {_pct(m.tokens_used, m.total_budget)} "
            f"of {m.total_budget:,})"
        )
    else:
        tokens += f" ({_pct(m.tokens_used, m.total_budget)})"
    prompts = f"{m.prompts} ({m.answered} answered"
    prompts += f", {m.failed} failed)" if m.failed else ")"
    extensions = ", ".join(
        " ".join(
            p
            for p in (
                f"+{format_duration(e.seconds)}" if e.seconds else "",
                f"+{e.tokens:,} tokens" if e.tokens else "",
            )
            if p
        )
        + f" by {name(e.by)}"
        for e in m.extensions
    )
    rows = [
        ("Time used", time_used),
        ("Tokens used", f"{tokens}; input {m.input_tokens:,} / output {m.output_tokens:,}"),
        ("Prompts sent", prompts),
        (
            "Prompt size",
            f"average {m.average_prompt_tokens:,.0f} tokens, largest {m.largest_prompt_tokens:,}",
        ),
        ("Tokens per prompt", f"{m.tokens_per_prompt:,.0f}"),
        (
            "Time to first prompt",
            "no prompt sent"
            if m.time_to_first_prompt_s is None
            else format_duration(int(m.time_to_first_prompt_s)),
        ),
        ("Longest idle gap", format_duration(int(m.longest_idle_s))),
        ("Refused (didn't fit)", str(m.refused)),
        ("Warnings reached", ", ".join(WARNING_NAMES.get(w, w) for w in m.warnings) or "none"),
        ("Extensions", extensions or "none"),
        (
            "Pauses",
            f"{m.pauses} ({format_duration(int(m.paused_s))})" if m.pauses else "none",
        ),
        ("End", END_REASONS.get(m.end_reason or "", m.end_reason or "still running")),
    ]
    if m.refused_other:
        rows.insert(8, ("Refused (too long, empty, a file, too fast)", str(m.refused_other)))
    if m.unanswered:
        rows.insert(8, ("Unanswered (paused or after the end)", str(m.unanswered)))
    return rows


WARNING_NAMES = {
    "tokens_75": "75% of tokens",
    "tokens_90": "90% of tokens",
    "messages_2": "2 messages left",
    "messages_1": "1 message left",
    "time_25": "25% of time left",
    "time_10": "10% of time left",
    "time_5": "5% of time left",
}


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "—"


def _action(event: AuditEvent, name: Callable[[str], str]) -> str | None:
    who = name(event.actor_id) if event.actor_id != "system" else "the bot"
    d = event.detail
    if event.kind == "extended":
        parts = []
        if d.get("seconds"):
            parts.append(f"+{format_duration(int(d['seconds']))}")
        if d.get("tokens"):
            parts.append(f"+{int(d['tokens']):,} tokens")
        return f"{who} extended the interview by {' and '.join(parts)}"
    if event.kind in ("paused", "resumed", "started"):
        return f"{who} {event.kind} the interview"
    if event.kind == "ended":
        return f"ended ({END_REASONS.get(str(d.get('reason')), d.get('reason'))}) by {who}"
    if event.kind == "warning":
        key = str(d.get("threshold"))
        return f"warning shown: {WARNING_NAMES.get(key, key)}"
    return None


def transcript_markdown(
    interview: Interview,
    challenge: Challenge,
    turns: Sequence[Turn],
    audit: Sequence[AuditEvent],
    metrics: ReportMetrics,
    name: Callable[[str], str],
    summary: str | None = None,
) -> str:
    """The whole interview as a Markdown file (``summary``: the report, after the header)."""
    limits = f"{format_duration(interview.time_limit_s)}, {interview.token_budget:,} tokens"
    granted = [
        p
        for p in (
            f"+{format_duration(interview.extra_time_s)}" if interview.extra_time_s else "",
            f"+{interview.extra_tokens:,} tokens" if interview.extra_tokens else "",
        )
        if p
    ]
    if granted:
        limits += f" ({', '.join(granted)} granted)"
    reason = END_REASONS.get(metrics.end_reason or "", "still running")
    lines = [
        f"# Interview transcript: {name(interview.candidate_id)} · {challenge.title}",
        "",
        "| | |",
        "|---|---|",
        f"| Candidate | {name(interview.candidate_id)} |",
        f"| Interviewer | {name(interview.interviewer_id)} |",
        f"| Challenge | {challenge.title} (`{challenge.slug}`, {challenge.difficulty}) |",
        f"| Limits | {limits} |",
        f"| Started | {_at(interview.started_at)} |",
        f"| Ended | {_at(interview.ended_at)} ({reason}) |",
        "",
    ]
    if summary:
        lines += ["## Report", "", "```text", summary, "```", ""]
    lines += ["## Conversation", ""]
    if not turns:
        lines += ["_The candidate sent no messages._", ""]
    for turn in turns:
        header = f"### Turn {turn.seq} · {turn.created_at:%H:%M:%S} · {_state(turn)}"
        if turn.status in (TurnStatus.ANSWERED, TurnStatus.FAILED):
            header += (
                f" · tokens in {turn.prompt_tokens:,} / out {turn.completion_tokens:,} / "
                f"charged {turn.charged_tokens:,}"
            )
        lines += [header, "", f"**{name(turn.author_id)}:**", "", _quoted(turn.content), ""]
        if turn.reply:
            lines += ["**Assistant:**", "", turn.reply, ""]
        if turn.error and turn.error != _state(turn):
            lines += [f"_Error: {turn.error}_", ""]
    actions = [(e.at, _action(e, name)) for e in sorted(audit, key=lambda e: e.at)]
    lines += ["## Interviewer actions and notices", ""]
    lines += [f"- {at:%H:%M:%S} {text}" for at, text in actions if text] or ["- none"]
    lines += ["", "## Metrics", "", "| Metric | Value |", "|---|---|"]
    lines += [
        f"| {label} | {value.replace('|', '/')} |" for label, value in metrics_rows(metrics, name)
    ]
    return "\n".join(lines) + "\n"


def judge_transcript(turns: Sequence[Turn]) -> str:
    """Turns as the judge reads them: ``[n] Candidate: …`` then ``[n] Assistant: …``."""
    return "\n".join(judge_turn(t) for t in turns) or "(The candidate sent no messages.)"


def judge_turn(turn: Turn) -> str:
    """One turn for the judge. Lines after a message's first are indented behind a bar,
    so no message can forge a ``[n] Assistant:`` line of its own."""
    state = "" if turn.status is TurnStatus.ANSWERED else f" ({_state(turn)})"
    lines = [f"[{turn.seq}] Candidate{state}: {_continued(turn.content)}"]
    if turn.reply:
        reply = turn.reply
        if len(reply) > JUDGE_REPLY_CHARS:
            reply = reply[:JUDGE_REPLY_CHARS] + " […reply shortened for the evaluation]"
        lines.append(f"[{turn.seq}] Assistant: {_continued(reply)}")
    return "\n".join(lines)


def _continued(text: str) -> str:
    return "\n    ┆ ".join(text.splitlines() or [""])
