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
import enum
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core import texts
from core.budget import Charge, charge, completion_cap, exhausted
from core.challenges import find_challenge, system_prompt_for
from core.context import Context
from core.errors import NotFound
from core.intake import Refusal, check_message, clean_message, stored_content
from core.models import (
    OPEN_TURN_STATUSES,
    Challenge,
    EndReason,
    Interview,
    Job,
    Status,
    Turn,
    TurnStatus,
)
from core.outage import track_outage
from core.ports import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    OnDelta,
    ReplyWriter,
    UnitOfWork,
)
from core.rooms import Rooms
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


class Step(enum.Enum):
    """What a claim decided for the next open turn."""

    ANSWER = "answer"  # reserved and streaming: call the model
    NEEDS_SLOT = "needs slot"  # answerable once a model call's slot is taken
    CHANGED = "changed"  # the budget changed between the read and the reservation
    TIME_UP = "time up"  # the interview is past its deadline: end it first
    NOT_RUNNING = "not running"  # stored unanswered
    NO_ROOM = "no room"  # the prompt leaves no room for a reply: stored refused
    TAKE_OVER = "take over"  # left streaming by a process that died (or no turn at all)
    ELSEWHERE = "elsewhere"  # another process holds the lease


@dataclass
class Intake:
    """A candidate's new turn, stored by the drain's first claim."""

    turn: Turn
    added: bool | None = None  # None: not stored (yet); False: a duplicate


@dataclass
class Claim:
    """The next open turn of an interview whose lease this process holds, and its fate."""

    turn: Turn | None  # None: nothing open
    step: Step
    interview: Interview | None = None
    challenge: Challenge | None = None
    counter: TokenCounter | None = None
    history: list[ChatMessage] = field(default_factory=list)
    messages: list[ChatMessage] = field(default_factory=list)


