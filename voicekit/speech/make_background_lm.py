"""Regenerate ``voicekit/speech/data/background_bigrams.txt.gz`` (the recogniser's
general-English background model).

The file is derived from pocketsphinx's stock en-us language model (``en-us.lm.bin`` in the
installed pocketsphinx wheel): its unigrams and bigrams restricted to a vocabulary, with
weak bigrams pruned. The vocabulary is

- the stock model's ``--words`` most common words (letters and apostrophes, so contractions
  such as ``i'm`` and ``didn't`` count) that the stock dictionary pronounces, plus
- every word of ``corpus.txt`` (templates expanded with ``slots.txt``) and
  ``extra_vocab.txt`` that the stock model and dictionary both know, plus ``</s>``.

A bigram is kept when its probability is at least ``--prune`` times its backoff estimate
(backoff weight of the history x unigram probability of the word); the rest are what the
model's backoff gives anyway, or nearly. The output is written deterministically (sorted,
fixed float format, gzip with no file name or time stamp), so running this script with
the defaults of the shipped file reproduces it byte for byte::

    python -m voicekit.speech.make_background_lm           # rewrite the shipped file
    python -m voicekit.speech.make_background_lm --check    # exit 1 if it would differ

pocketsphinx 5.1 has no API to read a model's n-grams; the script has it write the model
as ARPA text in a child process and reads the unigram and bigram sections. Writing the
stock model crashes pocketsphinx 5.1.1 (a segmentation fault) at the very end of the bigram
section: the child exits on that signal with its output flushed, and the script checks that
all unigrams and all but at most 0.01 % of the bigrams arrived (6 of 2,051,547 are lost,
all ending in words after "zyuganov" in the model's order, none in the vocabulary), and that
the unigram probabilities sum to one (a ``LogMath`` freed before the model scales every
value).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import io
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from voicekit.speech import asr

OUTPUT = asr.DATA / "background_bigrams.txt.gz"
WORDS = 2000
"""How many of the stock model's most common words the background keeps (see asr.py)."""
PRUNE = 10.0
"""Keep a bigram when P(word | history) >= PRUNE x backoff(history) x P(word)."""

_WORD = re.compile(r"[a-z][a-z']*$")
_WRITE_ARPA = """
import ctypes, os, sys
from pocketsphinx import Config, LogMath, NGramModel, get_model_path
libc = ctypes.CDLL(None)
libc.signal.restype, libc.signal.argtypes = ctypes.c_void_p, [ctypes.c_int, ctypes.c_void_p]
libc.signal(11, ctypes.cast(libc.exit, ctypes.c_void_p))  # on SIGSEGV: exit(11), flushing stdio
config, logmath = Config(logfn=os.devnull), LogMath(1.0001)  # both must outlive the model
model = NGramModel(config, logmath, os.path.join(get_model_path(), "en-us", "en-us.lm.bin"))
model.write(sys.argv[1], NGramModel.str_to_type("arpa"))
"""


def stock_arpa(folder: Path) -> Path:
    """Write the stock en-us model as ARPA text into ``folder``; return the file's path."""
    path = folder / "en-us.arpa"
    subprocess.run([sys.executable, "-c", _WRITE_ARPA, str(path)], check=False)
    if not path.exists():
        raise SystemExit(f"pocketsphinx wrote no ARPA file to {path}: is pocketsphinx installed?")
    return path


