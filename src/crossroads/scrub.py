"""The gateway's own secrets kept out of everything that leaves the process: a `Scrubber`, built
once at start from the configured secrets, replaces each of them with `[redacted]` in error text
bound for a client, the ledger or a log, and cuts upstream error text to a configured length;
`scrubbing_logs` applies it to every log record the process makes (and escapes the control
characters in them).

Only error text is scrubbed: a successful answer is the model's output and passes untouched, so
the success path costs nothing."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from crossroads.errors import GatewayError
from crossroads.safe_text import printable

__all__ = [
    "DEFAULT_MAX_MESSAGE_CHARS",
    "MIN_SECRET_CHARS",
    "REDACTED",
    "WELL_KNOWN_USERS",
    "Scrubber",
    "scrubbing_logs",
    "url_credentials",
]

REDACTED = "[redacted]"

MIN_SECRET_CHARS = 8
"""Shorter secrets are not scrubbed: replacing every `local` or `sk-1` in every message would
mangle ordinary text and protect nothing (a key that short is guessable anyway)."""

DEFAULT_MAX_MESSAGE_CHARS = 1000

WELL_KNOWN_USERS = frozenset({"postgres", "default", "root", "admin", "administrator", "redis"})
"""Database user names that are public defaults, not secrets: left alone on their own (they
are words of ordinary messages), though still removed with the password they come with."""

# An Authorization value quoted back by an upstream, whatever credential it carries.
_BEARER = re.compile(r"\b((?i:bearer))\s+[A-Za-z0-9\-._~+/]{8,}=*")


def _spellings(secret: str) -> set[str]:
    """The ways `secret` can appear in text: as written, percent-encoded (URLs, forms), escaped
    inside a JSON string, and base64 (HTTP Basic credentials, tokens), padded or not."""
    out = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
    }
    raw = secret.encode()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        spelled = encode(raw).decode()
        out.update((spelled, spelled.rstrip("=")))
    return out


def url_credentials(url: str) -> tuple[list[str], list[str]]:
    """(secrets, user names) of a database or Redis URL: the whole URL as written, the password
    and `user:password` (as written and percent-decoded, from the user part or the `password=`
    / `user=` query options), and the user names. Never raises: an unreadable URL is a secret
    as a whole and nothing more."""
    secrets = [url]
    users: list[str] = []
    try:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        options = [o.partition("=") for o in parts.query.split("&") if o]
    except ValueError:
        return secrets, users
    user, colon, password = userinfo.partition(":")
    if userinfo:
        secrets.extend((userinfo, unquote(userinfo)))
        users.append(user)
    if colon:
        secrets.append(password)
    for name, _, value in options:
        key = unquote(name).lower()
        if key == "password":
            secrets.append(value)
        elif key in ("user", "username"):
            users.append(value)
    secrets += [unquote(s) for s in secrets]
    users += [unquote(u) for u in users]
    return [s for s in secrets if s], [u for u in users if u]


class Scrubber:
    """Replaces the configured secrets in text. `secrets` are removed in every spelling
    `_spellings` knows; `users` (user names of the storage and limits URLs) as written, unless
    they are `WELL_KNOWN_USERS`. Both only when at least `MIN_SECRET_CHARS` long. Any
    `Bearer <token>` is removed too, whatever the token. With nothing configured it is cheap:
    one regular-expression search for `Bearer`.

    Immutable once built; safe to share between threads."""

    __slots__ = ("_pattern", "max_message_chars")

    def __init__(
        self,
        secrets: Iterable[str] = (),
        *,
        users: Iterable[str] = (),
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
    ) -> None:
        spelled: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_CHARS:
                spelled |= _spellings(secret)
        for user in users:
            if len(user) >= MIN_SECRET_CHARS and user.lower() not in WELL_KNOWN_USERS:
                spelled |= {user, quote(user, safe="")}
        # Longest first: one spelling may contain another (a URL holds its password).
        ordered = sorted(spelled, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self.max_message_chars = max_message_chars

    def __call__(self, text: str) -> str:
        """`text` with every secret replaced by `REDACTED`."""
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _BEARER.sub(rf"\1 {REDACTED}", text)

    def message(self, text: str) -> str:
        """Upstream error text as it may leave: scrubbed, on one line (control characters,
        newlines included, as visible escapes: the text also goes to logs, where a newline
        would forge a line), then cut to `max_message_chars` (scrubbing first, so a cut can
        never leave the start of a secret behind)."""
        text = printable(self(text))
        if len(text) <= self.max_message_chars:
            return text
        cut = len(text) - self.max_message_chars
        return f"{text[: self.max_message_chars]}... ({cut} more characters cut)"

    def error(self, exc: GatewayError) -> None:
        """Scrubs `exc.message` in place (an error bound for a client or the ledger)."""
        exc.message = self(exc.message)
        exc.args = (exc.message,)

    def upstream(self, exc: GatewayError) -> None:
        """Scrubs and cuts `exc.message` in place: an upstream's error, as it enters the
        gateway's core (`message`)."""
        exc.message = self.message(exc.message)
        exc.args = (exc.message,)

    def record(self, record: logging.LogRecord) -> None:
        """Scrubs a log record in place: its message (formatted with its arguments), its
        exception's traceback text and its stack; control characters other than newline and
        tab in them are escaped too (`printable`), so an upstream's text cannot drive the
        terminal a log is read on. Leaves the record as it was when nothing in it needed
        either, so formatters that read `args` keep working."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: logging reports it when it formats
            return
        clean = printable(self(message), keep_lines=True)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            text = _TRACEBACKS.formatException(record.exc_info)
            clean = printable(self(text), keep_lines=True)
            if clean != text:
                # A handler given exc_info would format the exception itself, secrets and all.
                record.exc_text, record.exc_info = clean, None
        if record.stack_info:
            record.stack_info = printable(self(record.stack_info), keep_lines=True)


_TRACEBACKS = logging.Formatter()


class _ScrubbingFactory:
    """A log record factory: the one before it, then `Scrubber.record`."""

    def __init__(self, previous: Callable[..., logging.LogRecord], scrub: Scrubber) -> None:
        self.previous = previous
        self.scrub = scrub
        self.active = True

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        if self.active:
            self.scrub.record(record)
        return record


@contextmanager
def scrubbing_logs(scrub: Scrubber) -> Iterator[None]:
    """Scrubs every log record made while inside, by any logger and for every handler (stderr,
    files, pytest's capture): through the record factory, the one place all records pass.

    Nests: inside another `scrubbing_logs` of the same scrubber it does nothing. On the way
    out it restores the previous factory, or, when another one was installed on top in the
    meantime, leaves its own in the chain switched off."""
    current = logging.getLogRecordFactory()
    if isinstance(current, _ScrubbingFactory) and current.scrub is scrub and current.active:
        yield
        return
    factory = _ScrubbingFactory(current, scrub)
    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        factory.active = False
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(factory.previous)
