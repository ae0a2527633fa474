"""Where sentences end in a text, and windows of whole sentences (``model.long_text.cut:
sentences``; :mod:`sentiment_hf.longtext` applies them to tokenized inputs)."""

from __future__ import annotations

import bisect
import re

#: HTML line-break and paragraph tags (``<br />``, ``<p>``, ``</p>``), common in scraped
#: reviews: in sentence windows they end a sentence and are not read as words.
MARKUP = re.compile(r"<\s*/?\s*(?:br|p)\b[^<>]*>", re.IGNORECASE)
#: Where a sentence ends, in raw text: after ``.``/``!``/``?``/``…`` (and closing quotes or
#: brackets) before white space, at a line break, at a :data:`MARKUP` tag.
SENTENCE_END = re.compile(
    r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|\n|" + MARKUP.pattern, re.IGNORECASE
)


def markup_tokens(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """Positions of the tokens (by their character ``offsets``) that lie inside a
    :data:`MARKUP` tag of ``text``."""
    tags = [(m.start(), m.end()) for m in MARKUP.finditer(text)]
    if not tags:
        return []
    firsts = [start for start, _ in tags]
    inside = []
    for j, (start, end) in enumerate(offsets):
        k = bisect.bisect_right(firsts, start) - 1
        if end > start and k >= 0 and end <= tags[k][1]:
            inside.append(j)
    return inside


def sentence_starts(text: str, offsets: list[tuple[int, int]], front: int, back: int) -> list[int]:
    """Content-token positions (counted after the ``front`` leading special tokens; ``back``
    trailing ones) where a new sentence begins, from the tokenizer's character ``offsets``
    of one encoded input: a token starts a sentence when a
    :data:`SENTENCE_END` match ends between the previous token's end and its start."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    spans = offsets[front : len(offsets) - back]
    starts = []
    for j in range(1, len(spans)):
        k = bisect.bisect_left(ends, spans[j - 1][1])
        if k < len(ends) and ends[k] <= spans[j][0]:
            starts.append(j)
    return starts


def sentence_windows(length: int, content: int, starts: list[int]) -> list[tuple[int, int]]:
    """``(start, end)`` spans covering ``length`` content tokens, each ending at a sentence
    start from ``starts`` (sorted), as many whole sentences as ``content`` tokens hold; a
    sentence longer than ``content`` is cut every ``content`` tokens."""
    spans: list[tuple[int, int]] = []
    begin = 0
    while length - begin > content:
        k = bisect.bisect_right(starts, begin + content) - 1
        end = starts[k] if k >= 0 and starts[k] > begin else begin + content
        spans.append((begin, end))
        begin = end
    spans.append((begin, length))
    return spans
