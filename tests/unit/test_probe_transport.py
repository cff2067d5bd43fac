"""The prober waits out the request limits' 429s, and only those, HEAD included."""

from __future__ import annotations

import httpx

from tenantry.tools.probe import transport
from tenantry.tools.probe.transport import WaitingOutRateLimits

RATE_LIMITED = b'{"type":"https://tenantry.dev/problems/rate-limited","status":429}'
THROTTLED = b'{"type":"https://tenantry.dev/problems/too-many-requests","status":429}'


def _client(answers: list[httpx.Response]) -> tuple[httpx.AsyncClient, list[str]]:
    sent: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return answers.pop(0)

    return httpx.AsyncClient(transport=WaitingOutRateLimits(httpx.MockTransport(handle))), sent


async def test_a_head_refused_by_the_limits_is_sent_again(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(transport, "WAIT_CAP_S", 0.0)
    # A HEAD answer has no body: the 429 cannot be recognised by its type.
    client, sent = _client([httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200)])
    async with client:
        response = await client.head("http://api/v1/products")
    assert response.status_code == 200
    assert sent == ["HEAD", "HEAD"]


async def test_other_429s_are_answers(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(transport, "WAIT_CAP_S", 0.0)
    client, sent = _client([httpx.Response(429, content=THROTTLED), httpx.Response(429, content=RATE_LIMITED)])
    async with client:
        throttled = await client.post("http://api/v1/auth/token")
    assert throttled.status_code == 429
    assert sent == ["POST"]
