"""Wire request -> frozen `GenerationRequest`, with TGI's rules, messages and order.

TGI checks parameters in a fixed order and the first failure wins; `PARAMETER_RULES`
is that order, and the grammar (`grammar_spec`) is checked after all of them.
Token-count checks (prompt too long, prompt + max_new_tokens over
max_total_tokens) need the tokenizer, so the engine does them and raises the same
`ValidationError` from `client.generate`; it also compiles the grammar, so a
schema the backend cannot compile is a 422 before the request is queued.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

from pytgi.config import ServingLimits
from pytgi.errors import ValidationError
from pytgi.protocol import GenerationRequest, GrammarSpec, SamplingParams, StoppingParams
from pytgi.server.tgi_schemas import GenerateParameters, GenerateRequest, GrammarType


@dataclass(frozen=True, slots=True)
class ValidatedGenerate:
    """What a native route needs beyond the engine request itself."""

    request: GenerationRequest
    inputs: str
    details: bool
    return_full_text: bool
    best_of: int


def new_request_id() -> str:
    return uuid.uuid4().hex


def is_sampling(params: GenerateParameters) -> bool:
    """TGI's router notion of sampling (used by the best_of rule)."""
    return bool(params.do_sample) or any(
        value is not None for value in (params.temperature, params.top_k, params.top_p, params.typical_p)
    )


def best_of(params: GenerateParameters) -> int:
    return 1 if params.best_of is None else params.best_of


# --- checks done by the route before validation ----------------------------------------------


def check_best_of_bound(params: GenerateParameters, limits: ServingLimits) -> int:
    """How many sequences `/generate` runs. TGI checks the bound before taking permits."""
    n = best_of(params)
    if n <= 1:
        return 1
    if limits.max_best_of == 1:
        raise ValidationError("`best_of` != 1 is not allowed for this endpoint")
    if n > limits.max_best_of:
        raise ValidationError(f"`best_of` must be > 0 and <= {limits.max_best_of}. Given: {n}")
    return n


def check_streamable(params: GenerateParameters) -> None:
    """Stream-only rules; TGI checks them before taking the permit."""
    if best_of(params) != 1:
        raise ValidationError("`best_of` != 1 is not supported when streaming tokens")
    if params.decoder_input_details:
        raise ValidationError("`decoder_input_details` == true is not supported when streaming tokens")


# --- parameter rules, in TGI's order -----------------------------------------------------------

Rule = Callable[[GenerateParameters, str, ServingLimits], str | None]


