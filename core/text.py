"""Splitting a growing reply into platform-sized messages without breaking code blocks."""

from __future__ import annotations

FENCE = "```"
_CLOSE = "\n" + FENCE


class MessageSplitter:
    """Feeds streamed text into messages of at most ``limit`` characters.

    Committed text is never moved, so a message that has been sent stays valid while the
    reply grows. Complete lines are committed; an unfinished line waits in ``tail``. When
    a message fills up inside a code block, the block is closed there and reopened (with
    its language) at the top of the next message.
    """

    def __init__(self, limit: int, max_tail: int = 200) -> None:
        if limit < 40:
            raise ValueError("limit too small")
        self.limit = limit
        self.max_tail = min(max_tail, limit // 4)
        self.segments: list[str] = [""]
        self.tail = ""
        self._fence: str | None = None  # the opening line of the code block we are inside

    def _room(self) -> int:
        # Space left in the current message, keeping room to close an open code block.
        return self.limit - len(self.segments[-1]) - len(_CLOSE)

    def _commit(self, text: str) -> None:
        """Append complete text to the current message, breaking to new ones as needed."""
        while text:
            room = self._room()
            if len(text) <= room:
                chunk, text = text, ""
            else:
                cut = text.rfind("\n", 0, room)
                cut = room if cut <= 0 else cut + 1
                if cut <= 0:
                    self._next_segment()
                    continue
                chunk, text = text[:cut], text[cut:]
            self._track_fences(chunk)
            self.segments[-1] += chunk
            if text:
                self._next_segment()

    def _track_fences(self, chunk: str) -> None:
        for line in chunk.splitlines():
            if line.lstrip().startswith(FENCE):
                self._fence = None if self._fence is not None else line.strip()

    def _next_segment(self) -> None:
        current = self.segments[-1]
        if self._fence is not None:
            self.segments[-1] = current + ("" if current.endswith("\n") else "\n") + FENCE
            self.segments.append(self._fence + "\n")
        else:
            self.segments.append("")

    def feed(self, text: str) -> None:
        """Add streamed text."""
        self.tail += text
        cut = self.tail.rfind("\n") + 1
        if cut:
            done, self.tail = self.tail[:cut], self.tail[cut:]
            self._commit(done)
        if len(self.tail) > self.max_tail or len(self.segments[-1]) + len(
            self.tail
        ) > self.limit - len(_CLOSE):
            done, self.tail = self.tail, ""
            self._commit(done)

    def finish(self) -> list[str]:
        """Commit the unfinished line; return the final messages."""
        done, self.tail = self.tail, ""
        self._commit(done)
        return self.messages()

    def messages(self) -> list[str]:
        """What each message should show now (the last one includes the unfinished line)."""
        shown = list(self.segments)
        shown[-1] += self.tail
        return [m for m in shown if m] or [""]


def split_message(text: str, limit: int) -> list[str]:
    """Split finished text into messages of at most ``limit`` characters."""
    splitter = MessageSplitter(limit)
    splitter.feed(text)
    return splitter.finish()
