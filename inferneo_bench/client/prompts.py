"""Prompts of a requested token length, different for every request (so a server's prefix cache cannot turn
the workload into a cheaper one), reproducible from (seed, request id).

- Token ids (the completions API, when the server accepts them): ids 32..126. In byte-level vocabularies
  (GPT-2, Llama 3, Qwen, and `serve`'s byte tokenizer) these are single-byte tokens; every vocabulary of a
  real model has them. The length is exact.
- Text (the chat API, or a server that refuses ids): common English words, most of them one token in BPE
  vocabularies; when the server has vLLM's POST /tokenize, the probe measured its tokens per word and the word
  count is scaled by it. The length is approximate: the server's own count is what the record keeps.
"""

from __future__ import annotations

import random
import zlib

FIRST_ID, LAST_ID = 32, 126

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there one all we their been has when who will more no if out so said what up its "
    "about into than them can only other new some could time these two may then do first any my now such like "
    "our over man me even most made after also did many before must through back years where much your way "
    "well down should because each just those people how too little state good very make world still own see "
    "men work long get here between both life being under never day same another know while last might us "
    "great old year off come since against go came right used take three"
).split()


def _rng(seed: int, request_id: str) -> random.Random:
    return random.Random((seed << 32) ^ zlib.crc32(request_id.encode()))


def token_ids(n: int, seed: int, request_id: str) -> list[int]:
    rng = _rng(seed, request_id)
    return [rng.randint(FIRST_ID, LAST_ID) for _ in range(n)]


def text(n_tokens: int, seed: int, request_id: str, tokens_per_word: float | None = None) -> str:
    """About n_tokens tokens of text: n_tokens / tokens_per_word words (1 token per word when unknown)."""
    per_word = tokens_per_word if tokens_per_word and tokens_per_word > 0 else 1.0
    words = max(1, round(n_tokens / per_word))
    rng = _rng(seed, request_id)
    return " ".join(rng.choice(WORDS) for _ in range(words))


SAMPLE_TEXT = " ".join(WORDS)  # tokenised once by the probe to measure tokens per word
