"""Streaming speech recognition with pocketsphinx and a conversation language model.

Speech layer: pocketsphinx (its en-us acoustic model and dictionary ship in the
wheel), numpy; no asyncio, no sockets.

The stock pocketsphinx language model recognises synthetic (espeak-ng) speech poorly. The
stand-in agent instead builds a trigram model from a conversation corpus written for it
(``data/corpus.txt``, templates expanded with ``data/slots.txt``), with absolute-discounting
backoff, and a small unigram mass for everyday words outside the corpus
(``data/extra_vocab.txt``) so they stay possible. Key terms (``input.keyterms``) are added
to the dictionary (pronunciation from the stock dictionary, or spelled from letters) and
to the model as extra sentences, which raises their probability — a per-word boost the
stock model cannot give.

Beyond the scripted user's voice and the corpus's sentences: a general-English bigram
model is interpolated in (``BACKGROUND_WEIGHT`` of it; ``data/background_bigrams.txt.gz``,
the stock model's bigrams over its 2,000 most common words and the corpus's, pruned), so
everyday words and word pairs the corpus lacks stay likely; each dictionary word also gets
the pronunciations espeak-ng itself uses in a few English accents (``LEXICON_VOICES``, IPA
mapped to the acoustic model's phones), so key terms get espeak-ng's pronunciation besides
the stock one or a letter-to-sound guess. These and ``EXTRA_WORD_COUNT``,
``WORD_INSERTION``, ``TOP_GAUSSIANS`` were chosen on the tuning sentences and voices of
``benchmarks/bench_asr.py``, which measures word accuracy on held-out sentences, voices and
speaking rates (mean over 24 held-out voice x rate cells 0.24 -> 0.30; the scripted user
unchanged at ~0.80), at a decode real-time factor of about 0.12 on one core (was 0.07).

The recogniser dithers its input: synthetic users and file sources send digital silence,
exact zeros, and without dither a ±1 LSB difference in the audio — another CPU's resampler,
say — moved held-out word accuracy by up to 0.2. The dither is its own, not pocketsphinx's
(whose generator is global to the process, so a decoder's words depended on what the
process's other decoders decoded meanwhile, and a busy machine changed a session's words):
+1 LSB on a quarter of the samples, as pocketsphinx does, drawn from a fixed table indexed by
the sample's position in the utterance. An utterance's words are a function of its audio and
of what its own recogniser heard before (cepstral mean normalisation carries over), whatever
else the process does and however the audio is chunked.

Threading: a :class:`Recognizer` (one pocketsphinx decoder, ~90 MB, 0.15 s to start once
its process has the model; the process's first one ~0.3 s when the model is in the cache
folder, ~1.3 s when it has to be built) belongs to one session and is used from one thread
at a time; :func:`language_model` results are cached on disk (:func:`cache_dir`) and shared
(read-only).
"""

# ruff: noqa: RUF001  (IPA letters in the espeak-ng phone table are meant)

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import gzip
import itertools
import math
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import AudioError

__all__ = [
    "Recognizer",
    "build_arpa",
    "corpus_sentences",
    "language_model",
    "word_errors",
    "words_of",
]

