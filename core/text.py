"""Splitting a growing reply into platform-sized messages without breaking code blocks."""

from __future__ import annotations

import re
from typing import NamedTuple

FENCE = "```"
_FENCE_AHEAD = re.compile(r"[ \t\n]*" + FENCE)


class Boundary(NamedTuple):
    """What the splitter itself added where one message ends and the next begins.

    Both are empty when the boundary is outside a code block. Inside one, ``close`` is
    ``"```"`` (or ``"\\n```"`` if the earlier message did not end a line) and ``reopen``
    is the block's opening fence with its language, e.g. ``"```js\\n"``. Removing them
    and joining the messages gives back exactly the text that was streamed.
    """

    close: str
    reopen: str


class _Fences:
    """Where a text leaves its code blocks, read one character at a time.

    Every three backticks in a row toggle a code block, wherever they are on a line
    ("````" is a fence and a backtick, "``````" two fences): the count that
    ``text.count("```")`` gives, and close to how Slack and Discord render fences (a fence
    need not start a line there, and "```js" closes an open block).
    """

    __slots__ = ("empty", "inside", "opener", "opening", "run")

    def __init__(self) -> None:
        self.inside = False
        self.run = 0  # backticks at the end of the text
        self.opener = ""  # the open block's fence and what followed it on its line
        self.opening = False  # still on the line of the open block's fence
        self.empty = False  # the open block shows nothing yet (in the current message)

    def copy(self) -> _Fences:
        other = _Fences()
        other.inside, other.run, other.empty = self.inside, self.run, self.empty
        other.opener, other.opening = self.opener, self.opening
        return other

    def step(self, char: str) -> None:
        if char == "`":
            self.run += 1
            if self.run % 3 == 0:
                self.inside = self.opening = self.empty = not self.inside
                self.opener = FENCE if self.inside else ""
                return
        else:
            self.run = 0
        if self.opening:
            if char == "\n":
                self.opening = False
            else:
                self.opener += char
        elif char not in " \t\n":
            self.empty = False

    def can_cut_before(self, char: str) -> bool:
        # Cutting between the backticks of one fence would unmake it.
        return not (char == "`" and self.run % 3)