def read_stock(
    path: Path,
) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, float]]]:
    """Unigram probabilities, backoff weights and bigram probabilities of an ARPA file
    (linear, not log10). Raises SystemExit when the bigram section is incomplete."""
    uni: dict[str, float] = {}
    bow: dict[str, float] = {}
    bi: dict[str, dict[str, float]] = collections.defaultdict(dict)
    declared: dict[int, int] = {}
    section = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("ngram "):
                order, _, count = line[6:].partition("=")
                declared[int(order)] = int(count)
            if line.startswith("\\1-grams"):
                section = 1
                continue
            if line.startswith("\\2-grams"):
                section = 2
                continue
            if line.startswith(("\\3-grams", "\\end")):
                break
            parts = line.split()
            if section == 1 and len(parts) >= 2:
                uni[parts[1]] = 10 ** float(parts[0])
                if len(parts) > 2:
                    bow[parts[1]] = 10 ** float(parts[2])
            elif section == 2 and len(parts) >= 3:
                bi[parts[1]][parts[2]] = 10 ** float(parts[0])
    n_bi = sum(len(row) for row in bi.values())
    if len(uni) != declared.get(1) or n_bi < 0.9999 * declared.get(2, 0):
        raise SystemExit(
            f"{path}: {len(uni)} unigrams and {n_bi} bigrams read, the header declares "
            f"{declared.get(1)} and {declared.get(2)} (pocketsphinx crashed too early?)"
        )
    total = sum(p for w, p in uni.items() if w != "<s>")
    if not 0.9 < total < 1.1:  # a freed LogMath once scaled every log value
        raise SystemExit(f"{path}: unigram probabilities sum to {total:g}, not 1")
    return uni, bow, dict(bi)


def prune(
    uni: dict[str, float], bow: dict[str, float], bi: dict[str, dict[str, float]], factor: float
) -> None:
    """Drop, in place, bigrams below ``factor`` x their backoff estimate."""
    for hist, row in bi.items():
        b = bow.get(hist, 1.0)
        for word in [w for w, p in row.items() if p < factor * b * uni.get(w, 0.0)]:
            del row[word]


def build(words: int = WORDS, factor: float = PRUNE) -> str:
    """The background model's text (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="voicekit-bg-") as tmp:
        uni, bow, bi = read_stock(stock_arpa(Path(tmp)))
    prune(uni, bow, bi, factor)
    pronounced = asr._dictionary()
    ranked = sorted((w for w in uni if _WORD.match(w) and w in pronounced), key=lambda w: -uni[w])
    domain = {w for s in asr.corpus_sentences() for w in asr.words_of(s)}
    domain |= set(asr._extra_vocab())
    vocab = {w for w in (domain | set(ranked[:words])) & set(uni) if w in pronounced}
    vocab.add("</s>")
    out = [
        "# General-English background for the conversation model: pocketsphinx's stock en-us",
        f"# model (en-us.lm.bin in the wheel), restricted to its {words} most common words"
        " that the",
        "# dictionary pronounces plus the words of corpus.txt, slots.txt and extra_vocab.txt;",
        f"# bigrams kept when their probability is at least {factor:g}x their backoff estimate.",
        "# Lines: log10 P(word) word log10 backoff | log10 P(word | history) history word.",
        "# Generated by python -m voicekit.speech.make_background_lm (do not edit).",
        "\\1-grams:",
    ]
    for w in sorted(vocab):
        out.append(f"{math.log10(uni[w]):.4f} {w} {math.log10(bow.get(w, 1.0)):.4f}")
    out.append(f"{-99:.4f} <s> {math.log10(bow.get('<s>', 1.0)):.4f}")
    out.append("\\2-grams:")
    for hist in sorted(vocab | {"<s>"}):
        for w, p in sorted(bi.get(hist, {}).items()):
            if w in vocab:
                out.append(f"{math.log10(p):.4f} {hist} {w}")
    return "\n".join(out) + "\n"


def gzip_bytes(text: str) -> bytes:
    """Deterministic gzip: no file name, time stamp 0, level 9."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(text.encode("utf-8"))
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Command line: write (or ``--check``) the background model file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=WORDS, help=f"default {WORDS}")
    parser.add_argument("--prune", type=float, default=PRUNE, help=f"default {PRUNE:g}")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="default: the shipped file")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    data = gzip_bytes(build(args.words, args.prune))
    if args.check:
        same = args.output.exists() and args.output.read_bytes() == data
        print(f"{args.output}: {'up to date' if same else 'differs'}")
        return 0 if same else 1
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({len(data)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