DATA = Path(__file__).with_name("data")
DISCOUNT = 0.6
EXTRA_WORD_COUNT = 0.5  # pseudo-count of an out-of-corpus everyday word (was 0.1)
KEYTERM_REPEATS = 6
LANGUAGE_WEIGHT = 6.5  # chosen on eval.txt under input dither: 9.5 overfit the corpus
LEXICON_VOICES: tuple[str, ...] = ("en-us", "en", "en-gb-x-gbclan", "en-us-nyc")
"""espeak-ng accents whose pronunciations join the dictionary (those of the tuning voices of
``benchmarks/bench_asr.py``; empty: the stock dictionary alone)."""
WORD_INSERTION = 0.2  # pocketsphinx -wip (its default 0.65): fewer short filler words
TOP_GAUSSIANS = 8  # pocketsphinx -topn (its default 4)
BACKGROUND_WEIGHT = 0.1  # share of the general-English bigrams (data/background_bigrams.txt.gz)
DITHER_SEED = 7  # input dither: digital silence (exact zeros) otherwise skews the features
DITHER_PERIOD = 65521  # samples of the dither table (a prime: no alignment with 10 ms frames)
_WORD = re.compile(r"[a-z][a-z']*")
_LETTERS = {
    "a": "EY",
    "b": "B IY",
    "c": "S IY",
    "d": "D IY",
    "e": "IY",
    "f": "EH F",
    "g": "JH IY",
    "h": "EY CH",
    "i": "AY",
    "j": "JH EY",
    "k": "K EY",
    "l": "EH L",
    "m": "EH M",
    "n": "EH N",
    "o": "OW",
    "p": "P IY",
    "q": "K Y UW",
    "r": "AA R",
    "s": "EH S",
    "t": "T IY",
    "u": "Y UW",
    "v": "V IY",
    "w": "D AH B AH L Y UW",
    "x": "EH K S",
    "y": "W AY",
    "z": "Z IY",
}
_GRAPHEMES = [  # a rough letter-to-sound fallback for words missing from the dictionary
    ("tion", "SH AH N"),
    ("ph", "F"),
    ("sh", "SH"),
    ("ch", "CH"),
    ("th", "TH"),
    ("ee", "IY"),
    ("oo", "UW"),
    ("ou", "AW"),
    ("ai", "EY"),
    ("ay", "EY"),
    ("ea", "IY"),
    ("ck", "K"),
    ("ng", "NG"),
    ("qu", "K W"),
    ("a", "AE"),
    ("b", "B"),
    ("c", "K"),
    ("d", "D"),
    ("e", "EH"),
    ("f", "F"),
    ("g", "G"),
    ("h", "HH"),
    ("i", "IH"),
    ("j", "JH"),
    ("k", "K"),
    ("l", "L"),
    ("m", "M"),
    ("n", "N"),
    ("o", "AA"),
    ("p", "P"),
    ("r", "R"),
    ("s", "S"),
    ("t", "T"),
    ("u", "AH"),
    ("v", "V"),
    ("w", "W"),
    ("x", "K S"),
    ("y", "IY"),
    ("z", "Z"),
]


def _model_dir() -> Path:
    try:
        from pocketsphinx import get_model_path
    except ImportError as exc:
        raise AudioError(
            f"pocketsphinx is not installed ({exc}); run 'pip install pocketsphinx'"
        ) from None
    return Path(get_model_path())


