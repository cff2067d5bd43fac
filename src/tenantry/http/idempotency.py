"""`Idempotency-Key` on POSTs: a retried request is answered with the first answer.

One mechanism for tenant and admin tokens (docs/05-api-guide.md, Idempotency). An ASGI middleware
inside the authentication middleware, so a key belongs to the verified caller: a tenant key to its
workspace and token, an admin key to its admin token. It applies to every tenant POST, and to the
admin POSTs whose handler says `opt={"idempotent": True}` (creating a workspace).

For a POST with the header:

1. A short transaction forgets expired keys and looks the key up. A repeat with the same method,
   path, query and body within 24 hours gets the stored answer again, with
   `Idempotent-Replayed: true`; with another request it is a 422 (idempotency-key-reused).
2. Otherwise the request runs on a session this middleware opens and owns. Its unit of work
   (tenancy/unit_of_work.py) begins the transaction, which first takes the key's advisory lock (a
   concurrent duplicate that cannot take it gets a 409, idempotency-key-in-progress), and then
   leaves the transaction open instead of committing.
3. When the answer is complete, a 2xx answer (status, Content-Type, Location, ETag and the exact
   body) is written on that same transaction, and the work and its answer commit together; only
   then is the answer sent. Any other answer rolls the work back, so the client may retry. A
   failed commit is answered with the error, never with the 2xx.

So there is no moment at which the work is committed and its answer not stored: a crash anywhere
leaves either both or neither, and the lock dies with the connection. No key is ever stuck, and no
retry ever runs the work twice.

Secrets are never stored: a route whose answer carries one names the fields in its handler opt,
`opt={"idempotency_redact": ("token",)}`; the stored body has them set to null and gains
`"replayed": true`, so a replay says plainly that the secret is not in it.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, cast

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPRequestEvent, Message, Receive, ReceiveMessage, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenantry.auth.principal import AdminPrincipal, Principal
from tenantry.core.errors import Conflict, DomainError, InvalidInput
from tenantry.http.idempotency_store import AdminKeys, StoredAnswer, TenantKeys, _Keys
from tenantry.http.problems import handle_exception
from tenantry.tenancy.unit_of_work import COMMIT_OWNER_KEY, UnitOfWork, commit

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
REDACT_OPT = "idempotency_redact"
# Admin routes take a key only when their handler says so (tenant POSTs always do).
IDEMPOTENT_OPT = "idempotent"
# Where the request's session waits for the dependency providers (http/dependencies.py).
REQUEST_SESSION_KEY = "tenantry_request_session"
MAX_KEY_LENGTH = 255
# Only these response headers are stored and replayed; Request-Id is fresh on every answer.
REPLAYED_HEADERS = frozenset({"content-type", "location", "etag"})
_IN_PROGRESS = f"A request with this {IDEMPOTENCY_HEADER} is still in progress; retry once it has finished."


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


def request_session(scope: Scope) -> AsyncSession | None:
    """The session this middleware opened for the request, if it did (the request then uses it)."""
    state = scope.get("state")
    return state.get(REQUEST_SESSION_KEY) if isinstance(state, dict) else None


class PendingAnswer:
    """The commit owner of an idempotent request's session (see tenancy/unit_of_work.py)."""

    def __init__(self, keys: _Keys) -> None:
        self.keys = keys

    async def began(self, session: AsyncSession) -> None:
        """Hold the key for the whole transaction, before the work's first statement."""
        if not await self.keys.lock():
            raise IdempotencyKeyInProgress(_IN_PROGRESS)
        if await self.keys.find() is not None:
            # A duplicate finished between our lookup and our lock: its answer is there to replay.
            raise IdempotencyKeyInProgress(_IN_PROGRESS)


