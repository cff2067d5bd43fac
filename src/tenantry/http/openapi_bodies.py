"""What the OpenAPI document must say about request bodies that Litestar leaves out.

Litestar documents every body as required and every object as open. Ours are stricter or looser:

- Request Structs declared with `forbid_unknown_fields=True` answer 422 to an unknown property, so
  their schemas get `additionalProperties: false` (otherwise a client, or a fuzzer, reading the
  document believes extra properties are accepted).
- A handler whose body parameter is optional (`data: X | None = None`) accepts a request with no
  body at all, so its `requestBody` is not `required`.
- Litestar ignores `msgspec.Meta(extra_json_schema=...)` on a body field, and drops a bound of 0
  (`ge=0`) on a field that may be UNSET (PATCH bodies: `position` looked unbounded below). Both are
  merged into the field's property here from the msgspec metadata.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute


class RequestBodyFacts(NamedTuple):
    """What a handler's body parameter says about the body, by operationId."""

    optional: bool
    closed_schemas: frozenset[str]  # Struct names that refuse unknown fields, the body's own and nested
    # Struct name -> property name -> the extra_json_schema its msgspec.Meta declares
    refinements: Mapping[str, Mapping[str, Mapping[str, Any]]]


def request_body_facts(app: Litestar) -> dict[str, RequestBodyFacts]:
    facts = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            field = handler.parsed_data_field
            if field is None or not isinstance(handler.operation_id, str):
                continue
            structs = list(_structs(field.annotation))
            facts[handler.operation_id] = RequestBodyFacts(
                optional=field.is_optional and field.has_default,
                closed_schemas=frozenset(s.cls.__name__ for s in structs if s.forbid_unknown_fields),
                refinements={s.cls.__name__: refinements for s in structs if (refinements := _refinements(s))},
            )
    return facts


# msgspec.inspect constraint attribute -> JSON Schema keyword
_BOUNDS = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
    "min_length": "minLength",
    "max_length": "maxLength",
}


def _refinements(struct: msgspec.inspect.StructType) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for field in struct.fields:
        extra: dict[str, Any] = {}
        pending = [field.type]
        while pending:
            node = pending.pop()
            if isinstance(node, msgspec.inspect.Metadata):
                extra.update(node.extra_json_schema or {})
                pending.append(node.type)
            elif isinstance(node, msgspec.inspect.UnionType):
                pending.extend(node.types)
            elif isinstance(node, (msgspec.inspect.IntType, msgspec.inspect.FloatType, msgspec.inspect.StrType)):
                extra.update(
                    {_BOUNDS[name]: getattr(node, name) for name in _BOUNDS if getattr(node, name, None) is not None}
                )
        if extra:
            found[field.encode_name] = extra
    return found


def _structs(annotation: Any) -> Iterable[msgspec.inspect.StructType]:
    seen: set[type] = set()
    pending: list[msgspec.inspect.Type] = [msgspec.inspect.type_info(annotation)]
    while pending:
        node = pending.pop()
        if isinstance(node, msgspec.inspect.StructType):
            if node.cls in seen:
                continue
            seen.add(node.cls)
            yield node
            pending.extend(field.type for field in node.fields)
        elif isinstance(node, msgspec.inspect.UnionType):
            pending.extend(node.types)
        elif isinstance(node, (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)):
            pending.append(node.item_type)
        elif isinstance(node, msgspec.inspect.DictType):
            pending.append(node.value_type)
        elif isinstance(node, msgspec.inspect.Metadata):
            pending.append(node.type)


def describe_request_bodies(document: dict[str, Any], facts: Mapping[str, RequestBodyFacts]) -> None:
    """Mark closed body schemas and optional bodies in a generated document (in place)."""
    schemas = document.get("components", {}).get("schemas", {})
    by_title = {schema.get("title", name): name for name, schema in schemas.items()}
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            body_facts = facts.get(operation.get("operationId", ""))
            if body_facts is None:
                continue
            if body_facts.optional:
                operation["requestBody"]["required"] = False
            for struct_name in body_facts.closed_schemas:
                component = by_title.get(struct_name, struct_name)
                if component in schemas:
                    schemas[component]["additionalProperties"] = False
            for struct_name, refinements in body_facts.refinements.items():
                properties = schemas.get(by_title.get(struct_name, struct_name), {}).get("properties", {})
                for name, extra in refinements.items():
                    if name in properties:
                        _refine(properties[name], extra)


def _refine(schema: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge `extra` into the schema, or into its non-null branches when Litestar wrapped it in oneOf."""
    branches = [branch for branch in schema.get("oneOf", ()) if branch.get("type") != "null"]
    for target in branches or [schema]:
        target.update(copy.deepcopy(dict(extra)))
