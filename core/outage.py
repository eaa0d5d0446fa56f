"""Telling people once that the AI assistant is down, and forgetting it once it is back.

A turn whose call came back with ``outage=True`` (the model's circuit breaker is open, or
the failure that opened it) posts ONE notice in the candidate's conversation and sends ONE
DM to the interviewer, per interview and outage: the key :data:`LLM_DOWN` is added to
``interview.warnings_sent`` through :meth:`Context.save`, so whichever process (or turn)
saves it first announces, and nobody else. A call that succeeds again removes the key, so
a later outage is announced again.
"""

from __future__ import annotations

import logging

from core.context import Context
from core.models import AuditEvent, Interview
from core.ports import ChatResult, UnitOfWork

log = logging.getLogger(__name__)

LLM_DOWN = "llm_down"

CANDIDATE_NOTICE = (
    "⚠️ The AI assistant is unavailable right now, so the bot has stopped calling it for a "
    "moment. Your interviewer has been told. Messages that don't reach it cost no tokens; "
    "send yours again in a minute or two."
)


def interviewer_notice(candidate: str, challenge: str) -> str:
    return (
        f"⚠️ The AI assistant is unavailable in {candidate}'s interview ({challenge}): its "
        "endpoint failed several times in a row, so the bot stopped calling it for now and "
        "tries again by itself. The candidate's messages meanwhile cost no tokens, but the "
        "interview's time keeps running: you may want to pause it, or extend it later."
    )


async def track_outage(ctx: Context, interview: Interview, result: ChatResult) -> None:
    """After a turn's call: announce an outage once, or forget one that is over. Never
    raises (the turn is settled already; this must not break it)."""
    try:
        if result.outage:
            await _announce(ctx, interview)
        elif result.error is None and LLM_DOWN in interview.warnings_sent:
            await _forget(ctx, interview)
    except Exception:
        log.exception("could not track the AI assistant's outage in interview %s", interview.id)


async def _announce(ctx: Context, interview: Interview) -> None:
    async def mark(uow: UnitOfWork, fresh: Interview) -> list[AuditEvent] | None:
        if LLM_DOWN in fresh.warnings_sent or not fresh.is_open:
            return None
        fresh.warnings_sent = [*fresh.warnings_sent, LLM_DOWN]
        return [ctx.event(fresh, None, "llm_unavailable")]

    interview, changed = await ctx.save(interview.id, mark)
    if not changed:
        return
    await ctx.notice(interview, CANDIDATE_NOTICE)
    platform = ctx.platform(interview)
    async with ctx.uow() as uow:
        workspace = await uow.workspaces.get(interview.workspace_id)
    if workspace is not None:
        candidate = platform.mention(interview.candidate_id)
        text = interviewer_notice(candidate, interview.challenge_slug)
        await platform.send_dm(workspace, interview.interviewer_id, text)


async def _forget(ctx: Context, interview: Interview) -> None:
    async def clear(uow: UnitOfWork, fresh: Interview) -> list[AuditEvent] | None:
        if LLM_DOWN not in fresh.warnings_sent:
            return None
        fresh.warnings_sent = [k for k in fresh.warnings_sent if k != LLM_DOWN]
        return [ctx.event(fresh, None, "llm_available")]

    await ctx.save(interview.id, clear)