class Turns:
    def __init__(self, ctx: Context, upkeep: Upkeep) -> None:
        self.ctx = ctx
        self.upkeep = upkeep
        self._draining: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._answering: set[asyncio.Task[object]] = set()  # tasks holding a lease
        self.stopping = False  # shutting down: no new turn is started
        self._rooms = Rooms(ctx.uow, ctx.clock)
        self._stored_meanwhile: set[str] = set()  # interviews with a turn stored mid-drain
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
        candidate's rate limit or the workspace's model calls, empty, nothing but files, or
        longer than ``max_message_chars`` is stored ``refused`` with why, the candidate is
        told, and nothing is charged. Idempotent: a redelivered ``message_id`` (any process)
        is stored once, answered once.
        """
        ctx = self.ctx
        interview = await self._rooms.find(platform, room_key)
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
        # answer or post a notice. (A redelivery takes a slot too; it is stored once.) One
        # that may go to the model takes a model call's slot of the workspace at the same
        # time (given back unless a call uses it), unless this process is answering the
        # interview already: that drain takes one per call.
        per_minute = ctx.config.candidate_messages_per_minute
        candidate_key = f"candidate:{interview.id}"
        refusal = check_message(content, attachments, ctx.config.max_message_chars)
        slot: str | None = None
        if refusal is None and not self._drain_running(interview.id):
            too_fast, slot = await asyncio.gather(
                self._over_rate(candidate_key, per_minute), self._model_slot(interview)
            )
            busy = slot is None and not too_fast
        else:
            too_fast, busy = await self._over_rate(candidate_key, per_minute), False
        if too_fast:
            await self._give_back(slot)
            refusal = Refusal(texts.too_fast(per_minute), texts.too_fast_error(per_minute))
        elif busy:
            refusal = _workspace_busy(ctx.config.workspace_llm_calls_per_minute)
        if refusal is None:
            # Stored, the lease taken and the tokens reserved in one transaction.
            intake = Intake(turn)
            try:
                await self.drain(interview.id, slot=slot, intake=intake)
            except NotFound:  # deleted (a privacy purge) since its room was looked up
                self._rooms.forget(platform, room_key)
                return None
            except Exception:
                if intake.added is None:
                    raise  # not stored: the adapter says so
                # Stored, so the engine owns it: if answering failed (the database went away
                # mid-answer), the sweep answers it later, or closes it and asks again.
                log.exception("interview %s: answering failed; the sweep takes over", interview.id)
            if intake.added is False:
                log.info("duplicate message %s for interview %s ignored", message_id, interview.id)
                return None
            return turn
        turn.status, turn.error = TurnStatus.REFUSED, refusal.error
        turn.content = stored_content(content, ctx.config.max_message_chars)
        try:
            added = await self._store(turn)
        except NotFound:
            self._rooms.forget(platform, room_key)
            return None
        if not added:
            log.info("duplicate message %s for interview %s ignored", message_id, interview.id)
            return None
        log.info("interview %s: message %s %s", interview.id, message_id, refusal.error)
        if too_fast or busy:
            await self._rate_notice(interview, refusal.notice)
        else:
            await ctx.notice(interview, refusal.notice)
        ctx.metrics.turn_done(turn.status.value, 0, 0.0)
        return turn

    def _drain_running(self, interview_id: str) -> bool:
        draining = self._draining.get(interview_id)
        return draining is not None and draining.locked()

    async def drain(
        self, interview_id: str, *, slot: str | None = None, intake: Intake | None = None
    ) -> None:
        """Answer the interview's open turns in order, if this process can take the lease.

        ``slot``: the rate key of a model call's slot taken for the first call; given back
        if no call is made. ``intake``: a new turn to store first (in the transaction that
        takes the lease and claims the next turn)."""
        draining = self._draining.setdefault(interview_id, asyncio.Lock())
        if draining.locked() or self.stopping:
            # answered by this process's drain, or (stopping) by the next process
            await self._give_back(slot)
            if intake is not None:
                intake.added = await self._store(intake.turn)
                if intake.added and not self.stopping:
                    if draining.locked():
                        self._stored_meanwhile.add(interview_id)  # that drain looks again
                    else:  # it ended while the turn was stored, perhaps without seeing it
                        await self.drain(interview_id)
            return
        task = asyncio.current_task()
        async with draining:
            if task is not None:
                self._answering.add(task)
            try:
                await self._give_back(await self._drain(interview_id, slot, intake))
            finally:
                self._answering.discard(task)

    async def _drain(
        self, interview_id: str, slot: str | None, intake: Intake | None
    ) -> str | None:
        """Returns the slot if it was not used."""
        while True:
            held, misses = False, 0
            self._stored_meanwhile.discard(interview_id)
            try:
                while not self.stopping:
                    claim = await self._claim(interview_id, slot is not None, intake)
                    intake = None
                    if claim.step is Step.ELSEWHERE:  # the lease is another process's
                        await self._answer_later(interview_id)
                        return slot
                    held = True
                    if claim.turn is None:
                        break
                    misses = misses + 1 if claim.step in (Step.CHANGED, Step.TIME_UP) else 0
                    if misses >= RESERVE_ATTEMPTS:
                        raise RuntimeError(f"turn {claim.turn.id}: claimed {misses} times in vain")
                    slot = await self._act(claim, slot)
            finally:
                if held:
                    await self._release(interview_id)
            # A turn stored between our last look and the release found the lease taken, or
            # (this process) the drain running.
            if self.stopping:
                return slot
            if await self._next(interview_id) is None and (
                interview_id not in self._stored_meanwhile
            ):
                return slot

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

    async def _claim(
        self, interview_id: str, have_slot: bool, intake: Intake | None = None
    ) -> Claim:
        """One transaction: take (or renew) the lease, store the ``intake`` turn, find the
        next open turn, and decide what becomes of it. A turn to answer, with a model call's
        slot in hand, has its tokens reserved and is stored ``streaming`` (persisted before
        the call: a crash is recoverable); one that can't be answered is stored as such."""
        ctx = self.ctx
        now = ctx.clock.now()
        async with ctx.uow() as uow:
            until = now + timedelta(seconds=ctx.config.lease_s)
            # The lease first, then the interview's row (add_turn, reserve): the same order
            # in every transaction, so two can never wait for each other.
            held = await uow.leases.take(lease_key(interview_id), ctx.jobs.owner, now, until)
            added = intake is None or await uow.interviews.add_turn(intake.turn)
            # A turn just stored is open, so all turns are read at once (the next open one
            # among them); otherwise a look for the next open turn comes first.
            stored = intake is not None and added
            claim = (
                await self._claim_next(uow, interview_id, have_slot, now, stored=stored)
                if held
                else Claim(None, Step.ELSEWHERE)
            )
            await uow.commit()
        if intake is not None:
            intake.added = added
        return claim

    async def _claim_next(
        self,
        uow: UnitOfWork,
        interview_id: str,
        have_slot: bool,
        now: datetime,
        *,
        stored: bool = False,
    ) -> Claim:
        earlier: list[Turn] | None = None
        if stored:
            earlier = await uow.interviews.list_turns(interview_id)
            turn = next((t for t in earlier if t.status in OPEN_TURN_STATUSES), None)
        else:
            turn = await uow.interviews.next_open_turn(interview_id)
        if turn is None or turn.status is TurnStatus.STREAMING:
            return Claim(turn, Step.TAKE_OVER)
        interview = await uow.interviews.get(interview_id)
        assert interview is not None
        challenge = await find_challenge(
            uow.challenges, interview.workspace_id, interview.challenge_slug
        )
        if earlier is None:
            earlier = await uow.interviews.list_turns(interview_id)
        claim = self._decide(turn, interview, challenge, earlier, now)
        if claim.step is Step.ANSWER and not have_slot:
            claim.step = Step.NEEDS_SLOT
        elif claim.step is Step.ANSWER:
            # Authorize: hold the whole call's worth in the statement that checks it fits.
            if await uow.interviews.reserve(interview_id, turn.reserved_tokens):
                await uow.interviews.update_turn(turn, was=TurnStatus.PENDING)
            else:
                claim.step = Step.CHANGED  # the budget changed since it was read
        elif claim.step in (Step.NOT_RUNNING, Step.NO_ROOM):
            await uow.interviews.update_turn(turn, was=TurnStatus.PENDING)
        return claim

    def _decide(
        self,
        turn: Turn,
        interview: Interview,
        challenge: Challenge,
        earlier: list[Turn],
        now: datetime,
    ) -> Claim:
        """What to do with the pending ``turn`` (pure: the turn is changed to match)."""
        counter = TokenCounter(challenge.model or self.ctx.config.model)
        claim = Claim(turn, Step.ANSWER, interview, challenge, counter)
        if interview.status is Status.ACTIVE and interview.seconds_left(now) <= 0:
            claim.step = Step.TIME_UP
            return claim
        if interview.status is not Status.ACTIVE:
            turn.status, claim.step = TurnStatus.UNANSWERED, Step.NOT_RUNNING
            return claim
        claim.history = _history(challenge, earlier, turn.seq)
        claim.messages = [*claim.history, {"role": "user", "content": turn.content}]
        prompt_tokens = counter.count_messages(claim.messages)
        cap = completion_cap(interview.tokens_left, prompt_tokens)
        turn.prompt_tokens = prompt_tokens
        if cap <= 0:
            turn.status, claim.step = TurnStatus.REFUSED, Step.NO_ROOM
            return claim
        turn.status, turn.reserved_tokens = TurnStatus.STREAMING, prompt_tokens + cap
        return claim

    async def _act(self, claim: Claim, slot: str | None) -> str | None:
        """Carry out a claim; returns the model call's slot if it is still unused."""
        turn = claim.turn
        assert turn is not None
        interview, challenge, counter = claim.interview, claim.challenge, claim.counter
        if claim.step is Step.TAKE_OVER:
            await self._take_over(turn)
            return slot
        assert interview is not None and challenge is not None and counter is not None
        if claim.step is Step.TIME_UP:
            await self.upkeep.finish(interview.id, EndReason.TIME_UP, "system")
            return slot  # claimed again: not running any more
        if claim.step is Step.CHANGED:
            return slot  # claimed again
        if claim.step is Step.NEEDS_SLOT:
            if (slot := await self._model_slot(interview)) is not None:
                return slot  # claimed again with the slot
            busy = _workspace_busy(self.ctx.config.workspace_llm_calls_per_minute)
            turn.status, turn.error = TurnStatus.REFUSED, busy.error
            await self._save_turn(turn, TurnStatus.PENDING)
            await self._rate_notice(interview, busy.notice)
            self.ctx.metrics.turn_done(turn.status.value, 0, 0.0)
            return None
        if claim.step is Step.NOT_RUNNING:
            await self.ctx.notice(interview, texts.not_running(interview))
            self.ctx.metrics.turn_done(turn.status.value, 0, 0.0)
            return slot
        if claim.step is Step.NO_ROOM:
            await self.ctx.notice(
                interview, texts.refused(turn.prompt_tokens, interview.tokens_left)
            )
            await self._end_if_exhausted(interview, counter, claim.history)
            self.ctx.metrics.turn_done(turn.status.value, 0, 0.0)
            return slot
        started = time.monotonic()
        status, charged = await self._call(
            interview, challenge, turn, counter, claim.messages, claim.history
        )
        self.ctx.metrics.turn_done(status.value, charged, time.monotonic() - started)
        return None

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

    async def _model_slot(self, interview: Interview) -> str | None:
        """Take one of the workspace's model calls for this minute, if one is free; returns
        its rate key ("" when there is no limit), None when none is free."""
        per_minute = self.ctx.config.workspace_llm_calls_per_minute
        if self.ctx.limiter is None or per_minute <= 0:
            return ""
        key = f"llm:{interview.workspace_id}"
        return None if await self._over_rate(key, per_minute) else key

    async def _give_back(self, slot: str | None) -> None:
        """Return a model call's slot that no call used (a message the model never saw
        takes none of the workspace's calls)."""
        limiter, per_minute = self.ctx.limiter, self.ctx.config.workspace_llm_calls_per_minute
        if slot and limiter is not None and per_minute > 0:
            await limiter.give_back(slot, per_minute / 60)

    async def _rate_notice(self, interview: Interview, text: str) -> None:
        limiter = self.ctx.limiter
        assert limiter is not None
        if await limiter.try_acquire(f"notice:{interview.id}", 1 / RATE_NOTICE_S, burst=1):
            await self.ctx.notice(interview, text)

    async def _store(self, turn: Turn) -> bool:
        """Store a new turn; False: its platform message is stored already."""
        async with self.ctx.uow() as uow:
            added = await uow.interviews.add_turn(turn)
            await uow.commit()
        return added

    async def _save_turn(self, turn: Turn, was: TurnStatus) -> None:
        async with self.ctx.uow() as uow:
            await uow.interviews.update_turn(turn, was=was)
            await uow.commit()


def _workspace_busy(per_minute: int) -> Refusal:
    return Refusal(texts.workspace_busy(per_minute), texts.workspace_busy_error(per_minute))


def _history(challenge: Challenge, turns: list[Turn], before_seq: int) -> list[ChatMessage]:
    messages: list[ChatMessage] = [{"role": "system", "content": system_prompt_for(challenge)}]
    for turn in turns:
        if turn.seq < before_seq and turn.status is TurnStatus.ANSWERED:
            messages.extend(_pair(turn))
    return messages


def _pair(turn: Turn) -> list[ChatMessage]:
    return [{"role": "user", "content": turn.content}, {"role": "assistant", "content": turn.reply}]
