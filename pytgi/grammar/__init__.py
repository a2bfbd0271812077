"""Structured output: compile a `GrammarSpec` once (cache.py), keep one matcher
per constrained request (matchers.py), and mask each step's logits with the
tokens the grammar allows. backend.py is the seam; llguidance_backend.py the
library chosen by measurement (docs/grammar.md). No torch here."""
