"""OpenAI-style requests -> TGI's `GenerateParameters`, with TGI's mappings.

A chat or completion request becomes a native generate request and then goes
through the same validation as `/generate` (same rules, same messages). The
mappings are TGI's: `temperature: 0` means greedy, absent means sampling at
1.0; `presence_penalty` p becomes `repetition_penalty` p + 2; `top_logprobs`
becomes `top_n_tokens`. One leniency: `top_p: 1.0` (which OpenAI clients send)
means no nucleus filter instead of a 422. OpenAI options pytgi does not
implement are refused with a clear 422, never dropped silently.
"""

from __future__ import annotations

import json
from typing import Any

from pytgi.errors import ToolError, ValidationError
from pytgi.server.chat_prompt import ToolSelection
from pytgi.server.openai_schemas import ChatRequest, CompletionRequest, ResponseFormat
from pytgi.server.tgi_schemas import GenerateParameters, GrammarType

# OpenAI's `json_object`: any JSON object (a `properties` key satisfies TGI's schema rule).
ANY_JSON_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


def stop_list(stop: str | list[str] | None) -> list[str] | None:
    return [stop] if isinstance(stop, str) else stop


def sampling_fields(temperature: float | None, top_p: float | None) -> dict[str, Any]:
    """TGI: exactly 0 is greedy; any other value (or none) samples with it."""
    fields: dict[str, Any] = {"top_p": None if top_p == 1.0 else top_p}
    if temperature == 0.0:
        fields.update(do_sample=False, temperature=None)
    else:
        fields.update(do_sample=True, temperature=temperature)
    return fields


def repetition_from_presence(presence_penalty: float | None, repetition_penalty: float | None = None) -> float | None:
    if presence_penalty is None:
        return repetition_penalty
    return presence_penalty + 2.0


def refuse_unsupported_chat_options(request: ChatRequest) -> None:
    if request.n is not None and request.n > 1:
        raise ValidationError(f"`n` > 1 is not supported: one choice per request. Given: {request.n}")
    if request.logit_bias:
        raise ValidationError("`logit_bias` is not supported")
    if request.tools is not None and request.response_format is not None:
        raise ToolError("Grammar and tools are mutually exclusive")


def response_format_grammar(response_format: ResponseFormat | None) -> GrammarType | None:
    """TGI's `{"type", "value"}` forms pass through; OpenAI's are translated."""
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_schema" and response_format.json_schema is not None:
        config = response_format.json_schema
        return GrammarType(type="json_schema", value={"name": config.name, "schema": config.json_schema})
    if response_format.type == "json_object" and response_format.value is None:
        return GrammarType(type="json", value=ANY_JSON_OBJECT)
    if response_format.value is None:
        raise ValidationError(f"`response_format` of type {response_format.type} needs a `value`")
    return GrammarType(type=response_format.type, value=response_format.value)


def chat_parameters(request: ChatRequest, tools: ToolSelection | None) -> GenerateParameters:
    """The generate parameters of a chat request (its grammar from tools or response_format)."""
    refuse_unsupported_chat_options(request)
    if tools is not None:
        grammar: GrammarType | None = GrammarType(type="json", value=json.dumps(tools.schema))
    else:
        grammar = response_format_grammar(request.response_format)
    return GenerateParameters(
        **sampling_fields(request.temperature, request.top_p),
        frequency_penalty=request.frequency_penalty,
        repetition_penalty=repetition_from_presence(request.presence_penalty),
        max_new_tokens=request.max_tokens,
        stop=stop_list(request.stop),
        seed=request.seed,
        top_n_tokens=request.top_logprobs if request.logprobs else None,
        details=True,
        decoder_input_details=False,
        return_full_text=False,
        grammar=grammar,
        ignore_eos=request.ignore_eos,
    )


def refuse_unsupported_completion_options(request: CompletionRequest, max_client_batch_size: int) -> list[str]:
    """Checks in TGI's order; returns the prompts."""
    if request.suffix is not None:
        raise CompletionError("Suffix is not supported and can be achieved by preprocessing the prompt.",
                              "suffix not supported")
    prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
    if not prompts:
        raise ValidationError("Empty array detected. Do not use an empty array for the prompt.")
    if len(prompts) > max_client_batch_size:
        raise CompletionError(
            f"Number of prompts exceeds the maximum allowed batch size of {max_client_batch_size}",
            "batch size exceeded",
        )
    unsupported = {
        "n": request.n is not None and request.n > 1,
        "best_of": request.best_of is not None and request.best_of > 1,
        "echo": bool(request.echo),
        "logprobs": request.logprobs is not None,
        "logit_bias": bool(request.logit_bias),
    }
    for name, is_set in unsupported.items():
        if is_set:
            raise ValidationError(f"`{name}` is not supported on /v1/completions")
    return prompts


def completion_parameters(request: CompletionRequest) -> GenerateParameters:
    return GenerateParameters(
        **sampling_fields(request.temperature, request.top_p),
        frequency_penalty=request.frequency_penalty,
        repetition_penalty=repetition_from_presence(request.presence_penalty, request.repetition_penalty),
        max_new_tokens=request.max_tokens,
        stop=stop_list(request.stop),
        seed=request.seed,
        details=True,
        decoder_input_details=False,
        return_full_text=False,
        ignore_eos=request.ignore_eos,
    )


class CompletionError(ValidationError):
    """A /v1/completions refusal with TGI's own error_type (not `validation`)."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type