def _best_of_sampling(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    if best_of(p) > 1 and not is_sampling(p):
        return "you must use sampling when `best_of` is > 1"
    return None


def _temperature(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    if p.temperature is not None and not p.temperature > 0.0:
        return "`temperature` must be strictly positive"
    return None


def _repetition_penalty(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    if p.repetition_penalty is not None and not p.repetition_penalty > 0.0:
        return "`repetition_penalty` must be strictly positive"
    return None


def _frequency_penalty(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    if p.frequency_penalty is not None and not -2.0 <= p.frequency_penalty <= 2.0:
        return "`frequency_penalty` must be >= -2.0 and <= 2.0"
    return None


def _top_p(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    # 1.0 is rejected too: "off" is expressed by leaving top_p unset.
    if p.top_p is not None and not 0.0 < p.top_p < 1.0:
        return "`top_p` must be > 0.0 and < 1.0"
    return None


def _typical_p(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    if p.typical_p is not None and not 0.0 < p.typical_p < 1.0:
        return "`typical_p` must be > 0.0 and < 1.0"
    return None


def _top_k(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    if p.top_k is not None and p.top_k <= 0:
        return "`top_k` must be strictly positive"
    return None


def _max_new_tokens(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    if p.max_new_tokens == 0:
        return "`max_new_tokens` must be strictly positive"
    return None


def _stop_count(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    num_stop = len(p.stop or ())
    if num_stop > limits.max_stop_sequences:
        return f"`stop` supports up to {limits.max_stop_sequences} stop sequences. Given: {num_stop}"
    return None


def _seed_with_best_of(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    if p.seed is not None and best_of(p) > 1:
        return "`seed` must not be set when `best_of` > 1"
    return None


def _top_n_tokens(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    if p.top_n_tokens is not None and p.top_n_tokens > limits.max_top_n_tokens:
        return f"`top_n_tokens` must be >= 0 and <= {limits.max_top_n_tokens}. Given: {p.top_n_tokens}"
    return None


def _empty_inputs(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    return "`inputs` cannot be empty" if not inputs else None


def _truncate(p: GenerateParameters, inputs: str, limits: ServingLimits) -> str | None:
    if p.truncate is not None and not 0 < p.truncate <= limits.max_input_tokens:
        return (
            f"`truncate` must be strictly positive and less than {limits.max_input_tokens}. "
            f"Given: {p.truncate}"
        )
    return None


PARAMETER_RULES: tuple[Rule, ...] = (
    _best_of_sampling,
    _temperature,
    _repetition_penalty,
    _frequency_penalty,
    _top_p,
    _typical_p,
    _top_k,
    _max_new_tokens,
    _stop_count,
    _seed_with_best_of,
    _top_n_tokens,
    _empty_inputs,
    _truncate,
)


def validate_generate(
    wire: GenerateRequest, limits: ServingLimits, *, default_return_full_text: bool = False
) -> ValidatedGenerate:
    """Apply TGI's default quirk and rules; raise `ValidationError` with the first failure."""
    params = wire.effective_parameters
    for rule in PARAMETER_RULES:
        message = rule(params, wire.inputs, limits)
        if message is not None:
            raise ValidationError(message)
    # Grammar checks come last in TGI too.
    grammar = None
    if params.grammar is not None:
        grammar = grammar_spec(params.grammar, enabled=not limits.disable_grammar_support)
    request = GenerationRequest(
        request_id=new_request_id(),
        prompt=wire.inputs,
        sampling=sampling_params(params),
        stopping=StoppingParams(
            max_new_tokens=params.max_new_tokens,
            stop=tuple(params.stop or ()),
            ignore_eos=bool(params.ignore_eos),
        ),
        truncate=params.truncate,
        add_special_tokens=True,
        decoder_input_details=bool(params.decoder_input_details),
        grammar=grammar,
    )
    return_full_text = params.return_full_text
    return ValidatedGenerate(
        request=request,
        inputs=wire.inputs,
        details=bool(params.details),
        return_full_text=default_return_full_text if return_full_text is None else return_full_text,
        best_of=best_of(params),
    )


def sampling_params(params: GenerateParameters) -> SamplingParams:
    """Unset options take TGI's neutral values (which mean "off")."""
    return SamplingParams(
        do_sample=bool(params.do_sample),
        temperature=1.0 if params.temperature is None else params.temperature,
        top_k=0 if params.top_k is None else params.top_k,
        top_p=1.0 if params.top_p is None else params.top_p,
        typical_p=1.0 if params.typical_p is None else params.typical_p,
        repetition_penalty=1.0 if params.repetition_penalty is None else params.repetition_penalty,
        frequency_penalty=0.0 if params.frequency_penalty is None else params.frequency_penalty,
        seed=params.seed,
        top_n_tokens=0 if params.top_n_tokens is None else params.top_n_tokens,
        watermark=bool(params.watermark),
    )


# --- grammar ----------------------------------------------------------------------------------


def grammar_spec(grammar: GrammarType, enabled: bool) -> GrammarSpec:
    """Wire `{"type", "value"}` -> the spec the engine compiles, with TGI's checks
    and messages, in its order. Shared by `/generate`'s `grammar` and chat's
    `response_format` and tools. `enabled` False is `--disable-grammar-support`."""
    if not enabled:
        raise ValidationError("grammar is not supported")
    if grammar.type == "regex":
        if not isinstance(grammar.value, str):
            raise ValidationError("grammar is not valid: a regex grammar's value must be a string")
        return GrammarSpec(kind="regex", value=grammar.value)
    if grammar.type == "json_schema":
        value = grammar.value
        if not isinstance(value, dict) or "schema" not in value:
            raise ValidationError("grammar is not valid: missing field `schema`")
        schema = value["schema"]
    else:  # "json" and its alias "json_object": the schema itself, or a string holding it
        schema = _parse_schema(grammar.value)
    _check_schema(schema)
    return GrammarSpec(kind="json", value=json.dumps(schema, ensure_ascii=False))


def _parse_schema(value: Any) -> Any:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise ValidationError("grammar is not supported")  # TGI's message for other JSON types
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ValidationError(f"grammar is not valid: {error}") from None


def _check_schema(schema: Any) -> None:
    """TGI validates against the draft 2020-12 meta-schema, then insists on a
    top-level `properties` (its regex compiler needs one)."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise ValidationError(f"grammar is not valid: {error.message}") from None
    if not isinstance(schema, dict) or "properties" not in schema:
        raise ValidationError("grammar is not valid: Grammar must have a 'properties' field")
