"""Text data for Transformer supernets - nothing to download.

    >>> from ofa.data.text import build_text_data
    >>> data = build_text_data("numbers")          # English -> French numbers in words
    >>> data.train[0]
('four hundred and twelve thousand, ...', 'quatre cent douze mille ...')

    >>> for src, tgt in data.batches("train", batch_size=64, shuffle=True, seed=0, epoch=0):
    ...     logits = model(src, tgt[:, :-1]); loss = ce(logits, tgt[:, 1:])

The default task translates integers below 10**6 written out in words, from
English to French, generated with the ``num2words`` package. French reorders
and composes differently ("ninety-nine" -> "quatre-vingt-dix-neuf", "seventy-one
thousand" -> "soixante et onze mille"). Validation and test numbers come from
*held-out ranges*: every number whose thousands block ``n // 1000`` is 23 mod 50
(validation) or 7 mod 50 (test) never appears in training, so those splits
measure generalisation to unseen thousands groups, not memorisation.

Users' own parallel text works the same way: one sentence per line, a source
file and a target file with the same number of lines (``build_text_data(
{"train": ["train.en", "train.fr"], "val": [...], "test": [...]})``; missing
splits are carved from the training files).

Tokens are words (``level="word"``: words and punctuation, hyphens split off)
or characters (``level="char"``); vocabularies are built from the training
split only, with ids 0-3 reserved for ``<pad>``, ``<bos>``, ``<eos>``,
``<unk>``. Bad paths and files raise :class:`~ofa.errors.DataError`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import BackendUnavailableError, ConfigError, DataError
from ..models.transformer import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

LEVELS = ("word", "char")
SPLITS = ("train", "val", "test")
NUMBER_BLOCKS = 50  # numbers are grouped by thousands block n // 1000, modulo this
VAL_BLOCK, TEST_BLOCK = 23, 7


# --- tokens and vocabularies ---------------------------------------------------------------------------
def tokenize(text: str, level: str = "word") -> list[str]:
    """Words and punctuation marks (hyphens are their own tokens), or characters."""
    if level == "char":
        return list(text.strip())
    return re.findall(r"\w+|[^\w\s]", text)


def detokenize(tokens: Sequence[str], level: str = "word") -> str:
    """Inverse of :func:`tokenize` for text written the usual way (no space
    around hyphens and apostrophes, none before closing punctuation)."""
    if level == "char":
        return "".join(tokens)
    text = " ".join(tokens)
    text = re.sub(r" ?([-']) ?", r"\1", text)
    return re.sub(r" ([,.;:!?)])", r"\1", text)


class Vocabulary:
    """Token <-> id mapping; ids 0-3 are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``."""

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tokens[:len(SPECIAL_TOKENS)] != list(SPECIAL_TOKENS):
            raise DataError(f"a vocabulary starts with the special tokens {SPECIAL_TOKENS}")
        if len(set(tokens)) != len(tokens):
            raise DataError("a vocabulary lists each token once")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], min_count: int = 1) -> "Vocabulary":
        """From tokenised sentences: tokens seen ``min_count`` times or more,
        most frequent first (ties alphabetical, so the result is deterministic)."""
        counts = Counter(t for sentence in sentences for t in sentence)
        kept = sorted((t for t, c in counts.items() if c >= min_count and t not in SPECIAL_TOKENS),
                      key=lambda t: (-counts[t], t))
        return cls(list(SPECIAL_TOKENS) + kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], bos: bool = True, eos: bool = True) -> list[int]:
        ids = [self.index.get(t, UNK) for t in tokens]
        return ([BOS] if bos else []) + ids + ([EOS] if eos else [])

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Tokens up to the first EOS, skipping PAD and BOS."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIAL_TOKENS[UNK])
        return out

    def to_list(self) -> list[str]:
        """Plain data (stored in checkpoints, which load with ``weights_only``)."""
        return list(self.tokens)


def pad_batch(sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), PAD, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, :len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out


# --- data sets -----------------------------------------------------------------------------------------
@dataclass
class TextSplits:
    """Train/val/test parallel sentences with vocabularies built on train.

    ``train``/``val``/``test`` are lists of (source, target) strings."""

    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    level: str = "word"
    name: str = "numbers"

    def split(self, name: str) -> list[tuple[str, str]]:
        if name not in SPLITS:
            raise ConfigError(f"split {name!r} unknown; allowed: {SPLITS}")
        return getattr(self, name)

    def encode(self, name: str, limit: int | None = None) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of a split: sources and targets, both BOS ... EOS."""
        pairs = self.split(name)[:limit]
        return ([self.src_vocab.encode(tokenize(s, self.level)) for s, _ in pairs],
                [self.tgt_vocab.encode(tokenize(t, self.level)) for _, t in pairs])

    def max_length(self) -> int:
        """Longest encoded sequence (with BOS and EOS) over all splits and both sides."""
        return max(len(tokenize(text, self.level)) + 2 for name in SPLITS for pair in self.split(name)
                   for text in pair)

    def batches(self, name: str, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                limit: int | None = None, rank: int = 0, world_size: int = 1) -> Iterator[tuple]:
        """(src (B, S), tgt (B, T)) padded batches; the model reads
        ``tgt[:, :-1]`` and predicts ``tgt[:, 1:]``. The order depends only on
        (seed, epoch); with ``world_size > 1`` each rank gets every
        ``world_size``-th batch."""
        sources, targets = self.encode(name, limit)
        order = np.arange(len(sources))
        if shuffle:
            order = np.random.default_rng([seed, epoch]).permutation(len(sources))
        starts = range(0, len(order), batch_size)
        for b, start in enumerate(starts):
            if b % world_size != rank:
                continue
            chosen = order[start:start + batch_size]
            yield pad_batch([sources[i] for i in chosen]), pad_batch([targets[i] for i in chosen])

    def references(self, name: str, limit: int | None = None) -> list[str]:
        """Target sentences of a split as the tokenizer sees them, detokenised."""
        return [detokenize(tokenize(t, self.level), self.level) for _, t in self.split(name)[:limit]]


