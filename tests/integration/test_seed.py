"""`tenantry seed`: bulk demo data through the tenant role, visible through the API, isolated per workspace."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry import cli
from tenantry.settings import ENVIRONMENT, Settings
from tenantry.tools.seed import SeedOptions, seed
from tests.support import snapshot_rows

PRODUCTS, ORDERS = 23, 31


def _prefix() -> str:
    return f"sd{uuid.uuid4().hex[:8]}"


async def _all(client: AsyncTestClient[Litestar], path: str, token: str) -> list[dict[str, object]]:
    """Every item of a list, page by page (limit 10, so several pages)."""
    items: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["data"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return items
        cursor = page["next_cursor"]


async def _counts(admin_engine: AsyncEngine, workspace_id: uuid.UUID) -> dict[str, int]:
    async with admin_engine.connect() as connection:
        return {
            table: (
                await connection.execute(
                    text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": workspace_id}
                )
            ).scalar_one()
            for table in ("lookups", "products", "orders", "order_status_history")
        }


async def test_seed_makes_workspaces_visible_through_the_api_with_consistent_orders(
    client: AsyncTestClient[Litestar], settings: Settings, app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    summary = await seed(settings, SeedOptions(2, PRODUCTS, ORDERS, _prefix(), batch=7), engine=app_engine)

    assert [len(summary.created), summary.products, summary.orders] == [2, 2 * PRODUCTS, 2 * ORDERS]
    for workspace in summary.created:
        products = await _all(client, "/v1/products", workspace.token)
        assert len(products) == PRODUCTS
        assert len({p["sku"] for p in products}) == PRODUCTS
        assert {p["currency"] for p in products} <= {"EUR", "USD"}
        assert all(p["category_id"] for p in products)
        categories = await _all(client, "/v1/lookups?kind=product_category", workspace.token)
        assert {c["id"] for c in categories} == {p["category_id"] for p in products}

        orders = await _all(client, "/v1/orders", workspace.token)
        assert len(orders) == ORDERS
        by_id = {p["id"]: p for p in products}
        for order in orders:
            product = by_id[order["product_id"]]  # a product of this workspace
            assert order["amount_cents"] == product["price_cents"] * order["quantity"]
            assert order["currency"] == product["currency"]
        assert len({o["status"] for o in orders}) >= 3  # varied statuses
        for order in orders[:5]:
            response = await client.get(
                f"/v1/orders/{order['id']}/history", headers={"Authorization": f"Bearer {workspace.token}"}
            )
            assert response.status_code == 200, response.text
            body = response.json()
            history = body["data"] if isinstance(body, dict) else body
            assert history[0]["from_status"] is None
            assert history[0]["to_status"] == "created"
            assert history[-1]["to_status"] == order["status"]
            for before, after in itertools.pairwise(history):
                assert after["from_status"] == before["to_status"]

    # Each workspace holds exactly its own rows: one history row per status an order entered.
    for workspace in summary.created:
        counts = await _counts(admin_engine, workspace.workspace_id)
        assert counts["products"] == PRODUCTS
        assert counts["orders"] == ORDERS
        assert counts["lookups"] >= 3
        assert counts["order_status_history"] >= ORDERS


async def test_seeded_workspaces_see_only_their_own_rows(
    client: AsyncTestClient[Litestar], settings: Settings, app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    first, second = (await seed(settings, SeedOptions(2, 5, 4, _prefix()), engine=app_engine)).created
    before = {table: await snapshot_rows(admin_engine, table, second.workspace_id) for table in ("products", "orders")}

    mine = {p["id"] for p in await _all(client, "/v1/products", first.token)}
    theirs = {p["id"] for p in await _all(client, "/v1/products", second.token)}
    assert len(mine) == len(theirs) == 5
    assert not mine & theirs
    other_order = (await _all(client, "/v1/orders", second.token))[0]
    response = await client.get(f"/v1/orders/{other_order['id']}", headers={"Authorization": f"Bearer {first.token}"})
    random_id = await client.get(f"/v1/orders/{uuid.uuid4()}", headers={"Authorization": f"Bearer {first.token}"})
    assert response.status_code == 404
    assert response.content == random_id.content

    # Seeding more workspaces never touches existing ones.
    await seed(settings, SeedOptions(1, 3, 2, _prefix()), engine=app_engine)
    after = {table: await snapshot_rows(admin_engine, table, second.workspace_id) for table in ("products", "orders")}
    assert after == before


async def test_seed_skips_existing_workspaces_and_adds_the_missing_ones(
    settings: Settings, app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    prefix = _prefix()
    (first,) = (await seed(settings, SeedOptions(1, 4, 3, prefix), engine=app_engine)).created
    again = await seed(settings, SeedOptions(2, 4, 3, prefix), engine=app_engine)

    assert again.skipped == [f"{prefix}-1"]
    assert [w.slug for w in again.created] == [f"{prefix}-2"]
    assert (await _counts(admin_engine, first.workspace_id))["products"] == 4


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TENANTRY_TOKEN_PEPPER", settings.token_pepper)
    monkeypatch.setenv("TENANTRY_APP_PASSWORD", settings.app_password)


async def test_seed_command_prints_one_token_and_writes_all_to_the_tokens_file(
    environment: None,
    client: AsyncTestClient[Litestar],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    prefix, tokens_file = _prefix(), tmp_path / "tokens"
    args = ["seed", "--workspaces", "2", "--products", "3", "--orders", "2", "--prefix", prefix]
    code = await asyncio.to_thread(cli.main, [*args, "--tokens-out", str(tokens_file)])
    out = capsys.readouterr().out

    assert code == 0, out
    assert "seeded 2 workspaces" in out
    lines = [line.split() for line in tokens_file.read_text().splitlines()]
    assert [slug for slug, _ in lines] == [f"{prefix}-1", f"{prefix}-2"]
    assert lines[0][1] in out
    assert lines[1][1] not in out  # never every token on stdout
    assert tokens_file.stat().st_mode & 0o077 == 0
    for _, token in lines:
        response = await client.get("/v1/products", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert len(response.json()["data"]) == 3