def words_of(text: str) -> list[str]:
    """Lower-case words of a text (letters and apostrophes)."""
    return _WORD.findall(text.lower())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edit distance, reference word count); word accuracy is ``1 - errors / words``."""
    ref, hyp = words_of(reference), words_of(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            cur = min(row[j] + 1, row[j - 1] + 1, prev + (ref[i - 1] != hyp[j - 1]))
            prev, row[j] = row[j], cur
    return row[len(hyp)], len(ref)


@functools.cache
def corpus_sentences() -> tuple[str, ...]:
    """The corpus with its templates expanded (one sentence a tuple entry)."""
    slots: dict[str, list[str]] = {}
    for line in (DATA / "slots.txt").read_text().splitlines():
        if ":" in line:
            name, values = line.split(":", 1)
            slots[name.strip()] = _slot_values(name.strip(), values)
    out: list[str] = []
    for line in (DATA / "corpus.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names = re.findall(r"\{(\w+)\}", line)
        if not names:
            out.append(line)
            continue
        for combo in itertools.product(*(slots[n] for n in names)):
            text = line
            for name, value in zip(names, combo, strict=True):
                text = text.replace("{" + name + "}", value, 1)
            out.append(text)
    return tuple(out)


def _slot_values(name: str, values: str) -> list[str]:
    return [v.strip() for v in values.split("|") if v.strip()]


@functools.cache
def _dictionary() -> dict[str, str]:
    out: dict[str, str] = {}
    with (_model_dir() / "en-us" / "cmudict-en-us.dict").open(encoding="utf-8") as f:
        for line in f:
            word, _, phones = line.strip().partition(" ")
            if word and "(" not in word:
                out[word] = phones.strip()
    return out


def pronounce(word: str) -> str:
    """Phones of a word: from the stock dictionary, else a letter-to-sound guess."""
    word = word.lower()
    known = _dictionary().get(word)
    if known:
        return known
    if len(word) <= 3 and word.isalpha():
        return " ".join(_LETTERS[c] for c in word)
    phones, i = [], 0
    letters = re.sub(r"[^a-z]", "", word)
    while i < len(letters):
        for graph, ph in _GRAPHEMES:
            if letters.startswith(graph, i):
                phones.append(ph)
                i += len(graph)
                break
        else:
            i += 1
    return " ".join(phones) or "AH"


_IPA = sorted(
    (
        pair.split("=")
        for pair in (  # noqa: SIM905
            "aɪ=AY aʊ=AW eɪ=EY oʊ=OW əʊ=OW ɔɪ=OY eə=EH ɪə=IH ʊə=UH iə=IY_AH tʃ=CH dʒ=JH ɑ=AA æ=AE "
            "ʌ=AH ə=AH ɐ=AH ɚ=ER ɜ=ER ɝ=ER ɛ=EH e=EH ɪ=IH ᵻ=IH i=IY ɒ=AA ɔ=AO o=OW ʊ=UH u=UW ʉ=UW "
            "a=AE p=P b=B t=T d=D k=K g=G ɡ=G f=F v=V θ=TH ð=DH s=S z=Z ʃ=SH ʒ=ZH h=HH m=M n=N "
            "ŋ=NG l=L ɫ=L ɹ=R r=R ɾ=T j=Y w=W ʍ=W ʔ=T x=K"
        ).split()
    ),
    key=lambda kv: -len(kv[0]),
)  # espeak-ng's English IPA -> the acoustic model's ARPAbet phones (longest match first)
_SYLLABIC = "\u0329"  # combining vertical line below: a syllabic consonant


def ipa_to_phones(ipa: str) -> str:
    """ARPAbet phones of an espeak-ng IPA string (stress and length marks dropped)."""
    phones, i = [], 0
    while i < len(ipa):
        for sym, ph in _IPA:
            if ipa.startswith(sym, i):
                if ph in ("L", "N") and ipa.startswith(_SYLLABIC, i + len(sym)):
                    phones.append("AH")  # a syllabic l or n
                phones.append(ph.replace("_", " "))
                i += len(sym)
                break
        else:
            i += 1  # stress, length, syllable marks and anything unknown
    return " ".join(phones)


@functools.cache
def _espeak_pronunciations(words: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Each word's pronunciations as espeak-ng says it in the ``LEXICON_VOICES`` accents."""
    from voicekit.speech.tts import phonemize

    out: dict[str, list[str]] = {w: [] for w in words}
    for voice in LEXICON_VOICES:
        for word, ipa in phonemize(list(words), voice).items():
            phones = ipa_to_phones(ipa)
            if phones and phones not in out[word]:
                out[word].append(phones)
    return {w: tuple(p) for w, p in out.items()}


def dictionary_lines(words: Iterable[str]) -> str:
    """Pocketsphinx dictionary text: each word's stock pronunciation (or a letter-to-sound
    guess) and, when ``LEXICON_VOICES`` is set, the differing ones espeak-ng uses."""
    words = sorted(set(words))
    alternates = _espeak_pronunciations(tuple(words)) if LEXICON_VOICES else {}
    lines = []
    for w in words:
        prons = [pronounce(w)]
        for alt in alternates.get(w, ()):
            if alt not in prons:
                prons.append(alt)
        lines += [f"{w if k == 0 else f'{w}({k + 1})'} {p}\n" for k, p in enumerate(prons)]
    return "".join(lines)


@dataclasses.dataclass(frozen=True)
class Background:
    """A general-English bigram model to mix into the conversation model.

    Attributes
    ----------
    unigrams : dict of str to float
        P(word).
    backoffs : dict of str to float
        Backoff weight of each history word.
    bigrams : dict of str to dict of str to float
        P(word | history) for the bigrams the model lists.
    """

    unigrams: dict[str, float]
    backoffs: dict[str, float]
    bigrams: dict[str, dict[str, float]]

    def prob(self, word: str, history: str) -> float:
        """P(word | history), backing off to the unigram."""
        row = self.bigrams.get(history)
        if row is not None and word in row:
            return row[word]
        return self.backoffs.get(history, 1.0) * self.unigrams.get(word, 0.0)


