"""The turn engine: a candidate's message in, a reply out, never a token over the budget.

One turn at a time per interview, in arrival order, across processes: whoever holds the
interview's lease (a row with an expiry, renewed while a reply streams) answers every open
turn in ``seq`` order. A process that finds the lease taken leaves its turn to the holder and
schedules an ``answer`` job at the lease's expiry, so a holder that died is taken over.

Before a call, the prompt plus its completion cap is reserved in the statement that checks
the budget; afterwards the reservation is settled with what the API reported. A turn is
settled once (only while it is still ``streaming``), so a holder that lost its lease can
never charge a second time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from core import texts
from core.budget import Charge, charge, completion_cap, exhausted
from core.challenges import find_challenge, system_prompt_for
from core.context import Context
from core.intake import Refusal, check_message, clean_message, stored_content
from core.models import Challenge, EndReason, Interview, Job, Status, Turn, TurnStatus
from core.outage import track_outage
from core.ports import ChatMessage, ChatRequest, ChatResult, OnDelta, ReplyWriter
from core.tokens import TokenCounter
from core.upkeep import Upkeep

log = logging.getLogger(__name__)

ANSWER = "answer"
EMPTY: ChatMessage = {"role": "user", "content": ""}
RESERVE_ATTEMPTS = 3
# Rate limits: a bucket of a minute's worth (CANDIDATE_MESSAGES_PER_MINUTE per interview,
# WORKSPACE_LLM_CALLS_PER_MINUTE per workspace) that refills continuously; so that many may
# come at once, then one every 60 / N seconds. Over a limit, at most one notice per
# interview every RATE_NOTICE_S: a flood of messages is refused without a flood of notices.
RATE_NOTICE_S = 10.0
NOTIFY_S = 3.0  # at shutdown, how long telling the candidate about an interrupted reply may take


def lease_key(interview_id: str) -> str:
    return f"interview:{interview_id}"


class Turns:
    def __init__(self, ctx: Context, upkeep: Upkeep) -> None:
        self.ctx = ctx
        self.upkeep = upkeep
        self._draining: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._answering: set[asyncio.Task[object]] = set()  # tasks holding a lease
        self.stopping = False  # shutting down: no new turn is started
        ctx.jobs.on(ANSWER, self._on_answer)

    # ------------------------------------------------------------------ messages in

    async def handle_message(
        self,
        platform: str,
        room_key: str,
        author_id: str,
        message_id: str,
        text: str,
        *,
        attachments: int = 0,
    ) -> Turn | None:
        """A message in an interview conversation. Only the candidate's go to the model.

        ``attachments``: how many files came with it (files never go to the model). The text
        is cleaned of control and invisible characters first. A message over the
        candidate's rate limit, empty, nothing but files, or longer than
        ``max_message_chars`` is stored ``refused`` with why, the candidate is told, and
        nothing is charged. Idempotent: a redelivered ``message_id`` (any process) is stored
        once, answered once.
        """
        ctx = self.ctx
        async with ctx.uow() as uow:
            interview = await uow.interviews.find_by_room(platform, room_key)
        if interview is None or author_id != interview.candidate_id:
            return None
        content = clean_message(text)
        turn = Turn(
            interview_id=interview.id,
            author_id=author_id,
            content=content,
            platform_message_id=message_id,
            created_at=ctx.clock.now(),
        )
        # Every message counts, whatever the interview's state: each one makes the bot
        # answer or post a notice. (A redelivery takes a slot too; it is stored once.)
        per_minute = ctx.config.candidate_messages_per_minute
        too_fast = await self._over_rate(f"candidate:{interview.id}", per_minute)
        refusal = (
            Refusal(texts.too_fast(per_minute), texts.too_fast_error(per_minute))
            if too_fast
            else check_message(content, attachments, ctx.config.max_message_chars)
        )
        if refusal is not None:
            turn.status, turn.error = TurnStatus.REFUSED, refusal.error
            turn.content = stored_content(content, ctx.config.max_message_chars)
        async with ctx.uow() as uow:
            added = await uow.interviews.add_turn(turn)
            await uow.commit()
        if not added:
            log.info("duplicate message %s for interview %s ignored", message_id, interview.id)
            return None
        if refusal is None:
            try:
                await self.drain(interview.id)
            except Exception:
                # Stored, so the engine owns it: if answering failed (the database went away
                # mid-answer), the sweep answers it later, or closes it and asks again.
                log.exception("interview %s: answering failed; the sweep takes over", interview.id)
            return turn
        log.info("interview %s: message %s %s", interview.id, message_id, refusal.error)
        if too_fast:
            await self._rate_notice(interview, refusal.notice)
        else:
            await ctx.notice(interview, refusal.notice)
        ctx.metrics.turn_done(turn.status.value, 0, 0.0)
        return turn

    async def drain(self, interview_id: str) -> None:
        """Answer the interview's open turns in order, if this process can take the lease."""
        draining = self._draining.setdefault(interview_id, asyncio.Lock())
        if draining.locked() or self.stopping:
            return  # answered by this process's drain, or (stopping) by the next process
        task = asyncio.current_task()
        async with draining:
            if task is not None:
                self._answering.add(task)
            try:
                await self._drain(interview_id)
            finally:
                self._answering.discard(task)

    async def _drain(self, interview_id: str) -> None:
        while True:
            if not await self._take_lease(interview_id):
                await self._answer_later(interview_id)
                return
            try:
                while not self.stopping and (turn := await self._next(interview_id)) is not None:
                    await self._handle(turn)
            finally:
                await self._release(interview_id)
            # A turn stored between our last look and the release found the lease taken.
            if self.stopping or await self._next(interview_id) is None:
                return

    async def sweep(self) -> None:
        """Take over open turns whose process died (their lease expired)."""
        async with self.ctx.uow() as uow:
            ids = await uow.interviews.with_open_turns()
        for interview_id in ids:
            self._spawn(self.drain(interview_id))

    @property
    def busy(self) -> bool:
        return bool(self._background or self._answering - {asyncio.current_task()})

    async def settle(self) -> None:
        """Wait for background drains and turns being answered (tests, shutdown)."""
        while self.busy:
            me = asyncio.current_task()
            running = self._background | {t for t in self._answering if t is not me}
            await asyncio.gather(*running, return_exceptions=True)

    async def stop(self, grace_s: float) -> None:
        """Shutdown: start no new turn (open ones are left to the next process); give the
        replies under way ``grace_s`` to finish, then interrupt them: each records itself as
        ``failed`` ("interrupted"), charged what it cost, and asks the candidate to resend."""
        self.stopping = True
        me = asyncio.current_task()
        running: set[asyncio.Task[object]] = {
            t for t in self._answering | self._background if t is not me
        }
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=grace_s)
        if late:
            log.warning("interrupting %d reply(s) still streaming at shutdown", len(late))
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=NOTIFY_S + 2.0)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _on_answer(self, job: Job) -> None:
        await self.drain(str(job.payload["interview_id"]))

    # ------------------------------------------------------------------ the lease

    async def _take_lease(self, interview_id: str) -> bool:
        ctx = self.ctx
        now = ctx.clock.now()
        async with ctx.uow() as uow:
            taken = await uow.leases.take(
                lease_key(interview_id),
                ctx.jobs.owner,
                now,
                now + timedelta(seconds=ctx.config.lease_s),
            )
            await uow.commit()
        return taken

    async def _release(self, interview_id: str) -> None:
        async with self.ctx.uow() as uow:
            await uow.leases.release(lease_key(interview_id), self.ctx.jobs.owner)
            await uow.commit()

    async def _answer_later(self, interview_id: str) -> None:
        ctx = self.ctx
        now = ctx.clock.now()
        async with ctx.uow() as uow:
            held = await uow.leases.holder(lease_key(interview_id), now)
            due = (held[1] if held else now) + timedelta(seconds=1)
            await uow.jobs.schedule(
                Job(ANSWER, f"answer:{interview_id}", due, {"interview_id": interview_id})
            )
            await uow.commit()
        ctx.jobs.armed(due)

    async def _next(self, interview_id: str) -> Turn | None:
        async with self.ctx.uow() as uow:
            return await uow.interviews.next_open_turn(interview_id)

    # ------------------------------------------------------------------ one turn

    async def _handle(self, turn: Turn) -> None:
        if turn.status is TurnStatus.STREAMING:
            await self._take_over(turn)
            return
        started = time.monotonic()
        status, charged = await self._answer(turn)
        self.ctx.metrics.turn_done(status.value, charged, time.monotonic() - started)

    async def _answer(self, turn: Turn) -> tuple[TurnStatus, int]:
        ctx = self.ctx
        have_slot = False  # of the workspace's model calls (taken once, whatever the retries)
        for _ in range(RESERVE_ATTEMPTS):
            async with ctx.uow() as uow:
                interview = await uow.interviews.get(turn.interview_id)
                assert interview is not None
                challenge = await find_challenge(
                    uow.challenges, interview.workspace_id, interview.challenge_slug
                )
                earlier = await uow.interviews.list_turns(interview.id)
            if interview.status is Status.ACTIVE and interview.seconds_left(ctx.clock.now()) <= 0:
                await self.upkeep.finish(interview.id, EndReason.TIME_UP, "system")
                interview = await ctx.load(interview.id)
            if interview.status is not Status.ACTIVE:
                turn.status = TurnStatus.UNANSWERED
                await self._save_turn(turn, TurnStatus.PENDING)
                await ctx.notice(interview, texts.not_running(interview))
                return turn.status, 0
            counter = TokenCounter(challenge.model or ctx.config.model)
            history = _history(challenge, earlier, turn.seq)
            messages = [*history, {"role": "user", "content": turn.content}]
            prompt_tokens = counter.count_messages(messages)
            left = interview.tokens_left
            cap = completion_cap(left, prompt_tokens)
            if cap <= 0:
                turn.status, turn.prompt_tokens = TurnStatus.REFUSED, prompt_tokens
                await self._save_turn(turn, TurnStatus.PENDING)
                await ctx.notice(interview, texts.refused(prompt_tokens, left))
                await self._end_if_exhausted(interview, counter, history)
                return turn.status, 0
            if not have_slot:
                per_minute = ctx.config.workspace_llm_calls_per_minute
                if await self._over_rate(f"llm:{interview.workspace_id}", per_minute):
                    turn.status = TurnStatus.REFUSED
                    turn.error = texts.workspace_busy_error(per_minute)
                    await self._save_turn(turn, TurnStatus.PENDING)
                    await self._rate_notice(interview, texts.workspace_busy(per_minute))
                    return turn.status, 0
                have_slot = True
            reserved = prompt_tokens + cap
            turn.status, turn.prompt_tokens, turn.reserved_tokens = (
                TurnStatus.STREAMING,
                prompt_tokens,
                reserved,
            )
            async with ctx.uow() as uow:
                # Authorize: hold the whole call's worth in the statement that checks it fits.
                held = await uow.interviews.reserve(interview.id, reserved)
                if held:
                    await uow.interviews.update_turn(turn, was=TurnStatus.PENDING)
                    await uow.commit()  # persisted before the call: a crash is recoverable
            if held:
                return await self._call(interview, challenge, turn, counter, messages, history)
            turn.status, turn.reserved_tokens = TurnStatus.PENDING, 0  # changed meanwhile
        raise RuntimeError(f"could not reserve tokens for turn {turn.id}")

    async def _call(
        self,
        interview: Interview,
        challenge: Challenge,
        turn: Turn,
        counter: TokenCounter,
        messages: list[ChatMessage],
        history: list[ChatMessage],
    ) -> tuple[TurnStatus, int]:
        ctx = self.ctx
        writer = ctx.platform(interview).reply_writer(interview, turn)
        request = ChatRequest(
            model=challenge.model or ctx.config.model,
            messages=messages,
            max_completion_tokens=turn.reserved_tokens - turn.prompt_tokens,
            temperature=challenge.temperature
            if challenge.temperature is not None
            else ctx.config.temperature,
        )
        received: list[str] = []

        async def relay(delta: str) -> None:
            received.append(delta)
            await writer.append(delta)

        try:
            result = await self._stream(interview, request, relay)
        except asyncio.CancelledError:
            # Shutdown or Ctrl-C: record what the call cost before going.
            await asyncio.shield(
                self._settle_cancelled(turn, "".join(received), counter, interview, writer)
            )
            raise
        cost = charge(
            result,
            turn.prompt_tokens,
            turn.reserved_tokens,
            counter.count_text(result.text) if result.usage is None else 0,
        )
        turn.reply = result.text
        turn.prompt_tokens, turn.completion_tokens = cost.prompt_tokens, cost.completion_tokens
        turn.charged_tokens = cost.charged
        turn.usage_reported = result.usage is not None
        turn.error = result.error
        turn.answered_at = ctx.clock.now()
        turn.status = TurnStatus.FAILED if result.error else TurnStatus.ANSWERED
        # The end of the reply goes out first: the candidate waits for it, not for the
        # database. Its tokens left are those at the start of the turn less its charge (what
        # the settlement leaves, unless the budget changed meanwhile). A crash in between
        # leaves the turn streaming: taken over, it is charged its prompt only.
        left = max(0, interview.tokens_left - cost.charged)
        await self._show_end(writer, result.error, cost.charged, left)
        conversation = await self._record(interview, turn, cost, counter, history)
        interview = await ctx.load(interview.id)
        await track_outage(ctx, interview, result)
        if interview.status is Status.ACTIVE and interview.seconds_left(ctx.clock.now()) <= 0:
            await self.upkeep.finish(interview.id, EndReason.TIME_UP, "system")
        elif interview.is_open and not await self._end_if_exhausted(
            interview, counter, conversation
        ):
            await self.upkeep.refresh(interview, challenge)
        return turn.status, cost.charged

    async def _show_end(
        self, writer: ReplyWriter, error: str | None, charged: int, left: int
    ) -> None:
        if error:
            await writer.fail(texts.failed(error, charged))
        else:
            await writer.finish(texts.footer(self.ctx.model.label, charged, left))

    async def _record(
        self,
        interview: Interview,
        turn: Turn,
        cost: Charge,
        counter: TokenCounter,
        history: list[ChatMessage],
    ) -> list[ChatMessage]:
        """Settle the reservation with what was really spent, once per turn; returns the
        conversation as the next turn will see it."""
        conversation = history + (_pair(turn) if turn.status is TurnStatus.ANSWERED else [])
        next_prompt = counter.count_messages([*conversation, EMPTY])
        answered = (len(conversation) - 1) // 2
        growth = None
        if answered:
            base = counter.count_messages([*conversation[:1], EMPTY])
            growth = max(1, (next_prompt - base) // answered)
        ctx = self.ctx
        async with ctx.uow() as uow:
            if await uow.interviews.update_turn(turn, was=TurnStatus.STREAMING):
                await uow.interviews.settle(
                    interview.id,
                    reserved=turn.reserved_tokens,
                    charged=cost.charged,
                    next_prompt_tokens=next_prompt,
                    turn_growth_tokens=growth,
                )
                if cost.overrun > 0:
                    # Only possible when the endpoint tokenizes differently from our count.
                    log.warning(
                        "interview %s: API reported %d tokens over budget",
                        interview.id,
                        cost.overrun,
                    )
                    await uow.interviews.add_events(
                        ctx.event(
                            interview,
                            None,
                            "budget_overrun",
                            reported=cost.spent,
                            charged=cost.charged,
                        )
                    )
                await uow.commit()
        return conversation

    async def _stream(
        self, interview: Interview, request: ChatRequest, on_delta: OnDelta
    ) -> ChatResult:
        """Stream the reply while renewing the lease; stop it at the deadline, when the
        interviewer pauses or ends the interview, or when the lease is lost."""
        received: list[str] = []

        async def relay(delta: str) -> None:
            received.append(delta)
            await on_delta(delta)

        call = asyncio.create_task(self.ctx.model.stream_chat(request, relay))
        watch = asyncio.create_task(self._watch(interview))
        try:
            await asyncio.wait({call, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            call.cancel()
            raise
        finally:
            watch.cancel()
        if call.done():
            return call.result()
        call.cancel()  # closes the HTTP stream: nothing more is generated or billed
        await asyncio.gather(call, return_exceptions=True)
        return ChatResult(
            text="".join(received), usage=None, error=watch.result(), reached_model=True
        )

    async def _watch(self, interview: Interview) -> str:
        """Returns why the stream must stop (renewing the lease until then)."""
        ctx = self.ctx
        every = timedelta(seconds=ctx.config.lease_s / 3)
        while True:
            now = ctx.clock.now()
            deadline = interview.deadline(now)
            wake = now + every if deadline is None else min(deadline, now + every)
            await ctx.clock.sleep_until(wake)
            now = ctx.clock.now()
            async with ctx.uow() as uow:
                fresh = await uow.interviews.get(interview.id)
                held = await uow.leases.take(
                    lease_key(interview.id),
                    ctx.jobs.owner,
                    now,
                    now + timedelta(seconds=ctx.config.lease_s),
                )
                await uow.commit()
            if not held:
                return texts.LEASE_LOST
            if fresh is None or fresh.status is not Status.ACTIVE:
                return texts.STOPPED_BY_INTERVIEWER
            if fresh.seconds_left(now) <= 0:
                return texts.STOPPED_AT_DEADLINE
            interview = fresh

    async def _end_if_exhausted(
        self, interview: Interview, counter: TokenCounter, history: list[ChatMessage]
    ) -> bool:
        """End the session when not even a short message with a short reply still fits."""
        smallest_next = counter.count_messages([*history, EMPTY])
        left = interview.tokens_left
        if not exhausted(left, smallest_next):
            return False
        note = texts.exhausted_note(left, smallest_next)
        await self.upkeep.finish(interview.id, EndReason.TOKENS_EXHAUSTED, "system", note)
        return True

    # ------------------------------------------------------------------ interrupted turns

    async def _settle_cancelled(
        self,
        turn: Turn,
        received: str,
        counter: TokenCounter,
        interview: Interview,
        writer: ReplyWriter,
    ) -> None:
        """This process is stopping mid-reply: charge the prompt and what arrived. At a
        shutdown (not Ctrl-C in the console) the reply is closed and the candidate asked to
        send the message again."""
        spent = turn.prompt_tokens + counter.count_text(received) if received else 0
        turn.reply, turn.error = received, texts.INTERRUPTED
        settled = await self._close_streaming(turn, min(spent, turn.reserved_tokens))
        if not (settled and self.stopping):
            return
        try:
            async with asyncio.timeout(NOTIFY_S):
                await writer.fail(texts.failed(texts.INTERRUPTED, turn.charged_tokens))
                await self.ctx.notice(interview, texts.RESEND_AFTER_RESTART)
        except Exception:
            log.warning("could not tell the candidate of interview %s", interview.id, exc_info=True)

    async def _take_over(self, turn: Turn) -> None:
        """A turn left streaming by a process that died: its prompt reached the API."""
        turn.error = "interrupted by a restart"
        if await self._close_streaming(turn, min(turn.prompt_tokens, turn.reserved_tokens)):
            interview = await self.ctx.load(turn.interview_id)
            await self.ctx.notice(interview, texts.RESEND_AFTER_RESTART)

    async def _close_streaming(self, turn: Turn, charged: int) -> bool:
        turn.status, turn.charged_tokens = TurnStatus.FAILED, charged
        turn.answered_at = self.ctx.clock.now()
        try:
            async with self.ctx.uow() as uow:
                if not await uow.interviews.update_turn(turn, was=TurnStatus.STREAMING):
                    return False
                await uow.interviews.settle(
                    turn.interview_id, reserved=turn.reserved_tokens, charged=charged
                )
                await uow.commit()
        except Exception:
            log.exception("could not record the interrupted turn %s", turn.id)
            return False
        self.ctx.metrics.turn_done(turn.status.value, charged, 0.0)
        return True

    # ------------------------------------------------------------------ rate limits

    async def _over_rate(self, key: str, per_minute: int) -> bool:
        """Whether ``key`` has used up its ``per_minute`` for now; if not, a slot is taken.
        No limiter, or 0: no limit."""
        limiter = self.ctx.limiter
        if limiter is None or per_minute <= 0:
            return False
        return not await limiter.try_acquire(key, per_minute / 60, burst=per_minute)

    async def _rate_notice(self, interview: Interview, text: str) -> None:
        limiter = self.ctx.limiter
        assert limiter is not None
        if await limiter.try_acquire(f"notice:{interview.id}", 1 / RATE_NOTICE_S, burst=1):
            await self.ctx.notice(interview, text)

    async def _save_turn(self, turn: Turn, was: TurnStatus) -> None:
        async with self.ctx.uow() as uow:
            await uow.interviews.update_turn(turn, was=was)
            await uow.commit()


def _history(challenge: Challenge, turns: list[Turn], before_seq: int) -> list[ChatMessage]:
    messages: list[ChatMessage] = [{"role": "system", "content": system_prompt_for(challenge)}]
    for turn in turns:
        if turn.seq < before_seq and turn.status is TurnStatus.ANSWERED:
            messages.extend(_pair(turn))
    return messages


def _pair(turn: Turn) -> list[ChatMessage]:
    return [{"role": "user", "content": turn.content}, {"role": "assistant", "content": turn.reply}]
