"""Checking the lookup ids a request body names (a product's category, an order's tags).

The composite foreign key already keeps another workspace's entry out; this check turns every
refusal into the same 422 naming the field, whether the id never existed or belongs to another
workspace (the two must be indistinguishable), and checks the kind, which the key cannot.
The entries found stay share-locked until the caller commits, so none is deleted meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.core.errors import InvalidInput
from tenantry.lookups.models import Lookup
from tenantry.lookups.repository import LookupRepository

# What to call an entry of each kind in a message, with its article.
_LABELS = {"product_category": ("a", "category"), "order_tag": ("an", "order tag")}


async def require_lookups(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID], *, kind: str, field: str, many: bool
) -> list[Lookup]:
    """The entries named by `ids`, in order; 422 naming `field` (or `field[i]`) for any that do not fit."""
    found = await LookupRepository(session, tenant_id).referenced(ids)
    article, label = _LABELS[kind]
    errors = []
    for position, lookup_id in enumerate(ids):
        where = f"{field}[{position}]" if many else field
        lookup = found.get(lookup_id)
        if lookup is None:
            errors.append({"field": where, "message": f"unknown {label}"})
        elif lookup.kind != kind:
            errors.append({"field": where, "message": f"is not {article} {label}"})
    if errors:
        unknown = all(error["message"].startswith("unknown") for error in errors)
        detail = (
            f"The body names an unknown {label}."
            if unknown
            else f"The body names an entry that is not {article} {label}."
        )
        raise InvalidInput(detail, errors=errors)
    return [found[lookup_id] for lookup_id in ids]
