"""The Scrubber (crossroads.scrub): which spellings of which secrets it removes, what it leaves
alone, the cut of upstream messages, log records with tracebacks, and the secrets Settings
hands it."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from urllib.parse import quote

import pytest

from crossroads.config import load_settings
from crossroads.errors import ConfigError, UpstreamError
from crossroads.scrub import REDACTED, Scrubber, scrubbing_logs, url_credentials
from support.gateway import write_config

KEY = "sk-live-0123456789abcdef"
ODD = 'p@ss/w:rd+"x"é'  # needs escaping in URLs and JSON


@pytest.mark.parametrize(
    "spelled",
    [
        KEY,
        f"Bearer {KEY}",
        quote(ODD, safe=""),
        ODD,
        json.dumps(ODD)[1:-1],
        base64.b64encode(ODD.encode()).decode(),
        base64.urlsafe_b64encode(ODD.encode()).decode().rstrip("="),
    ],
)
def test_every_spelling_of_a_secret_is_removed(spelled: str) -> None:
    scrub = Scrubber([KEY, ODD])
    out = scrub(f"upstream said: {spelled}; goodbye")
    assert REDACTED in out and "goodbye" in out
    assert KEY not in out and ODD not in out and spelled not in out


def test_short_secrets_and_ordinary_text_are_left_alone() -> None:
    scrub = Scrubber(["short", ""], users=["postgres", "bob"])
    text = "short postgres bob: the Bearer of bad news"
    assert scrub(text) == text


def test_any_bearer_token_is_removed() -> None:
    assert (
        Scrubber()("Authorization: bearer abcdefgh12345678==")
        == f"Authorization: bearer {REDACTED}"
    )


def test_url_credentials_cover_userinfo_and_query_options() -> None:
    secrets, users = url_credentials("postgresql://app_user_1:pa%2Fss%40word@db:5432/x")
    assert {"pa%2Fss%40word", "pa/ss@word", "app_user_1:pa/ss@word"} <= set(secrets)
    assert users == ["app_user_1", "app_user_1"]
    secrets, users = url_credentials("redis://cache:6379/0?username=someone_x&password=pw-123456")
    assert "pw-123456" in secrets and "someone_x" in users
    scrub = Scrubber(
        *url_credentials("redis://ops_account:hunter22@h:1/0")[:1], users=["ops_account"]
    )
    leaked = 'WRONGPASS for user "ops_account" at redis://ops_account:hunter22@h:1/0'
    assert "ops_account" not in scrub(leaked) and "hunter22" not in scrub(leaked)


def test_upstream_messages_are_scrubbed_before_they_are_cut() -> None:
    scrub = Scrubber([KEY], max_message_chars=100)
    exc = UpstreamError("x" * 95 + KEY + "y" * 500, retryable=True)
    scrub.upstream(exc)
    assert KEY[:5] not in exc.message and exc.args == (exc.message,)
    assert exc.message.startswith("x" * 95 + REDACTED[:5])
    assert exc.message.endswith("more characters cut)")
    assert Scrubber().message("line one\nline two\x1b[2J") == "line one\\x0aline two\\x1b[2J"


def test_log_records_are_scrubbed_with_their_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    before = logging.getLogRecordFactory()  # a gateway another test left running has its own
    scrub = Scrubber([KEY])
    log = logging.getLogger("crossroads.test_scrub")
    with scrubbing_logs(scrub), scrubbing_logs(scrub):  # nested: one factory, not two
        try:
            raise RuntimeError(f"connect failed with key {KEY}")
        except RuntimeError:
            log.exception("upstream %s failed: %s", "x", KEY)
        log.info("nothing to hide %d", 5)
        log.error("upstream said %s", "\x1b[2Jgone\r\nforged line")
    log.warning("after: %s", KEY)  # no longer scrubbed once out
    first, second, escaped, third = caplog.records
    assert KEY not in caplog.text.split("after:")[0]
    assert first.getMessage() == f"upstream x failed: {REDACTED}" and first.exc_info is None
    assert "RuntimeError: connect failed with key [redacted]" in (first.exc_text or "")
    assert second.args == (5,)  # untouched: formatters that read args keep working
    assert escaped.getMessage() == "upstream said \\x1b[2Jgone\\x0d\nforged line"
    assert KEY in third.getMessage()
    assert logging.getLogRecordFactory() is before


def test_settings_hand_every_configured_secret_to_the_scrubber(tmp_path: Path) -> None:
    config = {
        "embedded": {"enabled": False},
        "providers": {
            "up": {
                "type": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "UP_KEY",
                "headers": {"x-api-key": "hdr-secret-123", "anthropic-version": "2023-06-01"},
            }
        },
        "models": [{"name": "m", "provider": "up", "upstream_model": "mock"}],
        "auth": {"mode": "keys"},
        "storage": {"backend": "postgres"},
        "limits": {"backend": "redis"},
        "server": {"max_upstream_message_chars": 200},
    }
    env = {
        "UP_KEY": KEY,
        "CROSSROADS_ADMIN_KEY": "admin-key-0123456789",
        "CROSSROADS_POSTGRES_URL": "postgresql://pg_user_x:pg-pass-1@db/x",
        "CROSSROADS_REDIS_URL": "redis://rd_user_x:rd-pass-1@cache/0",
    }
    scrub = load_settings(write_config(tmp_path, config), environ=env).scrubber()
    text = " ".join([*env.values(), "hdr-secret-123", "pg_user_x", "rd_user_x", "2023-06-01"])
    cleaned = scrub(text)
    assert cleaned.split() == [REDACTED] * 7 + ["2023-06-01"]  # not a credential header
    assert scrub.max_message_chars == 200


@pytest.mark.parametrize("chars", [99, 65537])
def test_the_cut_length_is_checked(tmp_path: Path, chars: int) -> None:
    path = write_config(tmp_path, {"server": {"max_upstream_message_chars": chars}})
    with pytest.raises(ConfigError, match="max_upstream_message_chars"):
        load_settings(path, environ={})
