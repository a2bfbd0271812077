"""Write a Hugging Face Llama checkpoint folder as a GGUF file, for the llama.cpp baseline.

llama.cpp's own `convert_hf_to_gguf.py` (shipped in the llama-cpp-python sdist) refuses
BPE tokenizers whose pre-tokenizer hash it does not know, which includes the demo model's,
and word-level ones such as `random_model.py`'s, so the file is written here directly
with the `gguf` package's `GGUFWriter`.

Runs inside `.venv-llamacpp` (numpy + gguf, no torch): `python pytgi/bench/gguf_export.py
MODEL_DIR OUT.gguf --dtype f32`. It is therefore run by path and imports nothing from
pytgi; `gguf` is imported lazily so the rest of the module (the name mapping, the Q/K
permutation, the safetensors reader) is testable from pytgi's own venv.
"""

from __future__ import annotations

import argparse
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

DTYPES = ("f32", "f16", "bf16")
# HF tensor name (after "model.layers.N.") -> llama.cpp's "blk.N." suffix.
LAYER_NAMES = {
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}
GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
# llama.cpp token types (gguf.TokenType): normal, control (special), unused.
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_UNUSED = 1, 3, 5
SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def gguf_name(hf_name: str) -> str | None:
    """llama.cpp's name for an HF Llama tensor; None for tensors it has no use for
    (rotary caches that some checkpoints carry)."""
    if hf_name in GLOBAL_NAMES:
        return GLOBAL_NAMES[hf_name]
    parts = hf_name.split(".", 3)
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in LAYER_NAMES:
        return f"blk.{int(parts[2])}.{LAYER_NAMES[parts[3]]}"
    if hf_name.endswith("rotary_emb.inv_freq"):
        return None
    raise ValueError(f"no llama.cpp name for tensor {hf_name!r}")


