"""From a chat request to what the template and the grammar need, TGI's way.

- Messages become template-ready dicts: text parts joined, images as markdown,
  an assistant's `tool_calls` as a JSON string in `content`; `name` and
  `tool_call_id` are not passed (TGI drops them).
- Tools: `tool_choice` picks the offered tools (`auto` adds a `no_tool` escape),
  the tool prompt is appended to the last message, and a JSON schema forces the
  model to answer `{"function": {"_name": <tool>, <arguments>...}}`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytgi.errors import ToolError
from pytgi.server.openai_schemas import ChatRequest, ImagePart, Message, NamedToolChoice, TextPart, Tool

# TGI's default tool prompt (the example of `tool_prompt` in its OpenAPI document).
DEFAULT_TOOL_PROMPT = (
    "\nGiven the functions available, please respond with a JSON for a function call with its proper "
    "arguments that best answers the given prompt. Respond in the format {name: function name, "
    "parameters: dictionary of argument name and its value}.Do not use variables.\n"
)
NO_TOOL = "no_tool"
TOOL_NAME_KEY = "_name"

TemplateMessage = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolSelection:
    """The tools a request offers the model, and the schema its answer must follow."""

    tools: tuple[Tool, ...]
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatPrompt:
    messages: tuple[TemplateMessage, ...]
    template_tools: tuple[dict[str, Any], ...] | None  # passed to a template that reads `tools`
    tool_selection: ToolSelection | None


def content_text(content: str | Sequence[TextPart | ImagePart] | None) -> str | None:
    if content is None or isinstance(content, str):
        return content
    # Not a vision model: an image stays in the text as markdown, as TGI does.
    return "".join(part.text if isinstance(part, TextPart) else f"![]({part.image_url.url})" for part in content)


def template_message(message: Message) -> TemplateMessage:
    if message.tool_calls:
        calls = [
            {"id": call.id, "type": call.type, "function": call.function.model_dump(exclude_none=True)}
            for call in message.tool_calls
        ]
        return {"role": message.role, "content": json.dumps(calls, ensure_ascii=False)}
    return {"role": message.role, "content": content_text(message.content)}


def tool_json(tool: Tool) -> dict[str, Any]:
    """A tool in OpenAI's shape, as templates and the tool prompt show it."""
    function: dict[str, Any] = {"name": tool.function.name}
    if tool.function.description is not None:
        function["description"] = tool.function.description
    function["parameters"] = tool.function.parameters
    return {"type": tool.type, "function": function}


def select_tools(request: ChatRequest) -> tuple[Tool, ...] | None:
    """The tools offered under `tool_choice`, or None for a plain chat."""
    choice = request.tool_choice
    if not request.tools or choice == "none":
        return None
    if choice is None or choice == "auto" or choice == "required":
        return tuple(request.tools)
    name = choice.function.name if isinstance(choice, NamedToolChoice) else choice
    chosen = tuple(tool for tool in request.tools if tool.function.name == name)
    if not chosen:
        raise ToolError(f"Tool with name {name} not found")
    return chosen[:1]


def function_schema(name: str, description: str | None, parameters: Any) -> dict[str, Any]:
    """One alternative of the answer: `_name` fixed to the tool, then its arguments."""
    params = parameters if isinstance(parameters, dict) else {}
    properties = params.get("properties")
    required = params.get("required")
    return {
        "type": "object",
        "description": description or "",
        "properties": {
            TOOL_NAME_KEY: {"type": "string", "const": name},
            **(properties if isinstance(properties, dict) else {}),
        },
        "required": [TOOL_NAME_KEY, *(required if isinstance(required, list) else [])],
        # TGI's quirk: only the string "true" opens the object.
        "additionalProperties": params.get("additionalProperties") == "true",
    }


def tool_schema(tools: Sequence[Tool], allow_no_tool: bool) -> dict[str, Any]:
    definitions = {
        tool.function.name: function_schema(tool.function.name, tool.function.description, tool.function.parameters)
        for tool in tools
    }
    if allow_no_tool:
        definitions[NO_TOOL] = function_schema(NO_TOOL, "Open ended response with no specific tool selected", None)
    return {
        "type": "object",
        "$defs": definitions,
        "properties": {"function": {"anyOf": [{"$ref": f"#/$defs/{name}"} for name in definitions]}},
        "required": ["function"],
        "additionalProperties": False,
    }


def build_chat_prompt(request: ChatRequest, template_uses_tools: bool) -> ChatPrompt:
    """Raises ToolError for a tool_choice naming no offered tool."""
    messages = [template_message(m) for m in request.messages]
    tools = select_tools(request)
    if tools is None:
        return ChatPrompt(tuple(messages), None, None)
    allow_no_tool = request.tool_choice is None or request.tool_choice == "auto"
    selection = ToolSelection(tools, tool_schema(tools, allow_no_tool))
    tool_prompt = request.tool_prompt or DEFAULT_TOOL_PROMPT
    offered = tuple(tool_json(tool) for tool in tools)
    if template_uses_tools:
        injected = "\n---\n" + tool_prompt
    else:
        injected = "\n---\n" + json.dumps(list(offered), ensure_ascii=False) + "\n" + tool_prompt
    if messages:
        last = messages[-1]
        messages[-1] = {**last, "content": (last.get("content") or "") + injected}
    return ChatPrompt(tuple(messages), offered if template_uses_tools else None, selection)


def next_tool_call_id(messages: Sequence[Message]) -> str | None:
    """TGI's streamed tool-call id: one past the largest numeric id among earlier calls
    ("0" if none); None (the caller picks a random id) when an earlier id is not numeric."""
    ids = [call.id for m in messages for call in (m.tool_calls or ()) if call.id is not None]
    if any(not i.isdigit() for i in ids):
        return None
    return str(max((int(i) for i in ids), default=-1) + 1)
