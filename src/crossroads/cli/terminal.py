"""What the CLI writes to the terminal passes through here: every control character a value
could carry (a client's model name, an upstream's error relayed by the gateway) is printed as a
visible escape such as `\\x1b`, so no value can move the cursor, clear the screen or retitle the
window. Newlines and tabs, which the CLI's own layout uses, stay."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from crossroads.safe_text import printable

__all__ = ["printable_output"]


class _Printable(io.TextIOBase):
    """A text stream that escapes control characters on their way to `stream`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text, keep_lines=True))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()


@contextmanager
def printable_output() -> Iterator[None]:
    """Routes `sys.stdout` and `sys.stderr` through `_Printable` while inside."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Printable(out), _Printable(err)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = out, err
