"""What a candidate's message must be before it may go to the model (pure rules).

A message is cleaned first (:func:`clean_message`), then checked (:func:`check_message`): it
must have visible text, must not be nothing but an uploaded file, and may have at most
``max_chars`` characters. Characters are Unicode code points, counted after cleaning, so the
count is the same on every platform: ``😀`` is 1, ``👍🏽`` is 2 (hand and skin tone), ``é``
written as ``e`` plus a combining accent is 2. Code points (not what a reader sees as one
letter) bound what is stored and sent: a single "letter" can carry any number of combining
marks.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from core import texts

# Kept although they are format characters: ZWNJ and ZWJ shape Persian and Indic writing and
# join emoji sequences (👨‍👩‍👧).
_KEEP_FORMAT = frozenset("\u200c\u200d")
# A subdivision flag (🏴 + tag letters + cancel tag, e.g. Scotland): its tag characters stay.
# Every other tag character is dropped: they are invisible and can smuggle text to the model.
_TAG_FLAG = re.compile("\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,6}\U000e007f")
# A variation selector picks the look of the character before it (❤ vs ❤️); a run of them
# shows nothing and only hides data, so all but the first are dropped.
_SELECTORS = "\ufe00-\ufe0f\U000e0100-\U000e01ef"
_VARIATION = re.compile(f"[{_SELECTORS}]")
_VARIATION_RUN = re.compile(f"([{_SELECTORS}])[{_SELECTORS}]+")
# Characters that are not whitespace but show nothing on their own (fillers, a blank
# Braille cell, joiners): a message made only of these and whitespace is empty.
_BLANK = frozenset("\u034f\u115f\u1160\u200c\u200d\u2800\u3164\uffa0")


def _dropped(char: str) -> bool:
    """Control characters (C0 and C1) but newline and tab, format characters that hide or
    reorder text (zero-width spaces, bidirectional overrides such as U+202E, tags), and lone
    surrogates (they cannot even be stored)."""
    if char in "\n\t":
        return False
    category = unicodedata.category(char)
    if category == "Cf":
        return char not in _KEEP_FORMAT
    return category in ("Cc", "Cs")


def _clean_part(text: str) -> str:
    kept = "".join(char for char in text if not _dropped(char))
    return _VARIATION_RUN.sub(r"\1", kept)


def clean_message(text: str) -> str:
    """The message as the model may see it: line breaks as ``\\n``, without control
    characters (but newline and tab), invisible format characters (but the joiners that
    emoji and some scripts need), or runs of variation selectors. Idempotent."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x85", "\n")
    parts: list[str] = []
    start = 0
    for flag in _TAG_FLAG.finditer(text):
        parts += [_clean_part(text[start : flag.start()]), flag.group()]
        start = flag.end()
    parts.append(_clean_part(text[start:]))
    return "".join(parts)


def is_blank(text: str) -> bool:
    """Nothing in it would show: whitespace, fillers and lone variation selectors only."""
    return all(char.isspace() or char in _BLANK or _VARIATION.fullmatch(char) for char in text)


@dataclass(frozen=True)
class Refusal:
    """Why a message is not sent to the model: ``notice`` for the candidate, ``error`` for
    the stored turn (the transcript and the report show it)."""

    notice: str
    error: str


def check_message(content: str, attachments: int, max_chars: int) -> Refusal | None:
    """Whether the cleaned ``content`` (with ``attachments`` files) may go to the model."""
    if is_blank(content):
        if attachments:
            return Refusal(texts.ATTACHMENT_ONLY, texts.attachment_only_error(attachments))
        return Refusal(texts.EMPTY_MESSAGE, texts.EMPTY_MESSAGE_ERROR)
    if len(content) > max_chars:
        return Refusal(
            texts.too_long(len(content), max_chars), texts.too_long_error(len(content), max_chars)
        )
    return None


def stored_content(content: str, max_chars: int) -> str:
    """What a refused message keeps in the transcript: at most ``max_chars`` characters."""
    return content if len(content) <= max_chars else content[:max_chars] + "…"
