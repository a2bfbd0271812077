"""What `make demo-model` writes into the model folder (Hugging Face layout)
and the sample outputs of the training report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from transformers import AutoTokenizer, GenerationConfig, GenerationMixin, LlamaForCausalLM

from pytgi.demo.corpus import ENDOFTEXT, IM_END

# ChatML, matching pytgi.demo.corpus.render_chatml. Content may be a string or a list of OpenAI
# content parts (only text parts are rendered); no default system prompt is injected.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- elif message['content'] is not none -%}"
    "{%- for part in message['content'] if part['type'] == 'text' -%}{{- part['text'] -}}{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
MODEL_MAX_LENGTH = 2048
SAMPLE_COMPLETION_PROMPT = "The list type"
SAMPLE_CHAT_QUESTION = "What is a dictionary?"
NUM_SAMPLE_TOKENS = 160  # enough for the sample chat answer to reach <|im_end|>


def special_id(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ValueError(f"special token {token!r} is missing from the trained tokenizer")
    return int(token_id)


def save_artifacts(model: LlamaForCausalLM, tokenizer: Tokenizer, out_dir: Path) -> None:
    """Hugging Face layout; weights in bfloat16 (half the bytes of fp32, no loss in range)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    eos_token_ids = [special_id(tokenizer, ENDOFTEXT), special_id(tokenizer, IM_END)]
    # Plain completions end on <|endoftext|>, chat answers on <|im_end|>: stop on either.
    model.generation_config = GenerationConfig(
        eos_token_id=eos_token_ids, pad_token_id=eos_token_ids[0], do_sample=False
    )
    model.bfloat16().save_pretrained(out_dir, safe_serialization=True)
    # safetensors creates the file owner-only; the folder ships inside the package.
    (out_dir / "model.safetensors").chmod(0o644)
    model.float()
    tokenizer.save(str(out_dir / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        # The document separator; the chat turn end is the second generation EOS id.
        "eos_token": ENDOFTEXT,
        "pad_token": ENDOFTEXT,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MODEL_MAX_LENGTH,
        # Without this, tokenizer(...) also returns token_type_ids, which generate() rejects.
        "model_input_names": ["input_ids", "attention_mask"],
        "chat_template": CHAT_TEMPLATE,
    }
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config, indent=2) + "\n", encoding="utf-8"
    )


def sample_outputs(out_dir: Path, model: GenerationMixin) -> dict[str, Any]:
    """Greedy outputs through the public transformers API, as a user of the folder gets them."""
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    chat_prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": SAMPLE_CHAT_QUESTION}], tokenize=False, add_generation_prompt=True
    )
    assert isinstance(chat_prompt, str)  # tokenize=False: the rendered text
    return {
        "completion": {
            "prompt": SAMPLE_COMPLETION_PROMPT,
            **_greedy(model, tokenizer, SAMPLE_COMPLETION_PROMPT),
        },
        "chat": {"question": SAMPLE_CHAT_QUESTION, **_greedy(model, tokenizer, chat_prompt)},
    }


def _greedy(model: GenerationMixin, tokenizer: Any, prompt: str) -> dict[str, Any]:
    encoded = tokenizer(prompt, return_tensors="pt")
    input_ids = encoded.input_ids  # [1, num_prompt_tokens]
    output_ids = model.generate(
        input_ids, attention_mask=encoded.attention_mask, max_new_tokens=NUM_SAMPLE_TOKENS, do_sample=False
    )
    new_ids = output_ids[0, input_ids.shape[1] :].tolist()
    eos_token_ids = tokenizer.convert_tokens_to_ids([ENDOFTEXT, IM_END])
    stopped_on = tokenizer.convert_ids_to_tokens(new_ids[-1]) if new_ids[-1] in eos_token_ids else None
    return {
        "output": tokenizer.decode(new_ids, skip_special_tokens=True),
        "num_tokens": len(new_ids),
        "stopped_on": stopped_on,
    }
