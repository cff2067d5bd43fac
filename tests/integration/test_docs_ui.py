"""The API documentation pages load every script and stylesheet from the app itself: pinned,
vendored files (src/tenantry/http/docs_ui/), so they work offline. They used to load Scalar from a
CDN at `@latest`."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

import tenantry

Client = AsyncTestClient[Litestar]
DOCS_UI = Path(tenantry.__file__).parent / "http" / "docs_ui"


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
async def test_the_docs_pages_load_only_local_files_and_each_answers(client: Client, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    parser = _Resources()
    parser.feed(response.text)
    assert parser.urls, "no script found: the page changed shape"
    scripts = [url for url in parser.urls if url.endswith(".js")]
    assert scripts
    for url in parser.urls:
        assert url.startswith("/schema/assets/"), url  # no scheme, no host: this server
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
    assert "cdn." not in response.text
    assert not re.search(r"""(src|href)=["']?https?://""", response.text)


async def test_scalar_is_told_not_to_reach_scalar_com(client: Client) -> None:
    page = (await client.get("/schema")).text
    assert '"withDefaultFonts":false' in page
    assert '"telemetry":false' in page


async def test_the_assets_need_no_token_and_unknown_ones_are_404(client: Client) -> None:
    assert (await client.get("/schema/assets/scalar/standalone.js")).status_code == 200
    assert (await client.get("/schema/assets/scalar/nothing.js")).status_code == 404
    assert (await client.get("/schema/assets/../../app.py")).status_code == 404


def test_the_vendored_files_are_the_recorded_releases() -> None:
    """README.md records the SHA-256 of each vendored file; an edit or a partial update shows here."""
    recorded = re.findall(r"^([0-9a-f]{64})  (\S+)$", (DOCS_UI / "README.md").read_text(), re.MULTILINE)
    assert len(recorded) == 4
    for digest, name in recorded:
        assert hashlib.sha256((DOCS_UI / name).read_bytes()).hexdigest() == digest, name
    assert (DOCS_UI / "scalar" / "LICENSE").read_text().startswith("MIT License")
    assert "Apache License" in (DOCS_UI / "swagger-ui" / "LICENSE").read_text()
