"""Tokenisers of the server: a byte-level default that needs no download, or a local Hugging Face tokenizer.

The engine's models have random weights (or are loaded from a local checkpoint) and sample ids anywhere in the
model's vocabulary. Each sampled id is first *folded* into the tokenizer's vocabulary (`fold`), then rendered as
text; usage counts one token per sampled id whatever its text.

- `ByteTokenizer` (default): one token per UTF-8 byte of the prompt (ids 0..255), so a prompt of N ASCII
  characters is N tokens on every machine. Sampled ids are folded onto the 95 printable ASCII bytes (32..126):
  N output tokens are N characters, and re-encoding the output gives the same N ids.
- `HFTokenizer` (`--tokenizer PATH`): the `tokenizers` library on PATH/tokenizer.json. Sampled ids at or beyond
  its vocabulary are folded modulo its size; text is produced incrementally (`DecodeStream`), so a token that
  ends inside a multi-byte character yields "" and its text arrives with the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from inferneo_bench.errors import UserError

PRINTABLE_FIRST, PRINTABLE_COUNT = 32, 95  # ' ' .. '~'


class Tokenizer(Protocol):
    name: str
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Prompt text -> token ids (no special tokens added)."""

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids of this tokenizer -> text (the inverse of encode)."""

    def fold(self, model_id: int) -> int:
        """A model-sampled id -> an id of this tokenizer."""

    def stream_decoder(self) -> Callable[[int], str]:
        """A per-request incremental decoder: folded id -> the text it completes ("" while a character is open)."""


class ByteTokenizer:
    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        bad = [i for i in ids if not 0 <= i < 256]
        if bad:
            raise ValueError(f"token id {bad[0]} is not a byte (the byte tokenizer's ids are 0..255)")
        return bytes(ids).decode("utf-8", errors="replace")

    def fold(self, model_id: int) -> int:
        return PRINTABLE_FIRST + model_id % PRINTABLE_COUNT

    def stream_decoder(self) -> Callable[[int], str]:
        return chr  # folded ids are printable ASCII: one character each


class HFTokenizer:
    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer as _Tokenizer

        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise UserError(f"--tokenizer {path}: no tokenizer.json there; give a local Hugging Face tokenizer folder")
        try:
            self._tok = _Tokenizer.from_file(str(file))
        except Exception as exc:  # noqa: BLE001 - the library raises plain Exception for a bad file
            raise UserError(
                f"--tokenizer {file}: cannot read it ({exc}); is it a Hugging Face tokenizer.json?"
            ) from None
        self.name = str(path)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the tokenizer's vocabulary of {self.vocab_size}")
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def fold(self, model_id: int) -> int:
        return model_id % self.vocab_size

    def stream_decoder(self) -> Callable[[int], str]:
        from tokenizers.decoders import DecodeStream

        stream = DecodeStream(skip_special_tokens=False)
        tok = self._tok

        def step(token_id: int) -> str:
            return stream.step(tok, token_id) or ""

        return step


def load_tokenizer(path: str | Path | None) -> Tokenizer:
    """The byte tokenizer (None) or a local Hugging Face tokenizer folder / tokenizer.json."""
    if path is None:
        return ByteTokenizer()
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"--tokenizer {path}: no such file or folder; give a local Hugging Face tokenizer folder")
    return HFTokenizer(p)
