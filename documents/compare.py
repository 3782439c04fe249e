"""What changed between two versions of a draft: a paragraph diff, with the changed
characters marked inside a paragraph that was edited rather than replaced.

Paragraph level, because that is how a reviewer reads a contract ("clause 5 changed");
character level inside an edited paragraph, because Chinese has no spaces to split words
on and a changed amount or date is a few characters in a long clause.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Literal

from pydantic import BaseModel

CONTEXT = 2  # unchanged paragraphs shown around each change


class Segment(BaseModel):
    op: Literal["equal", "insert", "delete"]
    text: str


class Block(BaseModel):
    """One run of paragraphs: unchanged (`equal`), added, removed, or edited (`replace`).

    An edited paragraph pair carries `segments`: the old and new text in one line, with the
    removed and inserted characters marked."""

    op: Literal["equal", "insert", "delete", "replace", "skipped"]
    old_start: int  # 1-based paragraph numbers
    new_start: int
    old: list[str]
    new: list[str]
    segments: list[list[Segment]] = []


class Comparison(BaseModel):
    added: int
    removed: int
    edited: int
    unchanged: int
    blocks: list[Block]

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.edited)


def compare(old: list[str], new: list[str]) -> Comparison:
    blocks: list[Block] = []
    added = removed = edited = unchanged = 0
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            unchanged += i2 - i1
            blocks.extend(_context(old, i1, i2, j1))
        elif tag == "insert":
            added += j2 - j1
            blocks.append(Block(op="insert", old_start=i1 + 1, new_start=j1 + 1, old=[], new=new[j1:j2]))
        elif tag == "delete":
            removed += i2 - i1
            blocks.append(Block(op="delete", old_start=i1 + 1, new_start=j1 + 1, old=old[i1:i2], new=[]))
        else:
            pairs = min(i2 - i1, j2 - j1)
            edited += pairs
            removed += (i2 - i1) - pairs
            added += (j2 - j1) - pairs
            segments = [_inline(old[i1 + k], new[j1 + k]) for k in range(pairs)]
            blocks.append(Block(op="replace", old_start=i1 + 1, new_start=j1 + 1, old=old[i1:i2], new=new[j1:j2],
                                segments=segments))
    return Comparison(added=added, removed=removed, edited=edited, unchanged=unchanged, blocks=blocks)


def _context(old: list[str], i1: int, i2: int, j1: int) -> list[Block]:
    """An unchanged run: a few paragraphs either side of a change, the rest summarised."""
    if i2 - i1 <= 2 * CONTEXT + 1:
        return [Block(op="equal", old_start=i1 + 1, new_start=j1 + 1, old=old[i1:i2], new=old[i1:i2])]
    head = Block(op="equal", old_start=i1 + 1, new_start=j1 + 1, old=old[i1:i1 + CONTEXT], new=old[i1:i1 + CONTEXT])
    skipped = i2 - i1 - 2 * CONTEXT
    middle = Block(op="skipped", old_start=i1 + CONTEXT + 1, new_start=j1 + CONTEXT + 1, old=[], new=[],
                   segments=[[Segment(op="equal", text=str(skipped))]])
    tail = Block(op="equal", old_start=i2 - CONTEXT + 1, new_start=j1 + (i2 - i1) - CONTEXT + 1,
                 old=old[i2 - CONTEXT:i2], new=old[i2 - CONTEXT:i2])
    return [head, middle, tail]


def _inline(old: str, new: str) -> list[Segment]:
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            segments.append(Segment(op="equal", text=old[i1:i2]))
            continue
        if i2 > i1:
            segments.append(Segment(op="delete", text=old[i1:i2]))
        if j2 > j1:
            segments.append(Segment(op="insert", text=new[j1:j2]))
    return segments
