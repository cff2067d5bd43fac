"""The prober's HTTP transport: a request refused by the request limits is sent again after Retry-After.

A deployment limits each workspace and token (docs/06-operations.md, "Request limits"), and the
prober sends hundreds of requests with one token. A `429 rate-limited` means the request never
ran, so the prober does what a client should: it waits the seconds in Retry-After (at most
`WAIT_CAP_S`) and sends it again, instead of comparing a refusal. Other 429s (the login throttle)
are answers like any other. A HEAD answer has no body to tell them apart by, but only POSTs are
throttled otherwise, so a 429 to a HEAD is the request limits' too.
"""

from __future__ import annotations

import asyncio

import httpx

RATE_LIMITED_TYPE = b'"type":"https://tenantry.dev/problems/rate-limited"'
RETRIES = 30
WAIT_CAP_S = 10.0


class WaitingOutRateLimits(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(RETRIES):
            response = await self.inner.handle_async_request(request)
            if response.status_code != 429:
                return response
            body = await response.aread()
            if RATE_LIMITED_TYPE not in body[:200] and request.method != "HEAD":
                return response
            await response.aclose()
            try:
                wait = float(response.headers.get("Retry-After", "1"))
            except ValueError:
                wait = 1.0
            await asyncio.sleep(min(max(wait, 0.0), WAIT_CAP_S))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
