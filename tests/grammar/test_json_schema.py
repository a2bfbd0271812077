"""with_object_types: TGI's reading of schemas with `properties` as objects."""

from __future__ import annotations

from pytgi.grammar.json_schema import with_object_types


def test_untyped_schemas_with_properties_become_objects_at_every_level() -> None:
    tool = {"properties": {"_name": {"const": "f"}}, "required": ["_name"]}
    schema = {
        "$functions": {"f": tool},
        "properties": {"function": {"anyOf": [{"$ref": "#/$functions/f"}]}},
        "$defs": {"inner": {"properties": {}}},
        "items": {"properties": {}},
    }
    result = with_object_types(schema)
    assert result["type"] == "object"
    assert result["$functions"]["f"] == {"type": "object", **tool}
    assert result["$defs"]["inner"]["type"] == "object"
    assert result["items"]["type"] == "object"
    assert "type" not in result["properties"]["function"]  # no `properties`: untouched
    assert "type" not in schema  # the input is not modified


def test_explicit_types_and_property_names_are_left_alone() -> None:
    schema = {
        "type": ["object", "null"],
        "properties": {"properties": {"type": "string"}, "type": {"type": "integer"}},
    }
    assert with_object_types(schema) == schema
    named = {"type": "object", "properties": {"properties": {"properties": {}}}}
    # The property called `properties` is a schema with `properties`: typed; the map itself is not.
    assert with_object_types(named)["properties"] == {"properties": {"type": "object", "properties": {}}}
    assert with_object_types(True) is True
