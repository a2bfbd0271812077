"""From a validated `GenerationRequest` to what the scheduler needs: prompt
token ids (truncated as asked), the effective max_new_tokens, a resolved seed,
the compiled grammar. The token-count checks here are TGI's, with its messages
and order; grammar compilation comes last, as in TGI."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from pytgi.config import ServingLimits
from pytgi.errors import ValidationError
from pytgi.grammar.backend import CompiledGrammar
from pytgi.grammar.cache import GrammarCache
from pytgi.protocol import GenerationRequest, SamplingParams
from pytgi.tokenizer.tokenizer import Tokenizer

# TGI validates prompt + min(max_new_tokens, 1024) against max_total_tokens and
# keeps generating up to max_total_tokens: larger asks are capped, not refused.
DEFAULT_GENERATION_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class ProcessedRequest:
    request: GenerationRequest
    prompt_token_ids: tuple[int, ...]
    max_new_tokens: int
    sampling: SamplingParams
    num_input_characters: int
    grammar: CompiledGrammar | None = None


class InputProcessor:
    def __init__(
        self, tokenizer: Tokenizer, limits: ServingLimits, grammars: GrammarCache | None = None
    ) -> None:
        """`grammars` None: requests with a grammar are refused (TGI's message
        for a server without grammar support)."""
        self.tokenizer = tokenizer
        self.limits = limits
        self.grammars = grammars

    def process(self, request: GenerationRequest) -> ProcessedRequest:
        """Tokenize and check lengths. Raises ValidationError. Blocking: call it
        off the event loop."""
        prompt_ids = self._prompt_ids(request)
        if request.truncate is not None and len(prompt_ids) > request.truncate:
            prompt_ids = prompt_ids[-request.truncate :]  # TGI keeps the last tokens
        max_new_tokens = self._check_lengths(len(prompt_ids), request.stopping.max_new_tokens)
        return ProcessedRequest(
            request=request,
            prompt_token_ids=tuple(prompt_ids),
            max_new_tokens=max_new_tokens,
            sampling=resolve_seed(request.sampling),
            num_input_characters=len(request.prompt or ""),
            grammar=self._compile_grammar(request),
        )

    def _compile_grammar(self, request: GenerationRequest) -> CompiledGrammar | None:
        """Compiled here, before the request is queued, so that a grammar the
        backend refuses, or one too slow to compile, is a 422 and not a failed
        generation."""
        if request.grammar is None:
            return None
        if self.grammars is None:
            raise ValidationError("grammar is not supported")
        return self.grammars.get(request.grammar)

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.prompt_token_ids is not None:
            ids = list(request.prompt_token_ids)
        else:
            try:
                ids = self.tokenizer.encode(request.prompt or "", request.add_special_tokens)
            except Exception as error:  # the Rust tokenizer raises plain exceptions
                raise ValidationError(f"tokenizer error {error}") from error
        if not ids:
            raise ValidationError("`inputs` cannot be empty")
        vocab_size = self.tokenizer.vocab_size
        if any(not 0 <= token_id < vocab_size for token_id in ids):
            raise ValidationError(f"token ids must be in [0, {vocab_size})")
        return ids

    def _check_lengths(self, input_length: int, max_new_tokens: int | None) -> int:
        limits = self.limits
        checked_new = (
            min(max_new_tokens, DEFAULT_GENERATION_LENGTH)
            if max_new_tokens is not None
            else max(limits.max_total_tokens - input_length, 0)
        )
        if input_length + checked_new > limits.max_total_tokens:
            raise ValidationError(
                f"`inputs` tokens + `max_new_tokens` must be <= {limits.max_total_tokens}. "
                f"Given: {input_length} `inputs` tokens and {checked_new} `max_new_tokens`"
            )
        if input_length > limits.max_input_tokens:
            raise ValidationError(
                f"`inputs` must have less than {limits.max_input_tokens} tokens. Given: {input_length}"
            )
        room = limits.max_total_tokens - input_length
        return min(max_new_tokens, room) if max_new_tokens is not None else room


def resolve_seed(sampling: SamplingParams) -> SamplingParams:
    """Sampled requests always run with a concrete seed so it can be reported."""
    if sampling.is_greedy or sampling.seed is not None:
        return sampling
    return dataclasses.replace(sampling, seed=random.getrandbits(63))
