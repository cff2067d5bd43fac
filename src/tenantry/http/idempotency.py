"""`Idempotency-Key` on tenant POSTs: a retried request is answered with the first answer.

An ASGI middleware inside the authentication middleware, so the key is scoped to the verified
workspace and token (another token, or another workspace, sending the same key is a different
key). For a POST with the header:

1. the key row is claimed in a transaction of its own and committed before the request runs;
2. the request runs; just before the last byte of the answer goes out, a 2xx answer (status,
   Content-Type, Location, ETag and the exact body) is stored on the row, and any other answer
   deletes the row, so the client may retry with the same key;
3. a repeat with the same method, path and body within 24 hours gets the stored answer again,
   with `Idempotent-Replayed: true`; with another body it is a 422 (idempotency-key-reused);
   while the first still runs it is a 409 (idempotency-key-in-progress). A row left running for
   five minutes (its process died) is taken over, and expired keys count as absent.

Secrets are never stored: a route whose answer carries one names the fields in its handler opt,
`opt={"idempotency_redact": ("token",)}`; the stored body has them set to null and gains
`"replayed": true`, so a replay says plainly that the secret is not in it.

The work and the stored answer are two transactions: if the process dies between them, the key
stays "in progress" for five minutes and the request may then run again. The window is the few
milliseconds between the handler's commit and the store.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Iterable
from typing import cast

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPRequestEvent, Message, Receive, ReceiveMessage, Scope, Send

from tenantry.auth.principal import Principal
from tenantry.core.errors import Conflict, DomainError, InvalidInput
from tenantry.http.idempotency_store import Claim, ExistingKey, IdempotencyStore, KeyScope

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
REDACT_OPT = "idempotency_redact"
MAX_KEY_LENGTH = 255
# Only these response headers are stored and replayed; Request-Id is fresh on every answer.
REPLAYED_HEADERS = frozenset({"content-type", "location", "etag"})

log = logging.getLogger("tenantry.idempotency")


class InvalidIdempotencyKey(DomainError):
    status = 400
    type = "invalid-idempotency-key"
    title = "Invalid Idempotency-Key"


class IdempotencyKeyReused(InvalidInput):
    type = "idempotency-key-reused"
    title = "Idempotency key reused"


class IdempotencyKeyInProgress(Conflict):
    type = "idempotency-key-in-progress"
    title = "Request in progress"


def idempotency_key(scope: Scope) -> str | None:
    """The request's key, None without the header; 400 unless it is 1 to 255 printable ASCII characters."""
    values = [value for name, value in scope["headers"] if name == b"idempotency-key"]
    if not values:
        return None
    if len(values) == 1 and 1 <= len(values[0]) <= MAX_KEY_LENGTH and all(0x20 <= b <= 0x7E for b in values[0]):
        return values[0].decode("ascii")
    raise InvalidIdempotencyKey(
        f"The {IDEMPOTENCY_HEADER} header must be sent once, with 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
        errors=[{"field": IDEMPOTENCY_HEADER, "message": f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"}],
    )


def canonical_body(body: bytes) -> bytes:
    """JSON with its keys sorted and no white space, so formatting and key order do not matter."""
    try:
        return msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except msgspec.DecodeError:
        return body


def request_fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, canonical_body(body)):
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two requests share a byte string
        digest.update(part)
    return digest.hexdigest()


def redact(body: bytes, fields: Iterable[str]) -> bytes | None:
    """The body with the secret top-level fields nulled and `"replayed": true`; None if not a JSON object."""
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(document, dict):
        return None
    for field in fields:
        if field in document:
            document[field] = None
    document["replayed"] = True
    return msgspec.json.encode(document)


async def _read_body(receive: Receive, limit: int) -> tuple[list[ReceiveMessage], bool]:
    """The request's messages, and whether they hold the whole body within `limit` bytes."""
    messages: list[ReceiveMessage] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, False
        size += len(message.get("body", b""))
        if size > limit:
            return messages, False
        if not message.get("more_body", False):
            return messages, True


def _replaying(messages: list[ReceiveMessage], receive: Receive) -> Receive:
    """A receive that hands out the messages already read, then reads on."""
    pending = deque(messages)

    async def replay() -> ReceiveMessage:
        return pending.popleft() if pending else await receive()

    return replay


def _too_large(scope: Scope, limit: int) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return not value.isdigit() or int(value) > limit
    return False


class IdempotencyMiddleware:
    """Replays the first answer to a tenant POST repeated with the same Idempotency-Key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get("user")
        # Public and admin paths carry no tenant principal: the admin surface has its own keys.
        if scope["type"] != ScopeType.HTTP or scope["method"] != "POST" or not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        key = idempotency_key(scope)
        state = scope["app"].state
        limit = state.settings.max_body_bytes
        if key is None or _too_large(scope, limit):
            await self.app(scope, receive, send)  # an oversized body is refused (413) as usual
            return
        messages, whole = await _read_body(receive, limit)
        receive = _replaying(messages, receive)
        if not whole:
            await self.app(scope, receive, send)
            return
        body = b"".join(cast("HTTPRequestEvent", message).get("body", b"") for message in messages)
        fingerprint = request_fingerprint(scope["method"], scope["path"], scope.get("query_string", b""), body)
        store = IdempotencyStore(state.session_factory)
        outcome = await store.claim(KeyScope(principal.tenant_id, principal.token_id, key), fingerprint)
        if isinstance(outcome, ExistingKey):
            await _answer_repeat(outcome, fingerprint, send)
            return
        route_handler = scope.get("route_handler")
        redacted_fields = tuple(route_handler.opt.get(REDACT_OPT, ())) if route_handler else ()
        await _run_once(self.app, scope, receive, send, store, outcome, redacted_fields)


async def _answer_repeat(existing: ExistingKey, fingerprint: str, send: Send) -> None:
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"This {IDEMPOTENCY_HEADER} was already used with a different request; send a new key."
        )
    if existing.status is None:
        raise IdempotencyKeyInProgress(
            f"A request with this {IDEMPOTENCY_HEADER} is still in progress; retry once it has finished."
        )
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in existing.headers.items()]
    headers += [(b"content-length", str(len(existing.body)).encode()), (REPLAYED_HEADER.lower().encode(), b"true")]
    await send({"type": "http.response.start", "status": existing.status, "headers": headers})
    await send({"type": "http.response.body", "body": existing.body, "more_body": False})


async def _run_once(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    store: IdempotencyStore,
    claim: Claim,
    redacted_fields: tuple[str, ...],
) -> None:
    """Run the request, and store or release its key before the client has the whole answer."""
    status = 0
    headers: dict[str, str] = {}
    chunks: list[bytes] = []
    settled = False

    async def recording_send(message: Message) -> None:
        nonlocal status, headers, settled
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = _kept_headers(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False) and not settled:
                settled = True
                await _settle(store, claim, status, headers, b"".join(chunks), redacted_fields)
        await send(message)

    try:
        await app(scope, receive, recording_send)
    finally:
        if not settled:
            try:
                await store.release(claim)
            except Exception:
                log.exception("could not release an idempotency key")


async def _settle(
    store: IdempotencyStore,
    claim: Claim,
    status: int,
    headers: dict[str, str],
    body: bytes,
    redacted_fields: tuple[str, ...],
) -> None:
    """Store a 2xx answer (secrets redacted) or forget the key. The answer goes out either way."""
    try:
        stored = body
        if 200 <= status < 300 and redacted_fields:
            stored = redact(body, redacted_fields)  # type: ignore[assignment]
        if 200 <= status < 300 and stored is not None:
            await store.complete(claim, status, headers, stored)
        else:
            await store.release(claim)
    except Exception:
        # The work is done and committed; failing its answer now would only invite a blind retry.
        log.exception("could not store the answer to an idempotent request")


def _kept_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, value in raw:
        lowered = name.decode("latin-1").lower()
        if lowered in REPLAYED_HEADERS:
            kept[lowered] = value.decode("latin-1")
    return kept