@functools.cache
def background() -> Background:
    """The stock model's bigrams over everyday words (``data/background_bigrams.txt.gz``)."""
    uni: dict[str, float] = {}
    bow: dict[str, float] = {}
    bi: dict[str, dict[str, float]] = collections.defaultdict(dict)
    section = ""
    with gzip.open(DATA / "background_bigrams.txt.gz", "rt", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            if line.startswith("\\"):
                section = line.strip()
                continue
            parts = line.split()
            if section == "\\1-grams:":
                uni[parts[1]], bow[parts[1]] = 10 ** float(parts[0]), 10 ** float(parts[2])
            elif section == "\\2-grams:":
                bi[parts[1]][parts[2]] = 10 ** float(parts[0])
    uni.pop("<s>", None)
    return Background(uni, bow, dict(bi))


def build_arpa(
    sentences: Iterable[str],
    extra_words: Iterable[str] = (),
    discount: float = DISCOUNT,
    background: Background | None = None,
    background_weight: float = 0.0,
) -> str:
    """An ARPA trigram model (absolute discounting with backoff) from sentences.

    Parameters
    ----------
    sentences : iterable of str
        Training text, one utterance each.
    extra_words : iterable of str
        Words given a small unigram probability although they are not in the text.
    discount : float
        Absolute discount D in (0, 1).
    background : Background, optional
        A general bigram model, linearly interpolated into the unigrams, bigrams and
        trigrams with ``background_weight`` (its words join the vocabulary).
    background_weight : float
        The background's share, in [0, 1).
    """
    counts: list[collections.Counter[tuple[str, ...]]] = [collections.Counter() for _ in range(3)]
    for sentence in sentences:
        toks = ["<s>", *words_of(sentence), "</s>"]
        for n in range(3):
            for i in range(len(toks) - n):
                gram = tuple(toks[i : i + n + 1])
                if n == 0 and gram == ("<s>",):
                    continue
                counts[n][gram] += 1
    vocab = {g[0] for g in counts[0]} | {"<s>"}
    extra = sorted({w for w in extra_words if w not in vocab})
    total = sum(counts[0].values()) + EXTRA_WORD_COUNT * len(extra)
    uni: dict[tuple[str, ...], float] = {g: c / total for g, c in counts[0].items()}
    for w in extra:
        uni[(w,)] = EXTRA_WORD_COUNT / total
    probs: list[dict[tuple[str, ...], float]] = [uni, {}, {}]
    bows: list[dict[tuple[str, ...], float]] = [{}, {}, {}]

    def lower_prob(gram: tuple[str, ...]) -> float:
        """P of gram[1:] under the lower orders, with backoff."""
        tail = gram[1:]
        n = len(tail) - 1
        if tail in probs[n]:
            return probs[n][tail]
        return bows[n - 1].get(tail[:-1], 1.0) * lower_prob(tail) if n > 0 else 1e-9

    for n in (1, 2):
        by_hist: dict[tuple[str, ...], list[tuple[tuple[str, ...], int]]] = collections.defaultdict(
            list
        )
        for gram, c in counts[n].items():
            by_hist[gram[:-1]].append((gram, c))
        for hist, grams in by_hist.items():
            n_hist = sum(c for _, c in grams)
            for gram, c in grams:
                probs[n][gram] = (c - discount) / n_hist
            left = discount * len(grams) / n_hist
            seen_lower = sum(lower_prob(g) for g, _ in grams)
            bows[n - 1][hist] = left / max(1e-9, 1.0 - seen_lower)
    if background is not None and background_weight > 0:
        probs, bows = _interpolate(probs, bows, background, background_weight)
    lines = ["\\data\\"]
    lines += [f"ngram {n + 1}={len(probs[n]) + (1 if n == 0 else 0)}" for n in range(3)]
    for n in range(3):
        lines += ["", f"\\{n + 1}-grams:"]
        if n == 0:
            lines.append(f"-99.0000 <s> {math.log10(bows[0].get(('<s>',), 1.0)):.4f}")
        for gram, p in sorted(probs[n].items()):
            entry = f"{math.log10(p):.4f} {' '.join(gram)}"
            if n < 2 and gram in bows[n]:
                entry += f" {math.log10(bows[n][gram]):.4f}"
            lines.append(entry)
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


_Grams = list[dict[tuple[str, ...], float]]


def _interpolate(
    probs: _Grams, bows: _Grams, bg: Background, weight: float
) -> tuple[_Grams, _Grams]:
    """Mix a background bigram model into a trigram model: P = (1 - w) P_conv + w P_bg for
    every n-gram either lists (P_bg of a trigram is its bigram), new backoff weights so that
    each history still sums to one."""
    lam = 1.0 - weight
    dom_uni = {g[0]: p for g, p in probs[0].items()}
    vocab = set(dom_uni) | set(bg.unigrams)
    z = sum(bg.unigrams.get(w, 0.0) for w in sorted(vocab))
    uni = {
        w: lam * dom_uni.get(w, 0.0) + weight * bg.unigrams.get(w, 0.0) / z for w in sorted(vocab)
    }

    def p_dom(word: str, hist: str) -> float:
        p = probs[1].get((hist, word))
        return p if p is not None else bows[0].get((hist,), 1.0) * dom_uni.get(word, 0.0)

    followers: dict[str, set[str]] = collections.defaultdict(set)
    for h, w in probs[1]:
        followers[h].add(w)
    for h, row in bg.bigrams.items():
        if h in vocab or h == "<s>":
            followers[h].update(w for w in row if w in vocab)
    bi: dict[tuple[str, ...], float] = {}
    bow1: dict[tuple[str, ...], float] = {}
    for h, words in sorted(followers.items()):
        mass = lower = 0.0
        for w in sorted(words):  # sorted: float sums the same in every process
            p = lam * p_dom(w, h) + weight * bg.prob(w, h)
            if p > 0:
                bi[(h, w)] = p
                mass, lower = mass + p, lower + uni[w]
        bow1[(h,)] = max(1e-6, 1.0 - mass) / max(1e-6, 1.0 - lower)
    tri: dict[tuple[str, ...], float] = {}
    bow2: dict[tuple[str, ...], float] = {}
    by_hist: dict[tuple[str, ...], list[str]] = collections.defaultdict(list)
    for g in probs[2]:
        by_hist[g[:2]].append(g[2])
    for hist, nexts in by_hist.items():
        mass = lower = 0.0
        for w in nexts:
            p = lam * probs[2][(*hist, w)] + weight * bg.prob(w, hist[1])
            tri[(*hist, w)] = p
            low = bi.get((hist[1], w))
            mass += p
            lower += low if low is not None else bow1.get(hist[1:], 1.0) * uni[w]
        bow2[hist] = max(1e-6, 1.0 - mass) / max(1e-6, 1.0 - lower)
    unigrams: dict[tuple[str, ...], float] = {(w,): max(p, 1e-12) for w, p in uni.items()}
    return [unigrams, bi, tri], [bow1, bow2, {}]


def _extra_vocab() -> list[str]:
    text = (DATA / "extra_vocab.txt").read_text()
    return [w for line in text.splitlines() if not line.startswith("#") for w in words_of(line)]


_LM_LOCK = threading.Lock()
_LM_CACHE: dict[tuple[str, ...], tuple[Path, Path]] = {}


def language_model(keyterms: Sequence[str] = ()) -> tuple[Path, Path]:
    """Paths of the ARPA model and dictionary for a set of key terms (cached, shared).

    Building one takes ~1 s of CPU (the background mix) and ~15 MB on disk, so models are
    kept in a per-user cache folder (:func:`cache_dir`), keyed by everything they are built
    from (this module's source, the data files, the key terms, the package versions): a
    process opens a model another process built in ~0.1 s. At most ``LM_CACHE_KEEP`` models
    are kept (least recently used go); without a writable cache folder they are built in a
    temporary folder removed at exit.
    """
    key = tuple(sorted({k.strip().lower() for k in keyterms if k.strip()}))
    with _LM_LOCK:
        known = _LM_CACHE.get(key)
        if known is not None and all(p.exists() for p in known):
            with contextlib.suppress(OSError):
                os.utime(known[0].parent)  # in use: kept by other processes' pruning
            return known  # (pruning in another process may have removed it: build again)
        sentences = list(corpus_sentences())
        for term in key:
            sentences += [term] * KEYTERM_REPEATS
            sentences += [f"{prefix} {term}" for prefix in ("i want", "it is", "about", "the")]
        folder = _cached_model_folder(sentences)
        if not ((folder / "conversation.lm").exists() and (folder / "conversation.dict").exists()):
            folder = _build_model(sentences, folder)
        lm_path, dict_path = folder / "conversation.lm", folder / "conversation.dict"
        _LM_CACHE[key] = (lm_path, dict_path)
        return lm_path, dict_path


LM_CACHE_KEEP = 24  # built models kept in the cache folder (~15 MB each)
LM_IN_USE_S = 3600.0  # ...and any used in the last hour, whatever their number


def cache_dir() -> Path:
    """voicekit's per-user cache folder: ``$VOICEKIT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/voicekit``, else ``~/.cache/voicekit``."""
    explicit = os.environ.get("VOICEKIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "voicekit"


def _model_key(sentences: Sequence[str]) -> str:
    """A digest of everything a built model depends on."""
    import hashlib
    from importlib import metadata

    digest = hashlib.sha256()
    for part in (Path(__file__).read_bytes(), (DATA / "background_bigrams.txt.gz").read_bytes()):
        digest.update(hashlib.sha256(part).digest())
    for name in ("voicekit", "pocketsphinx", "espeakng-loader"):
        try:
            digest.update(f"{name}={metadata.version(name)};".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=?;".encode())
    digest.update("\n".join(sentences).encode())
    digest.update("\n".join(_extra_vocab()).encode())
    return digest.hexdigest()[:24]


def _cached_model_folder(sentences: Sequence[str]) -> Path:
    """The folder of the model for ``sentences``: in the cache (marked as used now), or a
    temporary one when the cache folder cannot be written."""
    root = cache_dir() / "lm"
    folder = root / _model_key(sentences)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            os.utime(folder)  # recently used: kept by the pruning
        return folder
    except OSError:
        return _temporary_folder()


def _temporary_folder() -> Path:
    import atexit
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="voicekit-lm-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _build_model(sentences: Sequence[str], folder: Path) -> Path:
    """Write the model and dictionary into ``folder``, atomically (built beside it and
    renamed into place: processes building the same model at once do not clash); returns
    the folder they are in (a temporary one when ``folder``'s parent is not writable)."""
    import shutil

    bg = background() if BACKGROUND_WEIGHT > 0 else None
    arpa = build_arpa(sentences, _extra_vocab(), DISCOUNT, bg, BACKGROUND_WEIGHT)
    words = {w for s in sentences for w in words_of(s)} | set(_extra_vocab())
    words |= set(bg.unigrams) - {"</s>"} if bg is not None else set()
    temporary = folder.name.startswith("voicekit-lm-")
    try:
        staging = folder if temporary else Path(tempfile.mkdtemp(".building", ".", folder.parent))
        (staging / "conversation.lm").write_text(arpa, encoding="utf-8")
        (staging / "conversation.dict").write_text(dictionary_lines(words), encoding="utf-8")
    except OSError:  # the cache folder is full or read-only: a temporary folder instead
        if temporary:
            raise
        return _build_model(sentences, _temporary_folder())
    if temporary:
        return folder
    try:
        os.replace(staging, folder)
    except OSError:  # another process put the same model there first
        shutil.rmtree(staging, ignore_errors=True)
    _prune(folder.parent, keep=folder)
    return folder


def _prune(root: Path, keep: Path) -> None:
    """Remove the least recently used models beyond ``LM_CACHE_KEEP`` (and stale
    half-built folders)."""
    import shutil
    import time

    try:
        entries = [p for p in root.iterdir() if p.is_dir()]
        now = time.time()
        for p in entries:
            if p.name.endswith(".building") and now - p.stat().st_mtime > 600:
                shutil.rmtree(p, ignore_errors=True)
        models = sorted(
            (p for p in entries if not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    except OSError:
        return
    for p in models[LM_CACHE_KEEP:]:
        # a model used in the last LM_IN_USE_S may be opened again by a running process
        with contextlib.suppress(OSError):  # gone already: pruned by another process
            if p != keep and now - p.stat().st_mtime > LM_IN_USE_S:
                shutil.rmtree(p, ignore_errors=True)


class Recognizer:
    """One streaming recogniser (16 kHz int16 PCM in, text out).

    Parameters
    ----------
    keyterms : sequence of str
        Words or names to favour.
    stock_model : bool
        Use pocketsphinx's stock language model instead (for comparisons).
    """

    def __init__(self, keyterms: Sequence[str] = (), stock_model: bool = False) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise AudioError(
                f"pocketsphinx is not installed ({exc}); run 'pip install pocketsphinx'"
            ) from None
        self._decoder_cls: Any = Decoder
        self.stock_model = stock_model
        self.keyterms: tuple[str, ...] = tuple(keyterms)
        self._pending: tuple[str, ...] | None = None
        self._active = False
        self._position = 0  # samples of the current utterance so far (the dither's index)
        self._decoder = self._make_decoder(self.keyterms)

    def _make_decoder(self, keyterms: Sequence[str]) -> Any:
        if self.stock_model:
            return self._decoder_cls(logfn=os.devnull)
        lm, dic = language_model(keyterms)
        return self._decoder_cls(
            lm=str(lm),
            dict=str(dic),
            logfn=os.devnull,
            lw=LANGUAGE_WEIGHT,
            wip=WORD_INSERTION,
            topn=TOP_GAUSSIANS,
            samprate=16000,
            dither=False,  # see _dithered: pocketsphinx's generator is shared by the process
        )

    def _dithered(self, pcm16: bytes) -> bytes:
        """``pcm16`` with the dither at this utterance's position added (+1 LSB, saturating)."""
        x = np.frombuffer(pcm16, np.int16)
        n = len(x)
        if n == 0:
            return pcm16
        table = _dither_table()
        start = self._position % DITHER_PERIOD
        self._position += n
        idx = np.arange(start, start + n) % DITHER_PERIOD if start + n > DITHER_PERIOD else None
        noise = table[idx] if idx is not None else table[start : start + n]
        out = x + noise
        out[(x == 32767) & noise.astype(bool)] = 32767  # +1 on the top sample would wrap
        return bytes(out.tobytes())

    def set_keyterms(self, keyterms: Sequence[str]) -> None:
        """Use the model for these key terms from the next utterance on (~0.3 s to load)."""
        keyterms = tuple(keyterms)
        if self.stock_model or keyterms == self.keyterms:
            return
        if self._active:
            self._pending = keyterms
            return
        self._decoder = self._make_decoder(keyterms)
        self.keyterms = keyterms

    def start(self) -> None:
        """Begin an utterance."""
        if self._active:
            self._decoder.end_utt()
            self._active = False
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.set_keyterms(pending)
        self._decoder.start_utt()
        self._active = True
        self._position = 0

    def feed(self, pcm16: bytes) -> str | None:
        """Feed 16 kHz PCM16 bytes; returns the partial transcript (None before a word)."""
        if not self._active:
            self.start()
        self._decoder.process_raw(self._dithered(pcm16), False, False)
        hyp = self._decoder.hyp()
        return _clean(hyp.hypstr) if hyp is not None and hyp.hypstr else None

    def finish(self) -> str:
        """End the utterance; returns its final transcript ("" if nothing was heard)."""
        if not self._active:
            return ""
        self._decoder.end_utt()
        self._active = False
        hyp = self._decoder.hyp()
        return _clean(hyp.hypstr) if hyp is not None else ""

    def close(self) -> None:
        """Nothing to release here (the decoder goes with the object); the interface of
        :class:`~voicekit.speech.asr_pool.RemoteRecognizer`."""

    def transcribe(self, pcm16: bytes) -> str:
        """Recognise one whole utterance."""
        self.start()
        self._decoder.process_raw(self._dithered(pcm16), False, True)
        return self.finish()


@functools.cache
def _dither_table() -> Any:
    """``DITHER_PERIOD`` int16 samples, 1 with probability 1/4 and else 0 (fixed seed)."""
    rng = np.random.default_rng(DITHER_SEED)
    table = (rng.random(DITHER_PERIOD) < 0.25).astype(np.int16)
    table.flags.writeable = False
    return table


def _clean(text: str) -> str:
    return " ".join(w for w in text.split() if not w.startswith(("<", "[", "+")))
