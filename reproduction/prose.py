"""Checks on the rendered Markdown that keep the document readable: no sentence said more than three times, no
line longer than 400 characters; and prose wrapped so a paragraph never makes one long line.

A sentence is a run of at least `MIN_WORDS` words (tokens of two or more letters) ending at `.`, `!`, `?` or `;`,
taken from a paragraph with its lines joined, or from one table cell; headings and code are left out.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter

MAX_REPEATS = 3
MAX_LINE = 400
MIN_WORDS = 5
WRAP = 118  # prose is wrapped to this width
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]+")
_END = re.compile(r"(?<=[.!?;])\s+")
_MARKUP = re.compile(r"^(\d+[.)]|[-*+>#|]|```)$")  # tokens that open Markdown structure at the start of a line


def _blocks(text: str) -> list[list[str]]:
    blocks, current, fenced = [], [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    ") or line.startswith("#"):
            continue
        if not line.strip():
            if current:
                blocks.append(current)
            current = []
        else:
            current.append(line)
    return blocks + ([current] if current else [])


def sentences(text: str) -> list[str]:
    out = []
    for block in _blocks(text):
        if block[0].lstrip().startswith("|"):
            pieces = [cell for line in block for cell in line.split("|")]
        else:
            pieces = [" ".join(line.strip() for line in block)]
        for piece in pieces:
            for s in _END.split(piece):
                s = " ".join(s.split())
                if len(_WORD.findall(s)) >= MIN_WORDS:
                    out.append(s)
    return out


def repeated(text: str, limit: int = MAX_REPEATS) -> dict[str, int]:
    """Sentences said more than `limit` times, with their counts."""
    return {s: n for s, n in Counter(sentences(text)).items() if n > limit}


def long_lines(text: str, limit: int = MAX_LINE) -> list[str]:
    return [line for line in text.splitlines() if len(line) > limit]


def words(text: str) -> int:
    """Words as `wc -w` counts them: whitespace-separated tokens."""
    return len(text.split())


def wrap(lines: list[str]) -> list[str]:
    """Prose paragraphs and list items wrapped to `WRAP` columns; tables, headings and indented code untouched."""
    out = []
    for line in lines:
        if len(line) <= WRAP or line.lstrip().startswith(("|", "#")) or line.startswith("    "):
            out.append(line)
            continue
        bullet = re.match(r"^(\s*(?:[-*]|\d+\.)\s+)", line)
        indent = " " * len(bullet.group(1)) if bullet else ""
        wrapped = textwrap.wrap(line, WRAP, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
        for part in wrapped:
            word = part.strip().split(" ", 1)[0]
            if out and part is not wrapped[0] and _MARKUP.match(word):
                out[-1] += " " + word  # a continuation starting `0.` or `-` would read as a list item
                part = part.strip()[len(word) :].strip()
                part = indent + part if part else ""
            if part:
                out.append(part)
    return out
