"""Splits `<think>...</think>` reasoning out of answer text, incrementally: a stream's content
deltas may cut a tag anywhere ("<thi" + "nk>"), so text that could be the start of a tag is held
back until the next piece shows what it is. Pure, no I/O.

The rules, the same for a whole text and for any chunking of it:
- text outside a block is content; text inside is reasoning; any number of blocks may come;
- blocks do not nest: inside a block "<think>" is reasoning text, and the first "</think>" ends
  it; outside a block a stray "</think>" is content;
- whitespace right after either tag is dropped (hosts write "<think>\\n" and "</think>\\n\\n");
- an unterminated block runs to the end: everything after "<think>" is reasoning.
"""

from __future__ import annotations

__all__ = ["CLOSE", "OPEN", "ThinkSplitter", "split_think"]

OPEN = "<think>"
CLOSE = "</think>"


def _held_back(text: str, start: int, tag: str) -> int:
    """How many characters at the end of `text[start:]` could begin `tag`: the longest proper
    prefix of `tag` that the text ends with."""
    for size in range(min(len(tag) - 1, len(text) - start), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ThinkSplitter:
    """One stream's splitter (one per choice). `feed` returns the (reasoning, content) that can
    be told apart so far; `flush` returns what was held back, once the text has ended. Not
    thread-safe."""

    __slots__ = ("_held", "_inside", "_skip_space")

    def __init__(self) -> None:
        self._inside = False
        self._held = ""
        self._skip_space = False

    @property
    def inside(self) -> bool:
        """True while in a block (what comes next is reasoning)."""
        return self._inside

    def feed(self, piece: str) -> tuple[str, str]:
        """The reasoning and content of `piece`, given everything fed before."""
        text = self._held + piece if self._held else piece
        self._held = ""
        reasoning: list[str] = []
        content: list[str] = []
        pos, end = 0, len(text)
        while pos < end:
            if self._skip_space:
                while pos < end and text[pos].isspace():
                    pos += 1
                if pos == end:
                    break
                self._skip_space = False
            tag = CLOSE if self._inside else OPEN
            out = reasoning if self._inside else content
            found = text.find(tag, pos)
            if found >= 0:
                out.append(text[pos:found])
                pos = found + len(tag)
                self._inside = not self._inside
                self._skip_space = True
                continue
            keep = _held_back(text, pos, tag)
            out.append(text[pos : end - keep])
            self._held = text[end - keep :]
            break
        return "".join(reasoning), "".join(content)

    def flush(self) -> tuple[str, str]:
        """What was held back as a possible tag start, now known to be text."""
        held, self._held = self._held, ""
        return (held, "") if self._inside else ("", held)


def split_think(text: str) -> tuple[str, str]:
    """(reasoning, content) of a whole text."""
    splitter = ThinkSplitter()
    reasoning, content = splitter.feed(text)
    rest_reasoning, rest_content = splitter.flush()
    return reasoning + rest_reasoning, content + rest_content