class MessageSplitter:
    """Feeds streamed text into messages of at most ``limit`` characters.

    Committed text (``segments``) is never changed, only extended, so a message that has
    been sent stays valid while the reply grows. Complete lines are committed; an
    unfinished line waits in ``tail`` (committed early if it grows past ``max_tail`` or
    would not show in the message), and so does a line that opens a code block, until
    the block's first line, so that no message ends with an empty block (unless that line
    alone about fills a message). A line that does not fit in the rest of a message
    starts the next one; only a line too long for a whole message is cut, never inside a
    fence.

    When a message ends inside a code block, the block is closed there and reopened (with
    its language, e.g. "```js") at the top of the next message; ``boundaries[i]`` is what
    was added between message ``i`` and ``i + 1``, so every message but the last has
    balanced fences, and the last has them if the reply does.
    """

    def __init__(self, limit: int, max_tail: int = 200) -> None:
        if limit < 40:
            raise ValueError("limit too small")
        self.limit = limit
        self.max_tail = min(max_tail, limit // 4)
        self.segments: list[str] = [""]
        self.boundaries: list[Boundary] = []
        self.tail = ""
        self._fences = _Fences()  # after the committed text
        self._line_start = True  # the committed text ends a line (or is empty)
        self._top = 0  # length of the reopened fence the current segment starts with

    def feed(self, text: str) -> None:
        """Add streamed text."""
        self.tail += text
        while ready := self._ready():
            self._place(self.tail[:ready])
            self.tail = self.tail[ready:]
        if len(self.tail) > self.max_tail or not self._shows():
            self._relieve()

    def commit_tail(self) -> None:
        """Commit the unfinished line as far as it can end a message now, for a stream that
        can't take text back (the line goes on where it stopped: a line that then no longer
        fits is cut there instead of moving whole to the next message). Backticks that may
        grow into a fence, and a block's opening line, still wait."""
        if self.tail and self._shows():
            self._relieve()

    def finish(self) -> list[str]:
        """Commit the unfinished line; return the final messages."""
        done, self.tail = self.tail, ""
        self._place(done, final=True)
        return self.messages()

    def messages(self) -> list[str]:
        """What each message should show now (the last one includes the unfinished line)."""
        shown = list(self.segments)
        shown[-1] += self.tail
        return shown

    def _ready(self) -> int:
        """Length of the tail's complete lines up to the first that leaves no empty block."""
        if "\n" not in self.tail:
            return 0
        fences = self._fences.copy()
        for index, char in enumerate(self.tail):
            fences.step(char)
            if char == "\n" and not (fences.inside and fences.empty):
                return index + 1
        return 0

    def _empty_block_start(self, text: str) -> int | None:
        """Where the code block that ``text`` leaves open and empty starts in it, if any."""
        fences = self._fences.copy()
        start = 0
        for index, char in enumerate(text):
            fences.step(char)
            if fences.opening and fences.opener == FENCE:
                start = index + 1 - len(FENCE)
        return start if fences.inside and fences.empty else None

    def _shows(self) -> bool:
        return len(self.segments[-1]) + len(self.tail) <= self.limit

    def _fresh(self) -> bool:
        return len(self.segments[-1]) == self._top

    def _relieve(self) -> None:
        """Commit the tail, or move it to a new message: it is too long to hold or to show."""
        run = len(self.tail) - len(self.tail.rstrip("`"))
        if run == len(self.tail):
            run += self._fences.run
        ready = len(self.tail) - min(run % 3, len(self.tail))  # backticks that may grow a fence
        start = self._empty_block_start(self.tail[:ready])
        if start is not None and (self._shows() or not self._fresh()):
            ready = start  # a block's opening waits for the block's first line
        if ready:
            self._place(self.tail[:ready])
            self.tail = self.tail[ready:]
        if not self._shows():
            self._break()
            if not self._shows():
                self._relieve()

    def _place(self, text: str, *, final: bool = False) -> None:
        """Commit text that continues the committed text, breaking to new messages as needed.

        ``final``: nothing follows, so the end needs no room for closing a block.
        """
        while text:
            fit = self._fit(text, final=final)
            if fit == len(text):
                self._commit(text)
                return
            if not self._fresh():
                if self._line_start:  # the line starts the next message, unless it closes
                    fit = self._closing_fence(text)  # the block (then the fence stays here)
                if not fit:
                    self._break()
                    continue
            elif not fit:  # a message must take something; it always has room for that
                fit = self._fit(text, final=final, tidy=False) or 1
            self._commit(text[:fit])
            text = text[fit:]
            self._break()

    def _fit(self, text: str, *, final: bool = False, tidy: bool = True) -> int:
        """The longest start of ``text`` that fits in the current message and may end it.

        It never ends inside a run of backticks; if ``tidy``, nor where the current or the
        next message would show an empty code block.
        """
        used = len(self.segments[-1])
        fences = self._fences.copy()
        best = 0
        for end in range(1, len(text) + 1):
            if used + end > self.limit:
                break
            fences.step(text[end - 1])
            if fences.inside and not (final and end == len(text)):
                # keep room to close the block: "```", or "\n```" mid-line
                close = len(FENCE) if text[end - 1] == "\n" else len(FENCE) + 1
                if used + end + close > self.limit:
                    continue
            if end < len(text):
                if not fences.can_cut_before(text[end]):
                    continue
                if tidy and fences.inside and (fences.empty or _FENCE_AHEAD.match(text, end)):
                    continue
            best = end
        return best

    def _closing_fence(self, text: str) -> int:
        """For a line that starts by closing the open block, the length up to that fence if
        it fits here (so the next message does not start with an empty block); else 0."""
        code = text.lstrip(" \t")
        if not (self._fences.inside and self._line_start and code.startswith(FENCE)):
            return 0
        end = len(text) - len(code) + len(FENCE)
        return end if len(self.segments[-1]) + end <= self.limit else 0

    def _commit(self, text: str) -> None:
        for char in text:
            self._fences.step(char)
        self.segments[-1] += text
        self._line_start = text.endswith("\n")

    def _break(self) -> None:
        """End the current message, closing an open code block and reopening it below."""
        close = reopen = ""
        if self._fences.inside:
            close = FENCE if self.segments[-1].endswith("\n") else "\n" + FENCE
            info = self._fences.opener[len(FENCE) :].strip()
            opener = FENCE + info
            if "`" in info or len(opener) > self.limit // 4:
                opener = FENCE
            reopen = opener + "\n"
            self._fences.empty = True  # as far as the next message shows
        self.segments[-1] += close
        self.boundaries.append(Boundary(close, reopen))
        self.segments.append(reopen)
        self._top = len(reopen)


def split_message(text: str, limit: int) -> list[str]:
    """Split finished text into messages of at most ``limit`` characters."""
    splitter = MessageSplitter(limit)
    splitter.feed(text)
    return splitter.finish()
