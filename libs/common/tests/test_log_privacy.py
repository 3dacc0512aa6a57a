"""A database error is logged without the values the statement carried (names, phones…)."""

from __future__ import annotations

import logging

from gridgov_common.testing import RunningService, token_for

TOKEN = token_for(roles=["admin"], scopes=["440306"])
PRIVATE = "王小明 13912345678"


async def test_a_failed_insert_logs_no_values(svc: RunningService, caplog):
    caplog.set_level(logging.INFO)
    async with svc.client(TOKEN) as http:
        first = await http.post("/v1/notes", json={"id": "dup", "text": "first"})
        assert first.status_code == 201
        # The same primary key again: the route does not expect it, so it is a logged 500.
        again = await http.post("/v1/notes", json={"id": "dup", "text": PRIVATE})
    assert again.status_code == 500
    assert PRIVATE not in again.text
    logged = [r for r in caplog.records if r.name == "gridgov.errors"]
    assert logged, "the failure was not logged"
    for record in logged:
        text = logging.Formatter().format(record)
        assert "IntegrityError" in text  # what failed is still there to debug
        assert PRIVATE not in text
