"""Train a ~150k byte-level BPE tokenizer on text found offline (Python sources and docs)."""
import glob, os, sys, time
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers

roots = ["/usr/lib/python3.11", "/usr/local/lib/python3.11", "/work/main/.venv/lib/python3.11/site-packages", "/usr/share/doc"]
files, total = [], 0
for root in roots:
    for path in glob.iglob(os.path.join(root, "**", "*"), recursive=True):
        if not path.endswith((".py", ".txt", ".md", ".rst", ".pyi", ".h", ".c", ".html", ".json")):
            continue
        try:
            size = os.path.getsize(path)
        except OSError:
            continue
        if size > 2_000_000 or size == 0:
            continue
        files.append(path); total += size
        if total > 400_000_000:
            break
print(len(files), "files", total / 1e6, "MB", flush=True)

def lines():
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="ignore") as f:
                yield f.read()
        except OSError:
            pass

tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=150_000, min_frequency=2, special_tokens=["<|endoftext|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
t = time.time()
tok.train_from_iterator(lines(), trainer=trainer)
print("trained in", time.time() - t, "vocab", tok.get_vocab_size(), flush=True)
tok.save(sys.argv[1])
