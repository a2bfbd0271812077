"""The llama.cpp baseline: GGUF export pieces (always) and, when `make llama-cpp` has
built .venv-llamacpp, llama.cpp's greedy tokens on the demo model against pytgi's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pytgi.bench import gguf_export
from pytgi.bench.endpoints import EndpointSpec, endpoint_specs, make_launcher
from pytgi.bench.llamacpp_server import (
    VENV_DIR,
    LlamaCppNativeServer,
    LlamaCppServer,
    gguf_path,
    parse_target,
    split_parallel,
)
from pytgi.demo import DEMO_MODEL_DIR

LLAMACPP_PYTHON = VENV_DIR / "bin" / "python"
needs_llamacpp = pytest.mark.skipif(not (VENV_DIR / ".built").exists(),
                                    reason=f"{VENV_DIR} not built: run `make llama-cpp`")


def test_tensor_names_follow_llama_cpp() -> None:
    assert gguf_export.gguf_name("model.embed_tokens.weight") == "token_embd.weight"
    assert gguf_export.gguf_name("model.layers.3.self_attn.o_proj.weight") == "blk.3.attn_output.weight"
    assert gguf_export.gguf_name("model.layers.0.post_attention_layernorm.weight") == "blk.0.ffn_norm.weight"
    assert gguf_export.gguf_name("model.layers.0.self_attn.rotary_emb.inv_freq") is None
    with pytest.raises(ValueError):
        gguf_export.gguf_name("model.layers.0.self_attn.q_proj.bias")


def test_rotary_rows_go_from_halves_to_pairs() -> None:
    # 2 heads of dim 4: rows [x0 x1 y0 y1] per head become [x0 y0 x1 y1].
    weight = np.arange(8, dtype=np.float32).reshape(8, 1)
    assert gguf_export.unpermute_rotary(weight, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_safetensors_reader_widens_bf16(tmp_path: Path) -> None:
    values = np.array([1.5, -2.0], dtype=np.float32)
    raw = (values.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    header = json.dumps({"t": {"dtype": "BF16", "shape": [2], "data_offsets": [0, len(raw)]}}).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + raw)
    assert [(name, t.tolist()) for name, t in gguf_export.read_safetensors(path)] == [("t", [1.5, -2.0])]


def test_demo_tokenizer_is_byte_level_bpe() -> None:
    fields = gguf_export.tokenizer_fields(DEMO_MODEL_DIR, 4096)
    assert fields["tokens"][0] == "<|endoftext|>" and fields["types"][0] == gguf_export.TOKEN_CONTROL
    assert fields["merges"][0] == "Ġ t" and not fields["add_bos"]
    assert len(set(gguf_export.byte_symbols())) == 256


def test_launcher_targets_and_registry(tmp_path: Path) -> None:
    assert parse_target("") == (DEMO_MODEL_DIR, "f32")
    assert parse_target("--model-dir /m --dtype bfloat16") == (Path("/m"), "bf16")
    with pytest.raises(ValueError):
        parse_target("--n_ctx 5")
    spec = endpoint_specs(None, "pytgi serve --dtype bfloat16", [], ["llamacpp"])[1]
    assert spec.kind == "llamacpp" and parse_target(spec.target)[1] == "bf16"
    launcher = make_launcher(EndpointSpec("B", "llamacpp", ""), tmp_path / "run", 2)
    assert isinstance(launcher, LlamaCppServer)
    assert launcher.gguf == gguf_path(DEMO_MODEL_DIR, "f32", tmp_path / "gguf")
    assert "--n_threads" in launcher.describe()["argv"]  # type: ignore[operator]


def test_llama_server_launcher_takes_slots(tmp_path: Path) -> None:
    assert split_parallel("--dtype bfloat16") == ("--dtype bfloat16", 32)
    assert split_parallel("--parallel 8 --dtype float32") == ("--dtype float32", 8)
    for bad in ("--parallel", "--parallel 0", "--parallel x"):
        with pytest.raises(ValueError):
            split_parallel(bad)
    spec = endpoint_specs(None, "pytgi serve --model-id /m --dtype bfloat16", [], ["llama-server --parallel 16"])[1]
    assert spec.kind == "llama-server"
    launcher = make_launcher(spec, tmp_path / "run", 2)
    assert isinstance(launcher, LlamaCppNativeServer) and launcher.slots == 16
    argv = launcher.describe()["argv"]
    assert argv[argv.index("--parallel") + 1] == "16" and argv[argv.index("--ctx-size") + 1] == "16384"  # type: ignore[union-attr]
    assert (launcher.model_dir, launcher.dtype) == (Path("/m"), "bf16")


GREEDY_SCRIPT = """
import json, sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=512, n_threads=2, verbose=False, logits_all=False)
out = []
for prompt in json.loads(sys.argv[2]):
    llm.reset()
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    got = []
    for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
        if token == llm.token_eos() or len(got) == int(sys.argv[3]):
            break
        got.append(token)
    out.append({"prompt_ids": ids, "tokens": got})
print(json.dumps(out))
"""


@needs_llamacpp
def test_llama_cpp_greedy_matches_pytgi(tmp_path: Path) -> None:
    from pytgi import LLM

    prompts = ["def fibonacci(n):", "The Python language reference", "class Point:\n    "]
    gguf = tmp_path / "demo-f32.gguf"
    subprocess.run([str(LLAMACPP_PYTHON), gguf_export.__file__, str(DEMO_MODEL_DIR), str(gguf)], check=True)
    done = subprocess.run([str(LLAMACPP_PYTHON), "-c", GREEDY_SCRIPT, str(gguf), json.dumps(prompts), "16"],
                          check=True, capture_output=True, text=True)
    llama = json.loads(done.stdout)
    ours = LLM(dtype="float32").generate(prompts, max_new_tokens=16)  # greedy: default sampling
    for prompt, theirs, mine in zip(prompts, llama, ours, strict=True):
        # pytgi also stops at <|im_end|>, the script only at EOS: compare the common part.
        common = min(len(theirs["tokens"]), len(mine.token_ids))
        assert common >= 4, (prompt, theirs, mine.token_ids)
        assert theirs["tokens"][:common] == list(mine.token_ids)[:common], prompt
        assert len(theirs["prompt_ids"]) == mine.num_prompt_tokens, prompt
