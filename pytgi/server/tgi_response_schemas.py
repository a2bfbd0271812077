"""Response shapes of TGI's native routes, as pydantic models named as TGI's
OpenAPI components are (`GenerateResponse`, `Details`, `StreamResponse`, ...).

The bodies themselves are built as plain JSON by `responses.py` (fast, and
exactly TGI's key order); these models describe them for
/api-doc/openapi.json, and the tests validate real answers against them, so
the document cannot drift from what the server sends.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

FinishReason = Literal["length", "eos_token", "stop_sequence"]


class ResponseModel(BaseModel):
    # Answers are checked strictly in tests: an unexpected key is a contract change.
    model_config = ConfigDict(extra="forbid")


class Token(ResponseModel):
    id: int = Field(ge=0)
    text: str
    logprob: float | None = Field(description="null when not finite")
    special: bool


class PrefillToken(ResponseModel):
    id: int = Field(ge=0)
    text: str
    logprob: float | None = Field(description="null for the first prompt token")


class BestOfSequence(ResponseModel):
    generated_text: str
    finish_reason: FinishReason
    generated_tokens: int = Field(ge=0)
    seed: int | None = Field(ge=0, description="set only when the request sampled")
    prefill: list[PrefillToken]
    tokens: list[Token]
    top_tokens: list[list[Token]] | None = None


class Details(ResponseModel):
    finish_reason: FinishReason
    generated_tokens: int = Field(ge=0)
    seed: int | None = Field(ge=0, description="set only when the request sampled")
    prefill: list[PrefillToken]
    tokens: list[Token]
    top_tokens: list[list[Token]] | None = None
    best_of_sequences: list[BestOfSequence] | None = None


class GenerateResponse(ResponseModel):
    generated_text: str
    details: Details | None = None


class CompatGenerateResponse(RootModel[list[GenerateResponse]]):
    """`POST /` without streaming: a one-element list."""


class StreamDetails(ResponseModel):
    finish_reason: FinishReason
    generated_tokens: int = Field(ge=0)
    seed: int | None = Field(ge=0)
    input_length: int = Field(ge=0)


class StreamResponse(ResponseModel):
    """One `data:` event of /generate_stream; the last one carries generated_text."""

    index: int = Field(ge=0)
    token: Token
    top_tokens: list[Token] | None = None
    generated_text: str | None
    details: StreamDetails | None


class ErrorResponse(ResponseModel):
    error: str
    error_type: str


class StreamEvent(RootModel[StreamResponse | ErrorResponse]):
    """What a `data:` event of a TGI stream carries: a token, or the error that ends it."""


class SimpleToken(ResponseModel):
    id: int = Field(ge=0)
    text: str
    start: int = Field(ge=0, description="byte offset into `inputs`")
    stop: int = Field(ge=0, description="byte offset into `inputs`")


class TokenizeResponse(RootModel[list[SimpleToken]]):
    pass


class Info(ResponseModel):
    model_id: str
    model_sha: str | None
    model_pipeline_tag: str | None
    max_concurrent_requests: int = Field(ge=0)
    max_best_of: int = Field(ge=0)
    max_stop_sequences: int = Field(ge=0)
    max_input_tokens: int = Field(ge=0)
    max_total_tokens: int = Field(ge=0)
    validation_workers: int = Field(ge=0)
    max_client_batch_size: int = Field(ge=0)
    router: str
    version: str
    sha: str | None
    docker_label: str | None


class VertexResponse(ResponseModel):
    predictions: list[str]
