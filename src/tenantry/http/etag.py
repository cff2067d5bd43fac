"""ETags and If-Match: optimistic concurrency for PATCH and DELETE.

The ETag is a hash of the resource's JSON representation, so it changes exactly when what the
client sees changes. A write with If-Match compares it against the current row, read under a
row lock inside the write's own transaction, and answers 412 on a mismatch: a client never
overwrites a change it has not seen.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, TypeVar, cast

import msgspec
from litestar import MediaType, Response
from litestar.params import HeaderParameter

from tenantry.core.errors import PreconditionFailed

IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", max_length=1024, description="Apply only if the ETag still matches (else 412)."),
]
S = TypeVar("S", bound=msgspec.Struct)


def with_etag(representation: S, status_code: int = 200) -> Response[S]:
    """`representation` as JSON with its ETag: encoded once, for the tag and as the body itself."""
    body = msgspec.json.encode(representation)
    answer = Response(body, status_code=status_code, media_type=MediaType.JSON, headers={"ETag": _tag(body)})
    return cast("Response[S]", answer)  # the body is exactly what Litestar would encode for S


def etag_of(representation: msgspec.Struct) -> str:
    return _tag(msgspec.json.encode(representation))


def _tag(body: bytes) -> str:
    return '"' + base64.urlsafe_b64encode(hashlib.sha256(body).digest()[:18]).decode() + '"'


def check_if_match(if_match: str | None, representation: msgspec.Struct) -> None:
    """Raise 412 unless If-Match is absent, `*`, or lists the current ETag (weak forms count too)."""
    if if_match is None:
        return
    current = etag_of(representation)
    candidates = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" in candidates or current in candidates:
        return
    raise PreconditionFailed("The resource has changed since you read it: fetch it again and retry.")
