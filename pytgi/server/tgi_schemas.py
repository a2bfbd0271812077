"""Wire schemas of TGI's native routes (`/generate`, `/generate_stream`, `/`, `/tokenize`).

Types follow TGI's serde structs: strict JSON types (no "5" for 5, no 5.0 for an
integer), unsigned integers reject negatives, unknown keys are ignored. One
deliberate leniency: an explicit `null` means "absent" for every parameter,
including the booleans and `stop` (old clients send nulls; TGI would 422).
Semantic checks (ranges, counts) live in `validation.py`, with TGI's messages.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
I32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


class WireModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class GrammarType(WireModel):
    """`{"type": T, "value": V}`; `json_object` is TGI's alias of `json`."""

    type: Literal["json", "json_object", "regex", "json_schema"]
    value: Any


class GenerateParameters(WireModel):
    best_of: U64 | None = None
    temperature: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    top_k: I32 | None = None
    top_p: float | None = None
    typical_p: float | None = None
    do_sample: bool | None = None
    max_new_tokens: U32 | None = None
    return_full_text: bool | None = None
    stop: list[str] | None = None
    truncate: U64 | None = None
    watermark: bool | None = None
    details: bool | None = None
    decoder_input_details: bool | None = None
    seed: U64 | None = None
    top_n_tokens: U32 | None = None
    grammar: GrammarType | None = None
    adapter_id: str | None = None
    # pytgi extension (as in vLLM), off by default: generate past EOS up to
    # max_new_tokens, so that benchmarks get exact lengths. TGI clients never send it.
    ignore_eos: bool | None = None


# TGI's preset when `parameters` is absent: sampling on, everything else at its type default.
ABSENT_PARAMETERS = GenerateParameters(do_sample=True)


class GenerateRequest(WireModel):
    inputs: str
    parameters: GenerateParameters | None = None

    @property
    def effective_parameters(self) -> GenerateParameters:
        """TGI's default quirk: absent parameters sample; present ones default to greedy."""
        return self.parameters if self.parameters is not None else ABSENT_PARAMETERS


class CompatGenerateRequest(GenerateRequest):
    """Body of `POST /`: a GenerateRequest that may ask for the SSE stream."""

    stream: bool | None = None
