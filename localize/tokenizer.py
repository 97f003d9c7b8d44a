"""Offline token counting: o200k_base, shipped in localize/data, on tiktoken's BPE engine.

Kimi K2's own vocabulary cannot be shipped (../shared/KIMI.md §5), so o200k_base stands in.
The vocabulary is handed to tiktoken.Encoding directly, so nothing is ever downloaded.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
from functools import lru_cache
from pathlib import Path

import tiktoken

VOCABULARY = Path(__file__).with_name("data") / "o200k_base.tiktoken.gz"
# tiktoken's own expected hash for o200k_base (tiktoken_ext/openai_public.py).
VOCABULARY_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# o200k_base's pre-tokenizer, as tiktoken_ext/openai_public.py defines it (MIT).
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
ENCODING_NAME = "o200k_base"


@lru_cache(maxsize=1)
def o200k_base() -> tiktoken.Encoding:
    """The encoding, built once per process (about half a second)."""
    raw = gzip.decompress(VOCABULARY.read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != VOCABULARY_SHA256:
        raise RuntimeError(f"{VOCABULARY} is corrupt (sha256 {digest}); reinstall localize")
    decode = binascii.a2b_base64  # (base64.b64decode's checks, 200,000 times, cost a fifth of the load)
    ranks = {decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
    encoding = tiktoken.Encoding(ENCODING_NAME, pat_str=_O200K_PATTERN, mergeable_ranks=ranks, special_tokens={})
    # Encoding keeps its Python copy of the 200k ranks (about 25 MB) for decoding helpers we
    # never call; counting runs in its Rust core, which has its own. Let the copy go.
    encoding._mergeable_ranks = {}
    return encoding
