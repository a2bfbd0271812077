"""`grammar` validation: TGI's messages, in its order, and the spec the engine gets."""

from __future__ import annotations

import json

import pytest
from fake_engine import make_limits

from pytgi.errors import ValidationError
from pytgi.protocol import GrammarSpec
from pytgi.server.tgi_schemas import GenerateRequest, GrammarType
from pytgi.server.validation import grammar_spec, validate_generate

PERSON = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def spec_of(grammar_type: str, value: object, enabled: bool = True) -> GrammarSpec:
    return grammar_spec(GrammarType(type=grammar_type, value=value), enabled)  # type: ignore[arg-type]


def message_of(grammar_type: str, value: object, enabled: bool = True) -> str:
    with pytest.raises(ValidationError) as info:
        spec_of(grammar_type, value, enabled)
    return str(info.value)


@pytest.mark.parametrize("grammar_type", ["json", "json_object"])
def test_json_schema_as_object_or_string(grammar_type: str) -> None:
    expected = GrammarSpec(kind="json", value=json.dumps(PERSON))
    assert spec_of(grammar_type, PERSON) == expected
    assert spec_of(grammar_type, json.dumps(PERSON, indent=2)) == expected  # same cache key


def test_json_schema_type_takes_the_schema_field_and_ignores_the_rest() -> None:
    value = {"name": "person", "schema": PERSON, "strict": True}
    assert spec_of("json_schema", value) == GrammarSpec(kind="json", value=json.dumps(PERSON))
    assert spec_of("json_schema", {"schema": PERSON}).kind == "json"


def test_regex() -> None:
    assert spec_of("regex", r"\d{3}-[a-z]+") == GrammarSpec(kind="regex", value=r"\d{3}-[a-z]+")


@pytest.mark.parametrize(
    ("grammar_type", "value", "message"),
    [
        ("json", 42, "grammar is not supported"),
        ("json", [PERSON], "grammar is not supported"),
        ("json", None, "grammar is not supported"),
        ("json", "{not json", "grammar is not valid: Expecting property name enclosed in double quotes"),
        ("json", {"type": "object"}, "grammar is not valid: Grammar must have a 'properties' field"),
        ("json", "true", "grammar is not valid: Grammar must have a 'properties' field"),
        ("json", {"properties": {"a": {"type": "strin"}}}, "grammar is not valid: 'strin' is not valid"),
        (
            "json",
            {"properties": {}, "minProperties": -1},
            "grammar is not valid: -1 is less than the minimum",
        ),
        ("json", "12", "grammar is not valid: 12 is not of type 'object', 'boolean'"),
        ("json_schema", PERSON, "grammar is not valid: missing field `schema`"),
        (
            "json_schema",
            {"schema": {"type": "object"}},
            "grammar is not valid: Grammar must have a 'properties' field",
        ),
        ("regex", 5, "grammar is not valid: a regex grammar's value must be a string"),
    ],
)
def test_messages(grammar_type: str, value: object, message: str) -> None:
    assert message_of(grammar_type, value).startswith(message)


@pytest.mark.parametrize(
    ("grammar_type", "value"),
    [("json", PERSON), ("json", 42), ("regex", "a+"), ("json_schema", {"schema": PERSON})],
)
def test_disabled_support_refuses_every_grammar_first(grammar_type: str, value: object) -> None:
    assert message_of(grammar_type, value, enabled=False) == "grammar is not supported"


def test_meta_schema_check_comes_before_the_properties_check() -> None:
    # No `properties` and an invalid keyword: TGI reports the meta-schema error.
    assert message_of("json", {"type": "strin"}).startswith("grammar is not valid: 'strin' is not valid")


def test_tgi_tool_schema_is_accepted() -> None:
    tools = {
        "$functions": {"get_weather": {"properties": {"_name": {"type": "string", "const": "get_weather"}}}},
        "properties": {"function": {"anyOf": [{"$ref": "#/$functions/get_weather"}]}},
    }
    assert spec_of("json", tools).kind == "json"


def validate(parameters: dict, **limits: int | bool):
    body = {"inputs": "Hello", "parameters": parameters}
    return validate_generate(GenerateRequest.model_validate(body), make_limits(**limits))


def test_validate_generate_carries_the_spec() -> None:
    validated = validate({"grammar": {"type": "regex", "value": "[ab]+"}})
    assert validated.request.grammar == GrammarSpec(kind="regex", value="[ab]+")
    assert validate({}).request.grammar is None


def test_validate_generate_honours_disable_grammar_support() -> None:
    with pytest.raises(ValidationError, match="^grammar is not supported$"):
        validate({"grammar": {"type": "regex", "value": "a"}}, disable_grammar_support=True)
    assert validate({}, disable_grammar_support=True).request.grammar is None


def test_grammar_is_checked_after_the_other_parameters() -> None:
    bad_grammar = {"type": "json", "value": {"type": "object"}}
    with pytest.raises(ValidationError, match="^`truncate`"):
        validate({"grammar": bad_grammar, "truncate": 0})
    with pytest.raises(ValidationError, match="^`top_n_tokens`"):
        validate({"grammar": bad_grammar, "top_n_tokens": 99})
