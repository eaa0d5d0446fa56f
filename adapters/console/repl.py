"""The console session: ``/interview ...`` lines are the interviewer's commands, every other
line is the candidate's message to the AI assistant of the interview the prompt shows."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import sys
from typing import TextIO

from adapters.console.lines import LineSource
from adapters.console.platform import plain
from core.commands import parse_command
from core.dispatch import run_command
from core.errors import DomainError
from core.models import Actor, Interview, Workspace
from core.parsing import format_duration, looks_like_duration, looks_like_tokens
from core.service import InterviewService

INTERVIEWER = Actor("interviewer", is_interviewer=True)
BANNER = """\
Interview Buddy console. You are the interviewer for lines starting with /interview,
and the candidate for every other line. Try:
  /interview start me 10m 5k two-sum
  How would you approach this?
  /interview extend me +5m
Type /interview help for all commands, /quit (or Ctrl-D, Ctrl-C) to leave."""

CONSOLE_HELP = """\
Console commands (lines starting with / are yours as interviewer; any other line is the
candidate's message to the AI assistant):
• /interview start NAME [45m|1h|1h30m] [20k|15000] [challenge]   e.g. /interview start me 10m 5k
• /interview extend [NAME] +10m   or   /interview extend [NAME] +5k
• /interview pause [NAME] · /interview resume [NAME] · /interview end [NAME]
• /interview status · /interview challenges · /interview help
• /interview schedule NAME [mon..sun] [15:00] [12w] [45m] [20k] [challenge]   weekly, team time
• /interview schedules · /interview unschedule ID · /interview skip ID · /interview summary
• /interview config timezone Europe/Berlin · /interview config summary fri 17:00 (or off)
• /switch NAME   send your next lines to NAME's interview
• /quit          leave (everything is saved; run the console again to continue)"""

PLATFORM_ONLY_SETTINGS = (
    "channel",
    "interviewers",
    "interview_channel",
    "role",
    "team-channel",
    "team_channel",
)


def resolve_console_user(word: str) -> str | None:
    """In the console any name (``me``, ``@alice``) is a user; ``<@U1>`` markup is not."""
    name = word.lstrip("@")
    if not name or looks_like_duration(name) or looks_like_tokens(name):
        return None
    if not all(c.isalnum() or c in "-_." for c in name):
        return None
    return name


class ConsoleSession:
    """Which interview the candidate's lines go to, and everything the console prints."""

    def __init__(self, service: InterviewService, workspace: Workspace, out: TextIO) -> None:
        self.service = service
        self.workspace = workspace
        self.out = out
        self.current: Interview | None = None
        self._message_ids = itertools.count(1)

    def say(self, text: str) -> None:
        self.out.write(plain(text) + "\n")
        self.out.flush()

    async def _running(self) -> list[Interview]:
        return await self.service.queries.open_interviews(self.workspace.id)

    def _describe(self, interview: Interview) -> str:
        left = format_duration(interview.seconds_left(self.service.clock.now()))
        state = "paused, " if interview.status.value == "paused" else ""
        return f"{interview.candidate_id} ({interview.challenge_slug}, {state}{left} left)"

    async def greet(self) -> None:
        """After a restart: say what is still running and where lines go."""
        running = await self._running()
        if not running:
            return
        self.current = running[-1]
        listed = ", ".join(self._describe(i) for i in running)
        self.say(f"Still running: {listed}.")
        self.say(
            f"Your lines go to {self.current.candidate_id}'s interview" + _switch_hint(running)
        )

    async def follow(self) -> None:
        """If the current interview has ended, move to a running one (and say so)."""
        if self.current is None:
            return
        fresh = await self.service.queries.interview(self.current.id)
        if fresh is not None and fresh.is_open:
            self.current = fresh
            return
        ended = self.current.candidate_id
        running = await self._running()
        self.current = running[-1] if running else None
        if self.current is not None:
            self.say(
                f"→ {ended}'s interview has ended; your lines now go to "
                f"{self._describe(self.current)}" + _switch_hint(running)
            )
        else:
            self.say(
                f"→ {ended}'s interview has ended. Start another with "
                "/interview start NAME [10m] [5k] [challenge]."
            )

    def prompt(self) -> str:
        if self.current is None:
            return "interviewer › "
        return f"[{self.current.candidate_id} · {self.current.challenge_slug}] candidate › "

    async def switch(self, name: str) -> None:
        wanted = resolve_console_user(name)
        running = await self._running()
        for interview in running:
            if interview.candidate_id == wanted:
                self.current = interview
                self.say(f"Your lines now go to {self._describe(interview)}.")
                return
        names = ", ".join(i.candidate_id for i in running) or "none"
        self.say(f"❌ {name} has no running interview. Running: {names}.")

    async def command(self, line: str) -> None:
        try:
            command = parse_command(line.removeprefix("/interview"), resolve_console_user)
            if command.name == "help":
                self.say(CONSOLE_HELP)
                return
            if command.name == "config" and command.args[0].lower() in PLATFORM_ONLY_SETTINGS:
                self.say(
                    f"`config {command.args[0]}` is a Slack/Discord setting; in the console "
                    "everything is shown right here. `config timezone` works here."
                )
                return
            reply = await run_command(
                self.service,
                self.workspace,
                INTERVIEWER,
                command,
                resolve_user=resolve_console_user,
            )
            if command.name == "start" and command.candidate:
                self.current = await self.service.queries.for_candidate(
                    self.workspace.id, command.candidate
                )
        except DomainError as exc:
            reply = f"❌ {exc}"
        self.say(reply)

    async def candidate_line(self, line: str) -> None:
        if self.current is None or self.current.room_key is None:
            self.say("No interview is running. Start one with /interview start me 10m 5k two-sum")
            return
        await self.service.turns.handle_message(
            "console",
            self.current.room_key,
            self.current.candidate_id,
            f"console-{self.current.id}-{next(self._message_ids)}-"
            f"{self.service.clock.now().timestamp()}",
            line,
        )


def _switch_hint(running: list[Interview]) -> str:
    return "; /switch NAME to change." if len(running) > 1 else "."


async def run_console(
    service: InterviewService, lines: LineSource, out: TextIO | None = None
) -> None:
    """Run until end of input, ``/quit`` or Ctrl-C (which also stops a reply in progress;
    the interrupted turn is recorded and charged what it cost)."""
    stream = out or sys.stdout
    workspace = await service.queries.workspace("console", "local")
    session = ConsoleSession(service, workspace, stream)
    session.say(BANNER)
    await session.greet()
    me = asyncio.current_task()
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        if me is not None:
            me.cancel()

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        while True:
            await session.follow()
            line = await lines.read(session.prompt())
            if line is None or line in ("/quit", "/exit"):
                break
            if not line:
                continue
            if lines.echo:
                session.say(f"> {line}")
            if line.startswith("/interview"):
                await session.command(line)
            elif line.startswith("/switch"):
                await session.switch(line.removeprefix("/switch").strip())
            elif line.startswith("/"):
                session.say("❌ Unknown command. Type /interview help.")
            else:
                await session.candidate_line(line)
    except KeyboardInterrupt:
        interrupted = True
    except asyncio.CancelledError:
        if not interrupted:
            raise
        if me is not None:
            me.uncancel()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
    if interrupted:
        session.say("\n⏹ Interrupted. A reply in progress was stopped and recorded.")
    else:
        await service.settle()  # a report still being written prints before we go
    session.say("Bye. Everything is saved; run the console again to continue.")
