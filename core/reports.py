"""Evaluation reports: built once when an interview ends, delivered once to the interviewers.

Ending an interview adds an ``evaluate`` job (in the same transaction). It waits for turns
still streaming, computes the metrics, asks the judge (retried once; then metrics only),
renders the transcript and chart, and stores the report together with a ``report`` job,
both keyed by the interview, so a restart or a second process never builds or sends two.
The ``report`` job posts the summary, records its reference, then attaches the files: a
retry after a failure resumes from what is recorded and never re-posts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from core.challenges import find_challenge
from core.context import Context
from core.errors import InvalidInput, NotAuthorized, NotFound
from core.evaluation import (
    DEFAULT_CRITERIA,
    Criterion,
    Evaluation,
    JudgeRequest,
    check,
    criteria_for,
    judge_messages,
)
from core.models import (
    OPEN_TURN_STATUSES,
    Actor,
    AuditEvent,
    Challenge,
    Interview,
    Job,
    Report,
    Status,
    Turn,
    Workspace,
)
from core.ports import ChartRenderer, Judge, Platform, ReportFile, ReportTarget
from core.programs import interviewer_channel
from core.report_metrics import ReportMetrics, build_timeline, compute_metrics
from core.report_view import Compared, ReportView, build_view, compare_table, report_text
from core.tokens import TokenCounter
from core.transcript import judge_transcript, judge_turn, metrics_rows, transcript_markdown
from core.upkeep import EVALUATE

log = logging.getLogger(__name__)

DELIVER = "report"
WAIT_FOR_TURNS_S = 5.0  # how often to look again while a reply is still streaming
MAX_WAIT_S = 300.0  # after this, evaluate whatever is stored
JUDGE_ATTEMPTS = 2  # a failed evaluation is retried once
CHANNEL_ATTEMPTS = 5  # then a report the channel refuses goes to the interviewer directly
NO_CHANNEL_HINT = (
    "No interviewers' channel is configured, so this report came to you directly. "
    "Set one with `/interview config channel #channel`."
)


def report_key(interview_id: str) -> str:
    return f"report:{interview_id}"


@dataclass(frozen=True)
class Posted:
    """Where ``/interview report`` or ``compare`` posted (None: the reply carries it)."""

    target: ReportTarget
    text: str | None = None


class Reports:
    def __init__(
        self, ctx: Context, judge: Judge | None, render_chart: ChartRenderer | None
    ) -> None:
        self.ctx = ctx
        self.judge = judge
        self.render_chart = render_chart
        ctx.jobs.on(EVALUATE, self._on_evaluate)
        ctx.jobs.on(DELIVER, self._on_deliver)

    # ------------------------------------------------------------------------- building

    async def _on_evaluate(self, job: Job) -> None:
        ctx = self.ctx
        interview = await ctx.load(str(job.payload["interview_id"]))
        async with ctx.uow() as uow:
            existing = await uow.reports.for_interview(interview.id)
            turns = await uow.interviews.list_turns(interview.id)
            audit = await uow.interviews.list_audit(interview.id)
            workspace = await uow.workspaces.get(interview.workspace_id)
            challenge = await find_challenge(
                uow.challenges, interview.workspace_id, interview.challenge_slug
            )
        now = ctx.clock.now()
        if existing is None:
            open_turns = any(t.status in OPEN_TURN_STATUSES for t in turns)
            ended = interview.ended_at or now
            if open_turns and now - ended < timedelta(seconds=MAX_WAIT_S):
                again = Job(
                    job.kind, job.key, now + timedelta(seconds=WAIT_FOR_TURNS_S), job.payload
                )
                await ctx.jobs.schedule(again)  # a reply is still streaming: look again soon
                return
            assert workspace is not None
            report = await self._build(interview, workspace, challenge, turns, audit)
        else:
            report = existing
        async with ctx.uow() as uow:
            added = existing is None and await uow.reports.add(report)
            await uow.jobs.add_once(
                Job(DELIVER, report_key(interview.id), now, {"interview_id": interview.id})
            )
            await uow.commit()
        if added:
            outcome = "ok" if report.evaluation else ("off" if self._off else "failed")
            ctx.metrics.evaluation_done(outcome, report.evaluation_tokens)
        await ctx.jobs.run_now(report_key(interview.id))

    @property
    def _off(self) -> bool:
        return self.judge is None or not self.ctx.config.evaluation

    async def _build(
        self,
        interview: Interview,
        workspace: Workspace,
        challenge: Challenge,
        turns: Sequence[Turn],
        audit: Sequence[AuditEvent],
    ) -> Report:
        ctx = self.ctx
        platform = ctx.platform(interview)
        counter = TokenCounter(ctx.config.model)
        metrics = compute_metrics(interview, turns, audit, lambda text: len(counter.encode(text)))
        names = {
            uid: await _name(platform, workspace, uid)
            for uid in {interview.candidate_id, interview.interviewer_id}
            | {t.author_id for t in turns}
            | {e.actor_id for e in audit if e.actor_id != "system"}
        }

        def name(uid: str) -> str:
            return names.get(uid, uid)

        evaluation, error, tokens = await self._evaluate(interview, challenge, turns, metrics, name)
        links: dict[str, str] = {}
        if evaluation is not None:
            by_seq = {t.seq: t for t in turns}
            cited = {e.turn for s in evaluation.criteria for e in s.evidence}
            for seq in sorted(cited):
                link = await _link(platform, interview, by_seq[seq].platform_message_id)
                if link:
                    links[str(seq)] = link
        timeline = build_timeline(
            interview, turns, audit, f"{names[interview.candidate_id]} · {challenge.title}"
        )
        chart = b""
        if self.render_chart is not None:
            chart = await asyncio.to_thread(self.render_chart, timeline)
        report = Report(
            interview_id=interview.id,
            workspace_id=interview.workspace_id,
            platform=interview.platform,
            candidate_id=interview.candidate_id,
            interviewer_id=interview.interviewer_id,
            challenge_slug=challenge.slug,
            created_at=ctx.clock.now(),
            metrics=metrics.to_dict(),
            transcript_md="",
            chart_png=chart,
            evaluation=evaluation.model_dump() if evaluation else None,
            evaluation_error=error,
            evaluation_label=self.judge.label if self.judge and evaluation else None,
            evaluation_tokens=tokens,
            links=links,
        )
        view = build_view(report, challenge.title, criteria_for(challenge.rubric), name)
        report.transcript_md = transcript_markdown(
            interview, challenge, turns, audit, metrics, name, report_text(view)
        )
        return report

    async def _evaluate(
        self,
        interview: Interview,
        challenge: Challenge,
        turns: Sequence[Turn],
        metrics: ReportMetrics,
        name: Callable[[str], str],
    ) -> tuple[Evaluation | None, str | None, int]:
        if not self.ctx.config.evaluation:
            return None, "The AI evaluation is off here (EVALUATION=off): metrics only.", 0
        if self.judge is None:
            return None, "No evaluation model is set up: metrics only.", 0
        criteria = criteria_for(challenge.rubric)
        facts = "\n".join(f"- {label}: {value}" for label, value in metrics_rows(metrics, name))
        request = JudgeRequest(
            model=self.ctx.config.evaluation_model or self.ctx.config.model,
            messages=judge_messages(
                f"{challenge.title}\n{challenge.description}",
                criteria,
                judge_transcript(turns),
                facts,
            ),
            criteria=criteria,
            turn_numbers=[t.seq for t in turns],
        )
        tokens, why = 0, "no answer"
        for _ in range(JUDGE_ATTEMPTS):
            result = await self.judge.evaluate(request)
            tokens += result.usage.total if result.usage else 0
            if result.evaluation is not None:
                read = {t.seq: judge_turn(t) for t in turns}
                checked, problem = check(result.evaluation, criteria, read)
                if checked is not None:
                    return checked, None, tokens
                why = problem or "the answer did not fit the rubric"
            else:
                why = result.error or "no answer"
            log.warning("evaluation of interview %s failed: %s", interview.id, why)
        return (
            None,
            f"The AI evaluation failed ({why}), so this report has the metrics only.",
            tokens,
        )

    # ------------------------------------------------------------------------- delivery

    def target(self, workspace: Workspace, interviewer_id: str) -> ReportTarget:
        channel = interviewer_channel(self.ctx, workspace)
        if channel:
            return ReportTarget(channel, interviewer_id)
        return ReportTarget(None, interviewer_id, NO_CHANNEL_HINT)

    async def _on_deliver(self, job: Job) -> None:
        ctx = self.ctx
        async with ctx.uow() as uow:
            report = await uow.reports.for_interview(str(job.payload["interview_id"]))
            workspace = await uow.workspaces.get(report.workspace_id) if report else None
        if report is None or workspace is None or report.delivered_at is not None:
            return
        target = self.target(workspace, report.interviewer_id)
        if "target" in report.delivery:  # resume where the last attempt stopped
            stored = report.delivery["target"]
            target = ReportTarget(stored.get("channel_id"), stored["user_id"], stored.get("hint"))
        elif target.channel_id is not None and job.attempts > CHANNEL_ATTEMPTS:
            # The channel keeps refusing (deleted, the bot removed): the interviewer gets it.
            target = ReportTarget(
                None,
                report.interviewer_id,
                f"I could not post this report in <#{target.channel_id}> "
                f"({(job.last_error or 'the channel refused it')[:200]}). Check the channel, "
                "or set another with `/interview config channel #channel`.",
            )
        await self._post(report, workspace, target, record=True)

    async def _post(
        self, report: Report, workspace: Workspace, target: ReportTarget, *, record: bool
    ) -> None:
        platform = self.ctx.platforms[report.platform]
        view = await self.view(report)
        files = self.files(report)
        delivery = dict(report.delivery) if record else {}
        if "ref" not in delivery:
            posted = await platform.post_report(workspace, target, view, files)
            delivery.update(
                ref=posted.ref,
                files=posted.files_attached,
                target={
                    "channel_id": target.channel_id,
                    "user_id": target.user_id,
                    "hint": target.hint,
                },
            )
            if record:
                await self._record(report, delivery, done=posted.files_attached)
        if not delivery["files"]:
            await platform.attach_report_files(workspace, target, str(delivery["ref"]), files)
            delivery["files"] = True
            if record:
                await self._record(report, delivery, done=True)

    async def _record(self, report: Report, delivery: dict[str, object], *, done: bool) -> None:
        report.delivery = dict(delivery)
        if done:
            report.delivered_at = self.ctx.clock.now()
        async with self.ctx.uow() as uow:
            await uow.reports.update_delivery(report)
            await uow.commit()

    async def _challenge(self, report: Report) -> Challenge | None:
        """The report's challenge (None if it was deleted since)."""
        async with self.ctx.uow() as uow:
            try:
                return await find_challenge(
                    uow.challenges, report.workspace_id, report.challenge_slug
                )
            except NotFound:
                return None

    async def view(self, report: Report, *, reposted: bool = False) -> ReportView:
        challenge = await self._challenge(report)
        title = challenge.title if challenge else report.challenge_slug
        criteria = criteria_for(challenge.rubric) if challenge else DEFAULT_CRITERIA
        mention = self.ctx.platforms[report.platform].mention
        return build_view(report, title, criteria, mention, reposted=reposted)

    @staticmethod
    def files(report: Report) -> list[ReportFile]:
        short = report.interview_id[:8]
        files = [ReportFile(f"report-{short}.md", report.transcript_md.encode(), "Transcript")]
        if report.chart_png:
            files.insert(0, ReportFile(f"chart-{short}.png", report.chart_png, "Tokens and time"))
        return files

    # ------------------------------------------------------------------ interviewer commands

    async def latest(self, workspace: Workspace, actor: Actor, candidate_id: str) -> Report:
        _require_interviewer(actor, candidate_id, "see reports")
        async with self.ctx.uow() as uow:
            report = await uow.reports.latest_for_candidate(workspace.id, candidate_id)
            if report is None:
                running = await uow.interviews.find_open_for_candidate(workspace.id, candidate_id)
        if report is None:
            mention = self.ctx.platforms[workspace.platform].mention(candidate_id)
            if running is not None and running.status is not Status.ENDED:
                raise NotFound(
                    f"{mention}'s interview is still running; the report follows when it ends."
                )
            raise NotFound(f"There is no report for {mention} yet.")
        return report

    async def repost(self, workspace: Workspace, actor: Actor, candidate_id: str) -> Posted:
        """``/interview report``: the latest report again, to the interviewers' channel."""
        report = await self.latest(workspace, actor, candidate_id)
        target = self.target(workspace, actor.user_id)
        platform = self.ctx.platforms[report.platform]
        view = await self.view(report, reposted=True)
        files = self.files(report)
        posted = await platform.post_report(workspace, target, view, files)
        if not posted.files_attached:
            await platform.attach_report_files(workspace, target, posted.ref, files)
        return Posted(target)

    async def export(self, workspace: Workspace, actor: Actor, candidate_id: str) -> ReportFile:
        """``/interview export``: the transcript file, for the caller alone."""
        report = await self.latest(workspace, actor, candidate_id)
        return next(f for f in self.files(report) if f.filename.endswith(".md"))

    async def compare(
        self, workspace: Workspace, actor: Actor, candidate_ids: Sequence[str]
    ) -> Posted:
        """``/interview compare``: the latest reports side by side."""
        for candidate in candidate_ids:
            _require_interviewer(actor, candidate, "compare reports")
        unique = list(dict.fromkeys(candidate_ids))
        if not 2 <= len(unique) <= 4:
            raise InvalidInput("Compare two to four different candidates.")
        mention = self.ctx.platforms[workspace.platform].mention
        columns: list[Compared] = []
        missing: list[str] = []
        platform = self.ctx.platforms[workspace.platform]
        for candidate in unique:
            async with self.ctx.uow() as uow:
                report = await uow.reports.latest_for_candidate(workspace.id, candidate)
            if report is None:
                missing.append(mention(candidate))
                continue
            columns.append(
                Compared(
                    await _name(platform, workspace, candidate),
                    report.challenge_slug,
                    ReportMetrics.from_dict(report.metrics),
                    Evaluation.model_validate(report.evaluation) if report.evaluation else None,
                )
            )
        if missing:
            raise NotFound("No report yet for " + ", ".join(missing) + ".")
        # A challenge's own criteria are comparable only between interviews of that challenge.
        criteria: Sequence[Criterion] = DEFAULT_CRITERIA
        if len({c.challenge for c in columns}) == 1 and report is not None:
            challenge = await self._challenge(report)
            criteria = criteria_for(challenge.rubric) if challenge else DEFAULT_CRITERIA
        table = compare_table(columns, {c.key: c.name for c in criteria})
        note = ""
        if len({c.challenge for c in columns}) > 1:
            note = "\nNote: these interviews used different challenges; compare with care."
        text = (
            "Side by side: " + ", ".join(mention(c) for c in unique) + f"\n```\n{table}\n```{note}"
        )
        target = self.target(workspace, actor.user_id)
        if target.channel_id is not None:
            await self.ctx.platforms[workspace.platform].post_to_channel(
                workspace, target.channel_id, text
            )
            return Posted(target)
        return Posted(target, text)


def _require_interviewer(actor: Actor, candidate_id: str, what: str) -> None:
    """Interviewers only, and never about themselves."""
    if not actor.is_interviewer or actor.user_id == candidate_id:
        raise NotAuthorized(f"Only interviewers can {what}.")


async def _name(platform: Platform, workspace: Workspace, user_id: str) -> str:
    try:
        return await platform.display_name(workspace, user_id)
    except Exception:
        log.warning("could not look up the name of %s", user_id, exc_info=True)
        return user_id


async def _link(platform: Platform, interview: Interview, message_id: str) -> str | None:
    try:
        return await platform.message_link(interview, message_id)
    except Exception:
        log.warning("could not link message %s", message_id, exc_info=True)
        return None
