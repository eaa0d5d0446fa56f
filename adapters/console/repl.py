"""Reads the terminal (or a piped script): ``/interview ...`` lines are the interviewer's
commands, every other line is the candidate's message to the AI assistant."""

from __future__ import annotations

import asyncio
import itertools
from typing import TextIO

from adapters.console.platform import plain
from core.commands import parse_command
from core.dispatch import run_command
from core.errors import DomainError
from core.models import Actor, Interview
from core.parsing import looks_like_duration, looks_like_tokens
from core.service import InterviewService

INTERVIEWER = Actor("interviewer", is_interviewer=True)
BANNER = """\
Interview Buddy console. You are the interviewer for lines starting with /interview,
and the candidate for every other line. Try:
  /interview start me 10m 5k two-sum
  How would you approach this?
  /interview extend me +5m
Type /interview help for all commands, /quit (or end of input) to leave."""


def resolve_console_user(word: str) -> str | None:
    """In the console, any name (``me``, ``@alice``) is a user."""
    name = word.removeprefix("@")
    if not name or looks_like_duration(name) or looks_like_tokens(name):
        return None
    return name


async def run_console(service: InterviewService, inp: TextIO, out: TextIO, *, echo: bool) -> None:
    """Run until end of input or ``/quit``. ``echo`` repeats scripted input lines."""
    workspace = await service.store.get_or_create_workspace("console", "local")
    out.write(BANNER + "\n")
    current: Interview | None = None  # the conversation candidate lines go to
    for interview in await service.store.list_open(workspace.id):
        out.write(f"An interview with @{interview.candidate_id} is still running; go on typing.\n")
        current = interview
    message_ids = itertools.count(1)
    while True:
        out.flush()
        line = await asyncio.to_thread(inp.readline)
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        if echo:
            out.write(f"> {line}\n")
        if line in ("/quit", "/exit"):
            break
        if line.startswith("/interview"):
            try:
                command = parse_command(line.removeprefix("/interview"), resolve_console_user)
                reply = await run_command(
                    service, workspace, INTERVIEWER, command, resolve_user=resolve_console_user
                )
                if command.name == "start" and command.candidate:
                    current = await service.store.find_open_for_candidate(
                        workspace.id, command.candidate
                    )
            except DomainError as exc:
                reply = f"❌ {exc}"
            out.write(plain(reply) + "\n")
            continue
        if line.startswith("/"):
            out.write("❌ Unknown command. Type /interview help.\n")
            continue
        if current is None or current.room_key is None:
            out.write(
                "No interview is running. Start one with /interview start me 10m 5k two-sum\n"
            )
            continue
        await service.handle_message(
            "console",
            current.room_key,
            current.candidate_id,
            f"console-{current.id}-{next(message_ids)}-{service.clock.now().timestamp()}",
            line,
        )
    out.write("Bye. Everything is saved; run the console again to continue.\n")
    out.flush()
