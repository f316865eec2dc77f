"""Store failures on the admin API reach the client as a fixed sentence with the store's status;
what the driver said (host, port, user, file paths) goes to the log only (issue 11)."""

from __future__ import annotations

import logging

import orjson
import pytest

from crossroads.governance.store import GovernanceStoreError
from crossroads.ledger.store import LedgerStoreError
from crossroads.server.admin import admin_error

DETAIL = "ConnectionRefusedError: connect to db-7.internal:5432 as user 'ops_admin' failed"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (LedgerStoreError(f"PostgreSQL ledger store: {DETAIL}"), "ledger_unavailable"),
        (GovernanceStoreError(f"governance store (postgres): {DETAIL}"), "governance_unavailable"),
    ],
)
def test_store_failures_show_clients_a_fixed_sentence(
    error: Exception, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = admin_error(error)  # type: ignore[arg-type]
    body = orjson.loads(response.body)
    assert response.status_code == 503
    assert body["error"]["type"] == kind
    assert "unavailable right now" in body["error"]["message"]
    assert "db-7" not in response.body.decode() and "ops_admin" not in response.body.decode()
    assert any(DETAIL in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
