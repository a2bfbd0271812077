"""JSON-Schema adjustments that give TGI's meaning to the schemas clients send.

TGI compiles schemas with outlines, which reads any schema that has
`properties` as an object, with or without `"type": "object"`. Strict JSON
Schema does not: `{"properties": {...}}` also accepts `42`, so a
schema-following library would let the model answer with a bare number. TGI's
own tool grammar (`{"$functions": ..., "properties": {"function": ...}}`) has
no `type` anywhere, so without this a tool call need not be an object at all.
"""

from __future__ import annotations

from typing import Any

# Keywords whose value is one subschema, a list of them, or a name -> subschema map.
# `$functions` is where TGI's tool grammar keeps its tools.
SUBSCHEMA_KEYS = (
    "items",
    "additionalProperties",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
)
SUBSCHEMA_LIST_KEYS = ("anyOf", "allOf", "oneOf", "prefixItems")
SUBSCHEMA_MAP_KEYS = (
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
    "$functions",
)


def with_object_types(schema: Any) -> Any:
    """A copy of `schema` where every (sub)schema with `properties` and no
    `type` is typed `"object"`. Walks schema positions only, so a property that
    happens to be named `properties` or `type` is left alone."""
    if not isinstance(schema, dict):
        return schema
    result = dict(schema)
    if "properties" in result and "type" not in result:
        result = {"type": "object", **result}
    for key in SUBSCHEMA_KEYS:
        if key in result:
            result[key] = with_object_types(result[key])
    for key in SUBSCHEMA_LIST_KEYS:
        if isinstance(result.get(key), list):
            result[key] = [with_object_types(item) for item in result[key]]
    for key in SUBSCHEMA_MAP_KEYS:
        if isinstance(result.get(key), dict):
            result[key] = {name: with_object_types(sub) for name, sub in result[key].items()}
    return result
