"""The small world's tokenizer: a CLIP byte-level BPE whose merges are learnt from the caption words.

Every caption word ('a', 'red', 'triangle', 'zigzag' ...) is one token; any other text still tokenizes,
character by character, as in CLIP. The files (vocab.json, merges.txt, tokenizer_config.json) load with
transformers' CLIPTokenizer.

    write_tokenizer("models/toyworld-t2v/tokenizer")
"""

import json
from collections import Counter
from pathlib import Path

from ..errors import MotionDirectorError
from ..files import write_json, write_text
from .clips import COLOURS, MOTIONS, SHAPES, caption

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END = "</w>"  # marks the last symbol of a word, as in CLIP


def caption_words() -> list[str]:
    """Every word that a small-world caption can hold (held-out motions too), sorted."""
    words = set()
    for shape in SHAPES:
        for colour in COLOURS:
            for motion in MOTIONS:
                words.update(caption(shape, colour, motion).split())
    return sorted(words)


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges, most frequent pair first (ties by name), until every word is a single symbol."""
    for word in words:
        if not word or not word.isascii() or not word.isalpha() or word != word.lower():
            raise MotionDirectorError(f"tokenizer words must be lower-case ASCII letters, got {word!r}.")
    pieces = {word: list(word[:-1]) + [word[-1] + END] for word in sorted(set(words))}
    merges = []
    while True:
        pairs = Counter(pair for symbols in pieces.values() for pair in zip(symbols, symbols[1:]))
        if not pairs:
            return merges
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for word, symbols in pieces.items():
            pieces[word] = _merge(symbols, best)


def _merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's layout: the 256 byte symbols, the same with the word end, the merged symbols, then BOS and EOS."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + END for s in symbols] + [a + b for a, b in merges] + [BOS, EOS]
    vocab = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab


def write_tokenizer(folder: str | Path, max_length: int = 16, words: list[str] | None = None) -> Path:
    """Write vocab.json, merges.txt and tokenizer_config.json into `folder`; returns the folder."""
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 4:
        raise MotionDirectorError(f"max_length must be a whole number of at least 4, got {max_length!r}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    merges = learn_merges(caption_words() if words is None else words)
    write_text(folder / "vocab.json", json.dumps(build_vocab(merges), ensure_ascii=False) + "\n")
    write_text(folder / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
    }
    write_json(folder / "tokenizer_config.json", config)
    return folder


def load_tokenizer(folder: str | Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(folder))
