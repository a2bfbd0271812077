"""llguidance vs xgrammar: compile time and per-step mask time on two tokenizers.

Usage (in a throwaway venv with xgrammar, see docs/grammar.md):
    python compare.py TOKENIZER_JSON LABEL
For each grammar: compile (no cache) 5 times -> median; then replay a fixed valid
output (its canonical tokenization) step by step: fill one bitmask row, accept the
token; last, one batched step of 32 rows. Not part of the package or the tests.
"""
import json, statistics, sys, time

import numpy as np
import torch
import llguidance as llg
import llguidance.numpy as llnp
import xgrammar as xgr
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

path, label = sys.argv[1], sys.argv[2]
REPEATS = 5

SMALL = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
         "required": ["name", "age"]}
NESTED = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        "owner": {"type": "object", "properties": {
            "name": {"type": "string"}, "email": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string", "enum": ["admin", "user", "guest"]}}},
            "required": ["name", "roles"]},
        "scores": {"type": "array", "items": {"type": "number"}},
    },
    "required": ["id", "status", "tags", "owner"],
}
def tool(name, props, required):
    return {"type": "object", "properties": {"_name": {"type": "string", "const": name}, **props},
            "required": ["_name", *required]}
TOOLS = {
    "$defs": {
        "get_weather": tool("get_weather", {"location": {"type": "string"},
                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["location"]),
        "search": tool("search", {"query": {"type": "string"}, "limit": {"type": "integer"}}, ["query"]),
        "no_tool": tool("no_tool", {"content": {"type": "string"}}, ["content"]),
    },
    "type": "object",
    "properties": {"function": {"anyOf": [{"$ref": "#/$defs/get_weather"}, {"$ref": "#/$defs/search"},
                                            {"$ref": "#/$defs/no_tool"}]}},
    "required": ["function"],
}
REGEX = r"[A-Z][a-z]+ [A-Z][a-z]+, (19|20)\d\d-(0[1-9]|1[0-2])-([0-2]\d|3[01]), [a-z]+(\.[a-z]+)*@[a-z]+\.(com|org|net)"

CASES = [
    ("small object", "json", SMALL, {"name": "Ada Lovelace, the first programmer of the analytical engine", "age": 36}),
    ("nested + arrays/enums", "json", NESTED, {"id": 12, "status": "active", "tags": ["python", "rust", "tgi"],
        "owner": {"name": "Grace Hopper", "email": "grace@navy.mil", "roles": ["admin", "user"]}, "scores": [1.5, 2.25]}),
    ("tool-call anyOf", "json", TOOLS, {"function": {"_name": "get_weather", "location": "Paris, France and the surrounding region", "unit": "celsius"}}),
    ("regex", "regex", REGEX, "Grace Hopper, 1952-07-14, grace.hopper@navy.org"),
]

hf_tok = Tokenizer.from_file(path)
vocab_size = hf_tok.get_vocab_size()
eos = hf_tok.token_to_id("<|endoftext|>")
tok_json = open(path).read()

t = time.perf_counter(); ll_tok = llg.LLTokenizer(tok_json, eos_token=eos); ll_tok_s = time.perf_counter() - t
t = time.perf_counter()
fast = PreTrainedTokenizerFast(tokenizer_file=path, eos_token="<|endoftext|>")
xgr_info = xgr.TokenizerInfo.from_huggingface(fast, vocab_size=vocab_size, stop_token_ids=[eos])
xgr_tok_s = time.perf_counter() - t
print(f"## {label}: vocab {vocab_size}; tokenizer setup: llguidance {ll_tok_s*1e3:.0f} ms, xgrammar {xgr_tok_s*1e3:.0f} ms")

def text_of(kind, instance):
    return instance if kind == "regex" else json.dumps(instance, separators=(",", ":"))

def ll_compile(kind, value):
    grammar = llg.LLMatcher.grammar_from_regex(value) if kind == "regex" else llg.LLMatcher.grammar_from_json_schema(json.dumps(value))
    m = llg.LLMatcher(ll_tok, grammar, log_level=0)
    assert not m.is_error(), m.get_error()
    return m

def xgr_compile(kind, value):
    compiler = xgr.GrammarCompiler(xgr_info, max_threads=2, cache_enabled=False)
    if kind == "regex":
        return compiler.compile_regex(value)
    return compiler.compile_json_schema(json.dumps(value), any_whitespace=False, separators=(",", ":"))

def med(xs): return statistics.median(xs)


def replay(new_matcher, fill, accept, ids, check_done):
    m, fills, total = new_matcher(), [], 0.0
    for tok in ids:
        t = time.perf_counter(); bits = fill(m); dt = time.perf_counter() - t
        fills.append(dt)
        assert (int(bits[0, tok // 32]) >> (tok % 32)) & 1, "valid token masked"
        t2 = time.perf_counter(); ok = accept(m, tok); total += dt + time.perf_counter() - t2
        assert ok
    assert check_done(m)
    return fills, total

WARM = 7
rows = []
for name, kind, value, instance in CASES:
    ids = hf_tok.encode(text_of(kind, instance)).ids + [eos]
    res = {}
    for lib in ("llguidance", "xgrammar"):
        comp, cold, warm_fill, warm_tot = [], [], [], []
        for _ in range(REPEATS):
            if lib == "llguidance":
                t = time.perf_counter(); pristine = ll_compile(kind, value); comp.append(time.perf_counter() - t)
                mask = llnp.allocate_token_bitmask(1, vocab_size)
                new = pristine.deep_copy
                def fill(m): llnp.fill_next_token_bitmask(m, mask); return mask
                acc = lambda m, tok: m.consume_token(tok)
                done = lambda m: m.is_stopped()
            else:
                t = time.perf_counter(); cg = xgr_compile(kind, value); comp.append(time.perf_counter() - t)
                xmask = xgr.allocate_token_bitmask(1, vocab_size)
                new = lambda: xgr.GrammarMatcher(cg)
                def fill(m): m.fill_next_token_bitmask(xmask); return xmask
                acc = lambda m, tok: m.accept_token(tok)
                done = lambda m: m.is_terminated()
            _, c = replay(new, fill, acc, ids, done); cold.append(c)
        for _ in range(WARM):
            f, tot = replay(new, fill, acc, ids, done); warm_fill += f; warm_tot.append(tot)
        warm_fill.sort()
        res[lib] = (med(comp), med(cold), med(warm_fill), warm_fill[int(0.9 * len(warm_fill))], med(warm_tot))
    rows.append((name, len(ids), res))

print("| grammar | tokens | library | compile ms | first output ms (cold) | mask p50 us (warm) | mask p90 us (warm) | output ms (warm) | per 50 tokens ms (warm) |")
print("|---|---|---|---|---|---|---|---|---|")
for name, n, res in rows:
    for lib, (c, cold, p50, p90, tot) in res.items():
        print(f"| {name} | {n} | {lib} | {c*1e3:.1f} | {cold*1e3:.2f} | {p50*1e6:.0f} | {p90*1e6:.0f} | {tot*1e3:.2f} | {tot*1e3*50/n:.2f} |")

# Batched step: 32 requests of the nested schema, each at a different point of its
# output, all rows filled together (what one engine step does).
BATCH = 32
name, kind, value, instance = CASES[1]
ids = hf_tok.encode(text_of(kind, instance)).ids
pristine = ll_compile(kind, value)
ll_ms = [pristine.deep_copy() for _ in range(BATCH)]
cg = xgr_compile(kind, value)
xg_ms = [xgr.GrammarMatcher(cg) for _ in range(BATCH)]
for i in range(BATCH):
    prefix = ids[: (i * len(ids)) // BATCH]
    assert ll_ms[i].consume_tokens(prefix)
    for tok in prefix:
        assert xg_ms[i].accept_token(tok)
executor = llg.LLExecutor()
mask = llnp.allocate_token_bitmask(BATCH, vocab_size)
xmask = xgr.allocate_token_bitmask(BATCH, vocab_size)
batch = xgr.BatchGrammarMatcher()
timings = {"llguidance serial": [], "llguidance LLExecutor": [], "xgrammar serial": [], "xgrammar batch": []}
for _ in range(20):
    t = time.perf_counter()
    for i, m in enumerate(ll_ms):
        llnp.fill_next_token_bitmask(m, mask, i)
    timings["llguidance serial"].append(time.perf_counter() - t)
    t = time.perf_counter(); llnp.fill_next_token_bitmask_par(executor, [(m, i) for i, m in enumerate(ll_ms)], mask)
    timings["llguidance LLExecutor"].append(time.perf_counter() - t)
    t = time.perf_counter()
    for i, m in enumerate(xg_ms):
        m.fill_next_token_bitmask(xmask, i)
    timings["xgrammar serial"].append(time.perf_counter() - t)
    t = time.perf_counter(); batch.batch_fill_next_token_bitmask(xg_ms, xmask)
    timings["xgrammar batch"].append(time.perf_counter() - t)
print(f"\nbatch of {BATCH} rows (nested schema), median ms per step: " + ", ".join(f"{k} {med(v)*1e3:.2f}" for k, v in timings.items()))
