"""Wire schemas of the OpenAI-compatible routes (`/v1/chat/completions`,
`/v1/completions`, `/v1/models`, `/chat_tokenize`), named as TGI names them.

Requests follow TGI's serde structs, with the leniencies OpenAI clients need:
`stop` may be one string, `top_p` may be 1.0 (means "off"), `response_format`
also takes OpenAI's own forms. Unknown keys are ignored, as in TGI; the
OpenAI options TGI silently drops (`n` > 1, `logit_bias`, ...) are refused by
`openai_validation.py` instead. Response models describe the answers for the
OpenAPI document and the tests; `openai_responses.py` builds the JSON.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, RootModel, model_validator

from pytgi.server.tgi_response_schemas import FinishReason, ResponseModel, SimpleToken
from pytgi.server.tgi_schemas import U32, U64, WireModel

# --- requests ----------------------------------------------------------------------------------


class TextPart(WireModel):
    type: Literal["text"]
    text: str


class ImageUrl(WireModel):
    url: str


class ImagePart(WireModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class FunctionCall(WireModel):
    name: str
    # OpenAI sends the arguments as a JSON string; TGI also takes an object.
    arguments: str | dict[str, Any] = Field(default="{}")
    description: str | None = None


class ToolCall(WireModel):
    id: str | None = None
    type: str = "function"
    function: FunctionCall


class Message(WireModel):
    role: str
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _has_body(self) -> Message:
        # TGI's message body is `content` or `tool_calls`: one of them must be there.
        if self.content is None and self.tool_calls is None:
            raise ValueError("missing field `content`")
        return self


class FunctionDefinition(WireModel):
    name: str
    description: str | None = None
    # TGI's field is `arguments`; OpenAI's is `parameters`.
    parameters: Any = Field(default=None, validation_alias=AliasChoices("parameters", "arguments"))


class Tool(WireModel):
    type: str = "function"
    function: FunctionDefinition


class FunctionName(WireModel):
    name: str


class NamedToolChoice(WireModel):
    type: str | None = "function"
    function: FunctionName


class StreamOptions(WireModel):
    include_usage: bool | None = None


class JsonSchemaConfig(WireModel):
    name: str | None = None
    # `schema` shadows a BaseModel attribute, hence the alias.
    json_schema: Any = Field(alias="schema")


class ResponseFormat(WireModel):
    """TGI's `{"type", "value"}` grammar, or OpenAI's `{"type": "json_schema", "json_schema": {...}}`,
    `{"type": "json_object"}` and `{"type": "text"}`."""

    type: Literal["json", "json_object", "regex", "json_schema", "text"]
    value: Any = None
    json_schema: JsonSchemaConfig | None = None


class ChatRequest(WireModel):
    model: str | None = None
    messages: list[Message] = Field(min_length=1)  # OpenAI refuses an empty conversation too
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | list[float] | None = None
    logprobs: bool | None = None
    top_logprobs: U32 | None = None
    max_tokens: U32 | None = Field(default=None, validation_alias=AliasChoices("max_tokens",
                                                                              "max_completion_tokens"))
    n: U32 | None = None
    seed: U64 | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[Tool] | None = None
    tool_prompt: str | None = None
    tool_choice: str | NamedToolChoice | None = None
    response_format: ResponseFormat | None = None
    # pytgi extension (as in vLLM), off by default: generate past EOS up to max_tokens.
    ignore_eos: bool | None = None


class CompletionRequest(WireModel):
    model: str | None = None
    prompt: str | list[str]
    max_tokens: U32 | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    seed: U64 | None = None
    suffix: str | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: str | list[str] | None = None
    ignore_eos: bool | None = None  # pytgi extension (as in vLLM)
    # OpenAI options pytgi does not implement; refused when set to anything but their neutral value.
    n: U32 | None = None
    best_of: U32 | None = None
    echo: bool | None = None
    logprobs: int | None = None
    logit_bias: dict[str, float] | list[float] | None = None


# --- responses ---------------------------------------------------------------------------------


class Usage(ResponseModel):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class TopLogprob(ResponseModel):
    token: str
    logprob: float | None


class TokenLogprob(ResponseModel):
    token: str
    logprob: float | None
    top_logprobs: list[TopLogprob]


class Logprobs(ResponseModel):
    content: list[TokenLogprob]


class OutputFunction(ResponseModel):
    name: str
    arguments: str
    description: str | None = None


class OutputToolCall(ResponseModel):
    id: str
    type: Literal["function"]
    function: OutputFunction


class TextMessage(ResponseModel):
    role: Literal["assistant"]
    content: str


class ToolCallMessage(ResponseModel):
    role: Literal["assistant"]
    tool_calls: list[OutputToolCall]


ChatFinishReason = Literal["stop", "length", "stop_sequence"]


class ChatCompletionComplete(ResponseModel):
    index: int = Field(ge=0)
    message: TextMessage | ToolCallMessage
    logprobs: Logprobs | None
    finish_reason: ChatFinishReason


class ChatCompletion(ResponseModel):
    object: Literal["chat.completion"]
    id: str
    created: int = Field(ge=0)
    model: str
    system_fingerprint: str
    choices: list[ChatCompletionComplete]
    usage: Usage


class DeltaFunction(ResponseModel):
    name: str | None
    arguments: str


class DeltaToolCall(ResponseModel):
    index: int = Field(ge=0)
    id: str
    type: Literal["function"]
    function: DeltaFunction


class TextDelta(ResponseModel):
    role: Literal["assistant"]
    content: str


class ToolCallDelta(ResponseModel):
    role: Literal["assistant"]
    tool_calls: list[DeltaToolCall]


class ChatCompletionChoice(ResponseModel):
    index: int = Field(ge=0)
    delta: TextDelta | ToolCallDelta
    logprobs: Logprobs | None
    finish_reason: ChatFinishReason | None


class ChatCompletionChunk(ResponseModel):
    object: Literal["chat.completion.chunk"]
    id: str
    created: int = Field(ge=0)
    model: str
    system_fingerprint: str
    choices: list[ChatCompletionChoice]
    usage: Usage | None


class CompletionComplete(ResponseModel):
    index: int = Field(ge=0)
    text: str
    logprobs: None = None
    # "" on intermediate stream chunks, TGI's finish reason on the last one of a prompt.
    finish_reason: ChatFinishReason | FinishReason | Literal[""]


class CompletionFinal(ResponseModel):
    object: Literal["text_completion"]
    id: str
    created: int = Field(ge=0)
    model: str
    system_fingerprint: str
    choices: list[CompletionComplete]
    usage: Usage


class CompletionChunk(ResponseModel):
    object: Literal["text_completion"]
    id: str
    created: int = Field(ge=0)
    model: str
    system_fingerprint: str
    choices: list[CompletionComplete]
    usage: Usage | None = None


class OpenAIErrorDetail(ResponseModel):
    message: str
    http_status_code: int


class OpenAIStreamError(ResponseModel):
    """An error inside an OpenAI-style stream (TGI's shape), followed by `[DONE]`."""

    error: OpenAIErrorDetail


class ChatStreamEvent(RootModel[ChatCompletionChunk | OpenAIStreamError]):
    """A `data:` event of a chat stream (the last one is the literal `[DONE]`)."""


class CompletionStreamEvent(RootModel[CompletionChunk | OpenAIStreamError]):
    """A `data:` event of a completions stream (the last one is the literal `[DONE]`)."""


class ModelCard(ResponseModel):
    id: str
    object: Literal["model"]
    created: int = Field(ge=0)
    owned_by: str


class ModelList(ResponseModel):
    object: Literal["list"]
    data: list[ModelCard]


class ChatTokenizeResponse(ResponseModel):
    tokenize_response: list[SimpleToken]
    templated_text: str