class IdempotencyMiddleware:
    """Answers a POST repeated with the same Idempotency-Key with the first answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        target = _target(scope)
        if target is None:  # public paths, and admin routes that take no key
            await self.app(scope, receive, send)
            return
        key = idempotency_key(scope)
        limit = scope["app"].state.settings.max_body_bytes
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
        sessions, keys_of = target
        async with sessions() as session:
            keys = keys_of(session, key)
            async with UnitOfWork(session).transaction():
                await keys.forget_stale()
                existing = await keys.find()
            if existing is not None:
                await _answer_repeat(existing, fingerprint, send)
                return
            session.info[COMMIT_OWNER_KEY] = PendingAnswer(keys)
            scope.setdefault("state", {})[REQUEST_SESSION_KEY] = session
            try:
                await _run_once(self.app, scope, receive, send, session, keys, fingerprint)
            finally:
                scope["state"].pop(REQUEST_SESSION_KEY, None)


KeysOf = Callable[[AsyncSession, str], _Keys]


def _target(scope: Scope) -> tuple[async_sessionmaker[AsyncSession], KeysOf] | None:
    """The caller's session factory and key table, or None when the request takes no key."""
    principal = scope.get("user")
    state = scope["app"].state
    if isinstance(principal, Principal):
        return state.session_factory, lambda session, key: TenantKeys(
            session, principal.tenant_id, principal.token_id, key
        )
    route_handler = scope.get("route_handler")
    if (
        isinstance(principal, AdminPrincipal)
        and principal.token_id is not None
        and route_handler is not None
        and route_handler.opt.get(IDEMPOTENT_OPT)
    ):
        admin_token_id = principal.token_id
        return state.platform_session_factory, lambda session, key: AdminKeys(session, admin_token_id, key)
    return None


async def _answer_repeat(existing: StoredAnswer, fingerprint: str, send: Send) -> None:
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"This {IDEMPOTENCY_HEADER} was already used with a different request; send a new key."
        )
    if existing.status is None:
        raise IdempotencyKeyInProgress(_IN_PROGRESS)
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in existing.headers.items()]
    headers += [(b"content-length", str(len(existing.body)).encode()), (REPLAYED_HEADER.lower().encode(), b"true")]
    await send({"type": "http.response.start", "status": existing.status, "headers": headers})
    await send({"type": "http.response.body", "body": existing.body, "more_body": False})


async def _run_once(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    session: AsyncSession,
    keys: _Keys,
    fingerprint: str,
) -> None:
    """Run the request with its answer held back; commit the work with the answer, then send it."""
    messages: list[Message] = []

    async def hold(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, hold)
    start = next((m for m in messages if m["type"] == "http.response.start"), None)
    status = int(start["status"]) if start is not None else 500
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    answered = 200 <= status < 300
    stored: bytes | None = body
    if answered:
        route_handler = scope.get("route_handler")
        redacted_fields = tuple(route_handler.opt.get(REDACT_OPT, ())) if route_handler else ()
        if redacted_fields:
            stored = redact(body, redacted_fields)
    try:
        if session.in_transaction():
            if answered and stored is not None:
                await keys.store(fingerprint, status, _kept_headers(start.get("headers", ()) if start else ()), stored)
                await commit(session)
            elif answered:
                await commit(session)  # an answer that cannot be stored: the work still counts
            else:
                await session.rollback()  # an error answer: nothing of the work stays, the key is free
        elif answered and stored is not None:
            # The work used no unit of work on this session: keep the answer in a transaction of its own.
            del session.info[COMMIT_OWNER_KEY]
            async with UnitOfWork(session).transaction():
                if await keys.lock() and await keys.find() is None:
                    await keys.store(
                        fingerprint, status, _kept_headers(start.get("headers", ()) if start else ()), stored
                    )
    except Exception as exc:
        # Nothing has been sent yet: the client gets the error instead of the 2xx it never earned.
        await session.rollback()
        await _send_problem(scope, receive, send, exc)
        return
    for message in messages:
        await send(message)


async def _send_problem(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    request: Request[Any, Any, Any] = Request(scope, receive)
    response = handle_exception(request, exc)
    await response.to_asgi_response(app=None, request=request)(scope, receive, send)


def _kept_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, value in raw:
        lowered = name.decode("latin-1").lower()
        if lowered in REPLAYED_HEADERS:
            kept[lowered] = value.decode("latin-1")
    return kept


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