def unpermute_rotary(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """HF Llama rotates the two *halves* of each head (rotate_half); llama.cpp's
    LLAMA rope rotates *adjacent pairs*. Reordering each head's output rows from
    [x0..x(d/2-1), y0..y(d/2-1)] to [x0, y0, x1, y1, ...] makes the two agree, which is
    what llama.cpp's converter does for Q (with the query heads) and K (with the KV heads)."""
    rows = weight.shape[0]
    head_dim = rows // num_heads
    split = weight.reshape(num_heads, 2, head_dim // 2, *weight.shape[1:])
    return split.swapaxes(1, 2).reshape(weight.shape)


def read_safetensors(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 array) per tensor. numpy has no bfloat16: its bits are the top half
    of a float32's, so they are widened by a shift."""
    with path.open("rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, Any] = json.loads(handle.read(header_len))
        data_start = 8 + header_len
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if info["dtype"] not in SAFETENSORS_DTYPES:
                raise ValueError(f"{name}: unsupported dtype {info['dtype']}")
            begin, end = info["data_offsets"]
            handle.seek(data_start + begin)
            raw = np.frombuffer(handle.read(end - begin), dtype=SAFETENSORS_DTYPES[info["dtype"]])
            if info["dtype"] == "BF16":
                values = (raw.astype(np.uint32) << 16).view(np.float32)
            else:
                values = raw.astype(np.float32)
            yield name, values.reshape(info["shape"])


def checkpoint_tensors(model_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {model_dir}")
    for path in files:
        yield from read_safetensors(path)


def llama_tensors(model_dir: Path, config: dict[str, Any]) -> Iterator[tuple[str, np.ndarray]]:
    """The checkpoint's tensors under llama.cpp's names, Q and K rows reordered."""
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    for hf_name, tensor in checkpoint_tensors(model_dir):
        name = gguf_name(hf_name)
        if name is None:
            continue
        if name.endswith("attn_q.weight"):
            tensor = unpermute_rotary(tensor, heads)
        elif name.endswith("attn_k.weight"):
            tensor = unpermute_rotary(tensor, kv_heads)
        yield name, tensor


# --- tokenizer ----------------------------------------------------------------------


def byte_symbols() -> list[str]:
    """GPT-2's byte-level alphabet: each byte as one printable character (ids 0-255 in
    order of byte value), the form byte-level BPE vocabularies store tokens in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    symbols = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[byte] for byte in range(256)]


def eos_ids(model_dir: Path, config: dict[str, Any]) -> list[int]:
    generation = model_dir / "generation_config.json"
    value = json.loads(generation.read_text()).get("eos_token_id") if generation.exists() else None
    value = value if value is not None else config.get("eos_token_id")
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list) else [int(value)]


def tokenizer_fields(model_dir: Path, vocab_size: int) -> dict[str, Any]:
    """The GGUF tokenizer: tokens, types, merges in llama.cpp's "gpt2" (byte-level BPE)
    form. A word-level vocabulary (random_model.py's) has no BPE form: it becomes the 256
    byte symbols plus unused fillers, so llama.cpp reads a prompt as bytes (a few times
    more prompt tokens than pytgi; decode cost, which depends on the weights, is the same)."""
    data = json.loads((model_dir / "tokenizer.json").read_text())
    model = data["model"]
    special = {int(t["id"]) for t in data.get("added_tokens", []) if t.get("special")}
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [TOKEN_UNUSED] * vocab_size
    merges: list[str] = []
    if model["type"] == "BPE":
        for text, index in model["vocab"].items():
            tokens[index], types[index] = text, TOKEN_NORMAL
        for added in data.get("added_tokens", []):
            tokens[int(added["id"])] = added["content"]
        for index in special:
            types[index] = TOKEN_CONTROL
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    elif model["type"] == "WordLevel":
        for index, symbol in enumerate(byte_symbols()[:vocab_size]):
            tokens[index], types[index] = symbol, TOKEN_NORMAL
    else:
        raise ValueError(f"tokenizer model {model['type']!r} is not supported (BPE or WordLevel)")
    config_path = model_dir / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text()) if config_path.exists() else {}
    return {"tokens": tokens, "types": types, "merges": merges,
            "add_bos": bool(tok_config.get("add_bos_token", False))}


# --- writer -------------------------------------------------------------------------


def export(model_dir: Path, output: Path, dtype: str = "f32") -> Path:
    """Write `output` (GGUF, llama architecture) from `model_dir`; returns `output`."""
    import gguf  # optional: only .venv-llamacpp has it

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: one of {', '.join(DTYPES)}")
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise ValueError(f"model_type {config.get('model_type')!r}: only llama checkpoints")
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    vocab_size = int(config["vocab_size"])
    qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "bf16": gguf.GGMLQuantizationType.BF16}[dtype]
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "bf16": gguf.LlamaFileType.MOSTLY_BF16}[dtype]

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")  # a killed export leaves no valid-looking file
    writer = gguf.GGUFWriter(partial, "llama")
    writer.add_name(model_dir.name)
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(vocab_size)
    writer.add_file_type(int(file_type))

    tokenizer = tokenizer_fields(model_dir, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # the GPT-2 split regex: what a ByteLevel pre-tokenizer does
    writer.add_token_list(tokenizer["tokens"])
    writer.add_token_types(tokenizer["types"])
    if tokenizer["merges"]:
        writer.add_token_merges(tokenizer["merges"])
    eos = eos_ids(model_dir, config)
    # Without an EOS (random_model.py's) llama.cpp would assume a fixed id, a byte token
    # here; the last id (an unused filler for a word-level vocab) is as unlikely and named.
    writer.add_eos_token_id(eos[0] if eos else vocab_size - 1)
    bos = config.get("bos_token_id")
    # llama.cpp falls back to a fixed id for a missing BOS; name EOS instead (never added).
    writer.add_bos_token_id(int(bos) if bos is not None else (eos[0] if eos else 0))
    writer.add_add_bos_token(tokenizer["add_bos"])
    writer.add_add_eos_token(False)

    for name, tensor in llama_tensors(model_dir, config):
        # llama.cpp keeps 1-D tensors (norms) in f32 whatever the file type.
        tensor_type = qtype if tensor.ndim > 1 else gguf.GGMLQuantizationType.F32
        data = gguf.quants.quantize(np.ascontiguousarray(tensor, dtype=np.float32), tensor_type)
        writer.add_tensor(name, data, raw_dtype=tensor_type)  # bf16 comes as bytes; the writer derives its shape
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(output)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="HF Llama safetensors folder -> GGUF")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--dtype", choices=DTYPES, default="f32")
    args = parser.parse_args(argv)
    print(export(args.model_dir, args.output, args.dtype))


if __name__ == "__main__":
    main()
