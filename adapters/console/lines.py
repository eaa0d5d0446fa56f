"""Where the console's lines come from: a terminal with line editing and history, or a pipe.

Both strip ANSI escape sequences and control characters, so an arrow key typed into a dumb
terminal never reaches the model as ``^[[A``.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from typing import Protocol, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-character escapes (ESC x).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_line(text: str) -> str:
    """The line without escape sequences or control characters (tabs become spaces)."""
    return _CONTROL.sub("", _ANSI.sub("", text)).replace("\t", " ").strip()


class LineSource(Protocol):
    """Reads one line at a time; ``None`` at the end of input."""

    echo: bool  # repeat each line (a script's lines are not on screen otherwise)

    async def read(self, prompt: str) -> str | None: ...


class TerminalLines:
    """prompt_toolkit: line editing, history on Up/Down, Ctrl-C raises KeyboardInterrupt.

    Output printed while the prompt waits (a timer's warning) appears above the prompt.
    """

    echo = False

    def __init__(self) -> None:
        self._session: PromptSession[str] = PromptSession(history=InMemoryHistory())

    async def read(self, prompt: str) -> str | None:
        try:
            with patch_stdout(raw=True):
                # SIGINT stays with the console (it stops a reply in progress); at the prompt
                # Ctrl-C is a key, and prompt_toolkit raises KeyboardInterrupt for it.
                line = await self._session.prompt_async(prompt, handle_sigint=False)
        except EOFError:
            return None
        return clean_line(line)


class PipedLines:
    """Lines from a pipe or file, read by a daemon thread so Ctrl-C never waits for input."""

    echo = True

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._queue: asyncio.Queue[str | None] | None = None

    def _pump(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
        for line in self._stream:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    async def read(self, prompt: str) -> str | None:
        if self._queue is None:
            self._queue = asyncio.Queue()
            threading.Thread(
                target=self._pump,
                args=(asyncio.get_running_loop(), self._queue),
                daemon=True,
                name="console-input",
            ).start()
        line = await self._queue.get()
        return None if line is None else clean_line(line)


def lines_for(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> LineSource:
    """A terminal session when both ends are a terminal, else piped lines."""
    if stdin.isatty() and stdout.isatty():
        return TerminalLines()
    return PipedLines(stdin)
