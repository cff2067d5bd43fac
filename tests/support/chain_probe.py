"""Run only by tests/integration/test_test_database_fallback.py, by path (its name is no test module).

It asks the session's `server_url` fixture for a server, as every database test does, and checks
that it answers; the outer test sets up the machine (a Docker engine that cannot start containers)
and reads what the run printed.
"""

from __future__ import annotations

import asyncio

from tenantry.db.server import server_answers


def test_the_chain_gave_a_server_that_answers(server_url: str) -> None:
    assert asyncio.run(server_answers(server_url))


def test_a_second_test_reuses_it(server_url: str) -> None:
    assert server_url
