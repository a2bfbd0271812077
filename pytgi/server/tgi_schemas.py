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


def doc(description: str, **bounds: Any) -> Any:
    """An optional field documented with TGI's bounds. The bounds are for the OpenAPI
    document only: `validation.py` enforces them, with TGI's messages and order."""
    return Field(default=None, description=description, json_schema_extra=bounds or None)


class GenerateParameters(WireModel):
    best_of: U64 | None = doc("Generate best_of sequences and return the one with the best mean logprob.",
                              exclusiveMinimum=0)
    temperature: float | None = doc("The value used to modulate the logits distribution.", exclusiveMinimum=0)
    repetition_penalty: float | None = doc("Repetition penalty; 1.0 means none.", exclusiveMinimum=0)
    frequency_penalty: float | None = doc("Frequency penalty; 0.0 means none.", minimum=-2, maximum=2)
    top_k: I32 | None = doc("Keep the k most likely tokens.", exclusiveMinimum=0)
    top_p: float | None = doc("Nucleus sampling: keep the smallest set of tokens with this probability mass.",
                              exclusiveMinimum=0, exclusiveMaximum=1)
    typical_p: float | None = doc("Typical decoding mass.", exclusiveMinimum=0, exclusiveMaximum=1)
    do_sample: bool | None = doc("Sample instead of taking the most likely token.")
    max_new_tokens: U32 | None = doc("Most tokens to generate.", exclusiveMinimum=0)
    return_full_text: bool | None = doc("Prepend the prompt to the generated text.")
    stop: list[str] | None = doc("Stop when one of these strings is generated.")
    truncate: U64 | None = doc("Keep only the last `truncate` prompt tokens.", exclusiveMinimum=0)
    watermark: bool | None = doc("Watermark the output (Kirchenbauer et al. 2023).")
    details: bool | None = doc("Return generation details.")
    decoder_input_details: bool | None = doc("Return the prompt tokens with their logprobs.")
    seed: U64 | None = doc("Random sampling seed.")
    top_n_tokens: U32 | None = doc("Return the n most likely alternatives of each generated token.")
    grammar: GrammarType | None = doc("Constrain the output to a JSON schema or a regex.")
    adapter_id: str | None = doc("LoRA adapter id.")
    # pytgi extension (as in vLLM), off by default: generate past EOS up to
    # max_new_tokens, so that benchmarks get exact lengths. TGI clients never send it.
    ignore_eos: bool | None = doc("pytgi extension: keep generating past EOS up to max_new_tokens.")


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
