"""Chat templates: source precedence, parity with transformers' apply_chat_template, the sandbox
budget, TGI's continue-final-message cut, and typed errors."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pytgi.demo import DEMO_MODEL_DIR
from pytgi.errors import ChatTemplateError, ConfigError
from pytgi.tokenizer.chat_template import ChatTemplate, find_template_source
from pytgi.tokenizer.tokenizer import Tokenizer

BOS = "<|im_start|>"
EOS = "<|endoftext|>"

CHATML_WITH_TOOLS = """\
{%- if tools %}
<|im_start|>system
{%- if messages[0].role == 'system' %}
{{ messages[0].content }}
{%- endif %}
You may call these functions:
{% for tool in tools %}
{{ tool | tojson }}
{% endfor %}
<|im_end|>
{% elif messages[0].role == 'system' %}
<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
  {%- if message.role == 'system' %}{% continue %}{% endif %}
  {%- if message.tool_calls %}
<|im_start|>assistant
{% for call in message.tool_calls %}<tool_call>{{ call.function | tojson(indent=2) }}</tool_call>{% endfor %}<|im_end|>
  {% else %}
<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
  {% endif %}
{%- endfor %}
{%- if add_generation_prompt %}
<|im_start|>assistant
{% endif %}"""

LLAMA3_STYLE = """\
{{- bos_token }}
{%- set ns = namespace(system='') %}
{%- if messages[0]['role'] == 'system' %}
  {%- set ns.system = messages[0]['content'] | trim %}
  {%- set messages = messages[1:] %}
{%- endif %}
{{- '<|start_header_id|>system<|end_header_id|>\\n\\nToday: ' + strftime_now('%d %b %Y') + '\\n' + ns.system + '<|eot_id|>' }}
{%- for message in messages %}
  {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
    {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
  {%- endif %}
  {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"""

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": 'Weather in a city <today> & "tomorrow"',
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]

CONVERSATION = [
    {"role": "system", "content": "You are terse. Café ☕."},
    {"role": "user", "content": "  Hello there  "},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "Weather in Paris?"},
]

TOOL_CALL_CONVERSATION = [
    *CONVERSATION,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ],
    },
    {"role": "user", "content": "Thanks"},
]

USER = [{"role": "user", "content": "hi"}]


def model_folder(folder: Path, chat_template: str | None = None, **config: Any) -> Path:
    """The demo model's tokenizer files, with the tokenizer config's template replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_MODEL_DIR / "tokenizer.json", folder / "tokenizer.json")
    tokenizer_config = json.loads((DEMO_MODEL_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    if chat_template is not None:
        tokenizer_config["chat_template"] = chat_template
    tokenizer_config.update(config)
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return folder


def transformers_render(folder: Path, messages: list[dict[str, Any]], **kwargs: Any) -> str:
    transformers = pytest.importorskip("transformers")
    hf_tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(str(folder))
    rendered = hf_tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    assert isinstance(rendered, str)
    return rendered


def pytgi_template(folder: Path) -> ChatTemplate:
    template = Tokenizer(folder).chat_template
    assert template is not None
    return template


# --- where the template comes from ---------------------------------------------------------


def test_source_precedence(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    }
    assert find_template_source(tmp_path, config) == "D"
    config["chat_template"] = "S"
    assert find_template_source(tmp_path, config) == "S"
    (tmp_path / "chat_template.jinja").write_text("J", encoding="utf-8")
    assert find_template_source(tmp_path, config) == "J"
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": "P"}), encoding="utf-8")
    assert find_template_source(tmp_path, config) == "P"


def test_source_absent_or_invalid(tmp_path: Path) -> None:
    assert find_template_source(tmp_path, {}) is None
    assert ChatTemplate.from_model(tmp_path, {}) is None
    assert find_template_source(tmp_path, {"chat_template": [{"name": "tool_use", "template": "T"}]}) is None
    with pytest.raises(ConfigError, match="chat_template"):
        find_template_source(tmp_path, {"chat_template": 3})


def test_tokenizer_exposes_template(tmp_path: Path) -> None:
    template = Tokenizer(DEMO_MODEL_DIR).chat_template
    assert template is not None and template.eos_token == EOS and template.bos_token is None
    no_template = model_folder(tmp_path / "none")
    config = json.loads((no_template / "tokenizer_config.json").read_text(encoding="utf-8"))
    del config["chat_template"]
    (no_template / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert Tokenizer(no_template).chat_template is None


def test_transformers_saved_jinja_file_is_found(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    hf_tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(str(model_folder(tmp_path / "in")))
    hf_tokenizer.chat_template = "saved {{ messages | length }}"
    hf_tokenizer.save_pretrained(str(tmp_path / "out"))
    config = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text(encoding="utf-8"))
    # Old transformers keep it in tokenizer_config.json, newer write chat_template.jinja.
    assert find_template_source(tmp_path / "out", config) == "saved {{ messages | length }}"


# --- parity with transformers ----------------------------------------------------------------


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_demo_template_matches_transformers(tmp_path: Path, add_generation_prompt: bool) -> None:
    folder = model_folder(tmp_path)
    expected = transformers_render(folder, CONVERSATION, add_generation_prompt=add_generation_prompt)
    rendered = pytgi_template(folder).render(CONVERSATION, add_generation_prompt=add_generation_prompt)
    assert rendered == expected
    assert rendered.startswith("<|im_start|>system\nYou are terse. Café ☕.<|im_end|>\n")


@pytest.mark.parametrize("with_tools", [True, False])
@pytest.mark.parametrize("messages", [CONVERSATION, TOOL_CALL_CONVERSATION], ids=["plain", "tool_calls"])
def test_chatml_tools_template_matches_transformers(
    tmp_path: Path, with_tools: bool, messages: list[dict[str, Any]]
) -> None:
    folder = model_folder(tmp_path, CHATML_WITH_TOOLS)
    tools = TOOLS if with_tools else None
    expected = transformers_render(folder, messages, add_generation_prompt=True, tools=tools)
    template = pytgi_template(folder)
    assert template.render(messages, tools=tools) == expected
    assert template.uses_tools
    if with_tools:
        # tojson does not HTML-escape and keeps non-ASCII text as is.
        assert '"Weather in a city <today> & \\"tomorrow\\""' in expected


def test_llama3_style_template_matches_transformers(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, LLAMA3_STYLE, bos_token="<|im_start|>")
    expected = transformers_render(folder, CONVERSATION, add_generation_prompt=True)
    rendered = pytgi_template(folder).render(CONVERSATION)
    assert rendered == expected
    assert rendered.startswith(BOS + "<|start_header_id|>system")
    assert datetime.now().strftime("%Y") in rendered


LOOP_FEATURES = """\
{%- for m in messages if m.role != 'system' -%}
{{ loop.index }}/{{ loop.length }} {{ loop.cycle('odd', 'even') }} {{ loop.revindex0 }}{{ ' last' if loop.last }}
{%- for key, value in m | dictsort %} {{ key }}={{ value }}{% else %} empty{% endfor %}
{% if loop.index >= 2 %}{% break %}{% endif %}
{%- endfor %}
{%- for x in [] %}never{% else %}none{% endfor %}"""


def test_loop_features_match_transformers(tmp_path: Path) -> None:
    # Every `for` iterable is wrapped in a guard generator: loop.length/last/revindex must still work.
    folder = model_folder(tmp_path, LOOP_FEATURES)
    rendered = pytgi_template(folder).render(CONVERSATION)
    assert rendered == transformers_render(folder, CONVERSATION)
    assert rendered == "1/3 odd 2 content=  Hello there   role=user2/3 even 1 content=Hi. role=assistantnone"


def test_raise_exception_carries_the_message(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, LLAMA3_STYLE, bos_token="<|im_start|>")
    broken = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    jinja2 = pytest.importorskip("jinja2")
    with pytest.raises(jinja2.TemplateError) as expected:
        transformers_render(folder, broken)
    with pytest.raises(ChatTemplateError) as raised:
        pytgi_template(folder).render(broken)
    assert str(raised.value) == str(expected.value)
    assert str(raised.value) == "Conversation roles must alternate user/assistant/user/assistant/..."


@pytest.mark.parametrize(
    "tags", ["{% generation %}BODY{% endgeneration %}", "{%- generation -%}\nBODY\n{%- endgeneration -%}"]
)
def test_generation_tags_are_dropped(tmp_path: Path, tags: str) -> None:
    source = (
        "{% for m in messages %}<{{ m.role }}>"
        "{% if m.role == 'assistant' %}"
        + tags.replace("BODY", "{{ m.content }}")
        + "{% else %}{{ m.content }}{% endif %}"
        "</{{ m.role }}>\n{% endfor %}"
    )
    folder = model_folder(tmp_path, source)
    rendered = pytgi_template(folder).render(CONVERSATION)
    assert "<assistant>Hi.</assistant>\n" in rendered
    assert rendered == transformers_render(folder, CONVERSATION)


@pytest.mark.parametrize("source", [None, CHATML_WITH_TOOLS], ids=["demo", "chatml"])
def test_continue_final_message_matches_transformers(tmp_path: Path, source: str | None) -> None:
    folder = model_folder(tmp_path, source)
    messages = [*CONVERSATION, {"role": "assistant", "content": "It is"}]
    rendered = pytgi_template(folder).render(messages)
    assert rendered.endswith("<|im_start|>assistant\nIt is")
    assert rendered == transformers_render(folder, messages, continue_final_message=True)


def test_continue_final_message_cuts_at_last_occurrence_and_trims() -> None:
    template = ChatTemplate("{% for m in messages %}[{{ m.content }}]  \n{% endfor %}")
    messages = [{"role": "user", "content": "Yes "}, {"role": "assistant", "content": "Yes "}]
    assert template.render(messages) == "[Yes ]  \n[Yes"


# --- budget, sandbox, errors -----------------------------------------------------------------


def test_hostile_loop_ends_within_budget() -> None:
    hostile = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    template = ChatTemplate(hostile, timeout_s=0.2)
    start = time.monotonic()
    with pytest.raises(ChatTemplateError, match="longer than 0.2 s"):
        template.render(USER)
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 100000000 }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
        "{{ 'a'.center(messages | length * 10000000) }}",
        "{{ 7 ** 1000000 }}",
    ],
)
def test_output_and_values_are_bounded(source: str) -> None:
    template = ChatTemplate(source, max_output_chars=1_000_000)
    with pytest.raises(ChatTemplateError):
        template.render(USER)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{{ raise_exception('Only user and assistant roles are supported!') }}",
            "^Only user and assistant roles",
        ),
        ("{{ messages[0].missing.deeper }}", "has no attribute 'missing'"),
        ("{{ messages.append(1) }}", "unsafe"),
        ("{{ messages[0].content + 1 }}", "str"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
    ],
)
def test_render_errors_are_typed(source: str, message: str) -> None:
    with pytest.raises(ChatTemplateError, match=message):
        ChatTemplate(source).render(USER)


@pytest.mark.parametrize("source", ["{% for m in messages %}", "{{ messages | no_such_filter }}", "{% if %}"])
def test_broken_template_fails_at_construction(source: str) -> None:
    with pytest.raises(ConfigError, match="chat template does not compile: line 1"):
        ChatTemplate(source)


def test_uses_tools_reads_the_ast() -> None:
    assert ChatTemplate("{% if tools is not none %}{{ tools | length }}{% endif %}").uses_tools
    assert not ChatTemplate("{{ 'tools' }} {# tools #}").uses_tools
    assert not ChatTemplate("{% set tools = [] %}{{ tools }}").uses_tools


def test_tools_is_none_when_not_given() -> None:
    template = ChatTemplate("{{ tools is none }} {{ tools | length if tools else 0 }}")
    assert template.render(USER) == "True 0"
    assert template.render(USER, tools=TOOLS) == "False 1"


def test_renders_concurrently_with_one_budget_per_thread() -> None:
    template = ChatTemplate(CHATML_WITH_TOOLS, timeout_s=5.0)
    expected = template.render(CONVERSATION, tools=TOOLS)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: template.render(CONVERSATION, tools=TOOLS), range(32)))
    assert results == [expected] * 32
