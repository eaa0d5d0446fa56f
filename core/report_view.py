"""What a report message shows, platform-neutral: adapters render it (Block Kit, an embed,
the terminal); :func:`report_text` is the plain version."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from core.evaluation import DEFAULT_CRITERIA, Criterion, Evaluation
from core.models import Report
from core.report_metrics import ReportMetrics
from core.transcript import metrics_rows

AI_HEADING = "AI evaluation (AI-assisted, advisory)"
SIGNAL_MARKS = {"strong no": "⛔", "no": "🔴", "mixed": "🟡", "yes": "🟢", "strong yes": "✅"}


@dataclass(frozen=True)
class Evidence:
    turn: int
    quote: str
    link: str | None


@dataclass(frozen=True)
class ScoreLine:
    name: str
    score: int
    evidence: list[Evidence]


@dataclass(frozen=True)
class ReportView:
    title: str
    facts: list[tuple[str, str]]  # the metrics table
    evaluation_heading: str
    scores: list[ScoreLine] = field(default_factory=list)
    signal: str | None = None
    rationale: str | None = None
    strengths: list[str] = field(default_factory=list)
    concerns: list[str] = field(default_factory=list)
    follow_ups: list[str] = field(default_factory=list)
    evaluation_note: str | None = None  # why there is no evaluation (off, failed)
    evaluation_tokens: int = 0
    reposted: bool = False

    @property
    def signal_text(self) -> str | None:
        if self.signal is None:
            return None
        return f"{SIGNAL_MARKS.get(self.signal, '')} {self.signal}".strip()


def build_view(
    report: Report,
    challenge_title: str,
    criteria: Sequence[Criterion],
    mention: Callable[[str], str],
    *,
    reposted: bool = False,
) -> ReportView:
    metrics = ReportMetrics.from_dict(report.metrics)
    title = f"Interview report: {mention(report.candidate_id)} · {challenge_title}"
    heading = f"Evaluation: {report.evaluation_label}" if report.evaluation_label else AI_HEADING
    view = ReportView(
        title=title,
        facts=metrics_rows(metrics, mention),
        evaluation_heading=heading,
        evaluation_tokens=report.evaluation_tokens,
        reposted=reposted,
        evaluation_note=report.evaluation_error,
    )
    if report.evaluation is None:
        return view
    evaluation = Evaluation.model_validate(report.evaluation)
    names = {c.key: c.name for c in (*DEFAULT_CRITERIA, *criteria)}
    scores = [
        ScoreLine(
            names.get(s.criterion, s.criterion),
            s.score,
            [Evidence(e.turn, e.quote, report.links.get(str(e.turn))) for e in s.evidence],
        )
        for s in evaluation.criteria
    ]
    return replace(
        view,
        scores=scores,
        signal=evaluation.signal,
        rationale=evaluation.rationale,
        strengths=evaluation.strengths,
        concerns=evaluation.concerns,
        follow_ups=evaluation.follow_up_questions,
    )


def evidence_text(evidence: Evidence, link: Callable[[str, str], str]) -> str:
    """``turn 3: "quote"`` with the turn linked where there is a link."""
    turn = f"turn {evidence.turn}"
    if evidence.link:
        turn = link(evidence.link, turn)
    quote = evidence.quote if len(evidence.quote) <= 140 else evidence.quote[:137] + "…"
    return f"{turn}: “{quote}”"


def report_text(view: ReportView, link: Callable[[str, str], str] = lambda u, t: t) -> str:
    """The report as plain text with light Markdown (the console, and fallbacks)."""
    lines = [view.title + (" (re-posted)" if view.reposted else ""), ""]
    width = max(len(label) for label, _ in view.facts)
    lines += [f"  {label:<{width}}  {value}" for label, value in view.facts]
    lines += ["", view.evaluation_heading]
    if view.evaluation_note:
        lines.append(f"  {view.evaluation_note}")
    if view.signal_text:
        lines.append(f"  Signal: {view.signal_text}")
    for s in view.scores:
        lines.append(f"  {s.name}: {s.score}/5")
        lines += [f"    - {evidence_text(e, link)}" for e in s.evidence[:2]]
    for heading, items in (
        ("Strengths", view.strengths),
        ("Concerns", view.concerns),
        ("Follow-up questions", view.follow_ups),
    ):
        if items:
            lines.append(f"  {heading}:")
            lines += [f"    - {item}" for item in items]
    if view.rationale:
        lines += [f"  Rationale: {view.rationale}"]
    if view.evaluation_tokens:
        lines.append(
            f"  (The evaluation used {view.evaluation_tokens:,} tokens, not charged to the "
            "candidate.)"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Compared:
    """One column of ``/interview compare``."""

    candidate: str
    challenge: str
    metrics: ReportMetrics
    evaluation: Evaluation | None


def compare_table(columns: Sequence[Compared], criteria_names: dict[str, str]) -> str:
    """A monospace side-by-side table of the latest reports (metrics, the scores of
    ``criteria_names``, signal)."""
    rows: list[tuple[str, list[str]]] = [
        ("Challenge", [c.challenge for c in columns]),
        ("Time used", [_share(c.metrics.time_used_s, c.metrics.allowed_time_s) for c in columns]),
        ("Tokens used", [f"{c.metrics.tokens_used:,}" for c in columns]),
        (
            "Of budget",
            [_share(c.metrics.tokens_used, c.metrics.total_budget) for c in columns],
        ),
        ("Prompts", [str(c.metrics.prompts) for c in columns]),
        ("Tokens/prompt", [f"{c.metrics.tokens_per_prompt:,.0f}" for c in columns]),
        ("Refused", [str(c.metrics.refused) for c in columns]),
        ("End", [(c.metrics.end_reason or "—").replace("_", " ") for c in columns]),
    ]
    for key in criteria_names:
        values = []
        for c in columns:
            score = next(
                (
                    s.score
                    for s in (c.evaluation.criteria if c.evaluation else [])
                    if s.criterion == key
                ),
                None,
            )
            values.append("—" if score is None else f"{score}/5")
        name = criteria_names.get(key, key)
        rows.append((name if len(name) <= 32 else name[:31] + "…", values))
    rows.append(("Signal", [c.evaluation.signal if c.evaluation else "—" for c in columns]))
    head = ["", *(c.candidate for c in columns)]
    body = [[label, *values] for label, values in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(r) for r in body)])


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "—"