DIGITS = "digits"  # a "language": the number's decimal digits, one token each ("4 1 2 0 0 7")


def _number_pairs(numbers: Sequence[int], src_lang: str, tgt_lang: str) -> list[tuple[str, str]]:
    from num2words import num2words  # light, pure Python; imported where used

    def write(n: int, lang: str) -> str:
        return " ".join(str(n)) if lang == DIGITS else num2words(n, lang=lang)

    return [(write(int(n), src_lang), write(int(n), tgt_lang)) for n in numbers]


def number_translation(train_size: int = 20000, val_size: int = 500, test_size: int = 500,
                       src_lang: str = "en", tgt_lang: str = "fr", level: str = "word",
                       seed: int = 0, max_digits: int = 6) -> TextSplits:
    """Translate integers below ``10**max_digits`` written in words (see the module docstring).

    Training numbers are distinct; their number of digits is uniform in
    1..``max_digits`` (so every number below 100 is included), and none lies in
    a held-out range. ``src_lang`` or ``tgt_lang`` ``"digits"`` writes the
    number as its decimal digits, one token each: reading digits needs the
    position of each digit from the end, which the words spell out ("thousand")."""
    try:
        import num2words  # noqa: F401
    except ImportError as error:
        raise BackendUnavailableError("the number-translation task needs num2words: pip install num2words "
                                      "(or pip install 'ofa-hw[nlp]')") from error
    for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if train_size > 500_000:
        raise ConfigError(f"train_size must be at most 500000, got {train_size}")
    if isinstance(max_digits, bool) or not isinstance(max_digits, int) or not 4 <= max_digits <= 12:
        raise ConfigError(f"max_digits must be an integer in 4..12 (held-out ranges are thousands blocks), "
                          f"got {max_digits!r}")
    from num2words import CONVERTER_CLASSES

    languages = sorted(CONVERTER_CLASSES) + [DIGITS]
    for name, lang in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
        if lang not in languages:
            raise ConfigError(f"{name} {lang!r} unknown; allowed: {DIGITS!r} or a num2words language: "
                              f"{', '.join(languages[:-1])}")
    if src_lang == tgt_lang:
        raise ConfigError(f"src_lang and tgt_lang are both {src_lang!r}: nothing to translate")
    rng = np.random.default_rng(seed)

    def block_of(n):
        return (n // 1000) % NUMBER_BLOCKS

    train: list[int] = []
    seen: set[int] = set()
    while len(train) < train_size:
        digits = int(rng.integers(1, max_digits + 1))
        low = 0 if digits == 1 else 10 ** (digits - 1)
        n = int(rng.integers(low, 10 ** digits))
        if n in seen or block_of(n) in (VAL_BLOCK, TEST_BLOCK):
            continue
        seen.add(n)
        train.append(n)

    def held_out(block: int, count: int) -> list[int]:
        blocks = np.arange(block, 10 ** (max_digits - 3), NUMBER_BLOCKS)
        chosen = rng.choice(len(blocks) * 1000, size=count, replace=False)
        return [int(blocks[c // 1000] * 1000 + c % 1000) for c in chosen]

    val, test = held_out(VAL_BLOCK, val_size), held_out(TEST_BLOCK, test_size)
    name = f"numbers-{src_lang}-{tgt_lang}" + ("" if max_digits == 6 else f"-{max_digits}digits")
    return _make_splits(_number_pairs(train, src_lang, tgt_lang), _number_pairs(val, src_lang, tgt_lang),
                        _number_pairs(test, src_lang, tgt_lang), level, name)


def read_parallel_files(source_path: str | os.PathLike, target_path: str | os.PathLike) -> list[tuple[str, str]]:
    """Pairs of lines from two UTF-8 files with one sentence per line."""
    texts = []
    for path in (source_path, target_path):
        path = Path(path)
        if not path.is_file():
            raise DataError(f"parallel text file {str(path)!r} does not exist")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise DataError(f"{str(path)!r} is not UTF-8 text: {error}") from None
        texts.append([line.strip() for line in lines])
    sources, targets = texts
    if len(sources) != len(targets):
        raise DataError(f"{source_path!s} has {len(sources)} lines but {target_path!s} has {len(targets)}: "
                        f"parallel files need one target line per source line")
    pairs = [(s, t) for s, t in zip(sources, targets) if s or t]
    empty = [i + 1 for i, (s, t) in enumerate(zip(sources, targets)) if bool(s) != bool(t)]
    if empty:
        raise DataError(f"line(s) {empty[:5]} of {source_path!s} / {target_path!s} are empty on one side only")
    if not pairs:
        raise DataError(f"{source_path!s} and {target_path!s} hold no sentences")
    return pairs


def parallel_text(files: dict, level: str = "word", val_fraction: float = 0.05, test_fraction: float = 0.05,
                  seed: int = 0, name: str = "parallel-text") -> TextSplits:
    """Users' own parallel text: ``files`` maps "train" (and optionally "val",
    "test") to [source_path, target_path]; missing splits are carved from
    the training pairs (a seeded shuffle)."""
    if not isinstance(files, dict) or "train" not in files:
        raise ConfigError("parallel text is a mapping with a 'train' entry [source_file, target_file] "
                          "and optional 'val' and 'test' entries")
    unknown = sorted(set(files) - set(SPLITS))
    if unknown:
        raise ConfigError(f"unknown split(s) {unknown} in the parallel text files; allowed: {SPLITS}")
    loaded = {}
    for split, paths in files.items():
        if not isinstance(paths, (list, tuple)) or len(paths) != 2:
            raise ConfigError(f"split {split!r} must be [source_file, target_file], got {paths!r}")
        loaded[split] = read_parallel_files(*paths)
    train = loaded["train"]
    order = np.random.default_rng(seed).permutation(len(train))
    carved = {}
    start = 0
    for split, fraction in (("val", val_fraction), ("test", test_fraction)):
        if split in loaded:
            continue
        count = max(1, int(round(fraction * len(train))))
        carved[split] = [train[i] for i in order[start:start + count]]
        start += count
    if start:
        if start >= len(train):
            raise DataError(f"only {len(train)} training pairs: too few to carve validation/test splits; "
                            f"give 'val' and 'test' files")
        train = [train[i] for i in sorted(order[start:])]
    splits = {**loaded, **carved, "train": train}
    return _make_splits(splits["train"], splits["val"], splits["test"], level, name)


def _make_splits(train, val, test, level: str, name: str) -> TextSplits:
    if level not in LEVELS:
        raise ConfigError(f"token level {level!r} unknown; allowed: {LEVELS}")
    src_vocab = Vocabulary.build([tokenize(s, level) for s, _ in train])
    tgt_vocab = Vocabulary.build([tokenize(t, level) for _, t in train])
    return TextSplits(list(train), list(val), list(test), src_vocab, tgt_vocab, level, name)


def build_text_data(source: "str | dict" = "numbers", **options) -> TextSplits:
    """``"numbers"`` (options of :func:`number_translation`) or a mapping of
    parallel files (options of :func:`parallel_text`)."""
    if source == "numbers":
        return number_translation(**options)
    if isinstance(source, dict):
        return parallel_text(source, **options)
    raise ConfigError(f"text data source {source!r} unknown: use 'numbers' or a mapping "
                      f"{{'train': [source_file, target_file], 'val': [...], 'test': [...]}}")


# --- masked language modelling (encoder-only spaces) ---------------------------------------------------------
def mask_tokens(tokens: torch.Tensor, vocab_size: int, generator: torch.Generator, mask_prob: float = 0.15,
                mask_id: int = UNK) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: choose ``mask_prob`` of the real tokens (at least one per
    sentence); of those, 80% become ``mask_id``, 10% a random token, 10% stay.
    Returns (inputs, labels) with labels -100 where nothing is predicted.
    (``<unk>`` doubles as the mask token: the vocabularies here are closed.)"""
    real = tokens.gt(EOS)  # not PAD/BOS/EOS
    chosen = (torch.rand(tokens.shape, generator=generator) < mask_prob) & real
    # make sure each sentence predicts at least one token
    first_real = torch.argmax(real.long(), dim=1)
    none = ~chosen.any(dim=1) & real.any(dim=1)
    chosen[none, first_real[none]] = True
    labels = tokens.masked_fill(~chosen, -100)
    roll = torch.rand(tokens.shape, generator=generator)
    inputs = tokens.clone()
    inputs[chosen & (roll < 0.8)] = mask_id
    random_slots = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[random_slots] = torch.randint(len(SPECIAL_TOKENS), vocab_size, (int(random_slots.sum()),),
                                         generator=generator)
    return inputs, labels
