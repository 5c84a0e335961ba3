"""ROUGE-1/2/L for summarization with Google's `rouge-score`, on Unicode text, and extractive baselines.

`corpus_rouge(hypotheses, references)` gives the mean F1 over examples (0-100), a seeded bootstrap
confidence interval of each mean, the precision and recall means, and a `signature` of the settings.
The baselines are `lead_sentences` (the first sentences of a source) and `first_words` (its first words),
named "lead-K" and "first-N" for `baseline_summaries`.

Example:
>>> from tflm.metrics.rouge import baseline_summaries, corpus_rouge
>>> sources = ["The cat sat on the mat. It was happy.", "Dogs bark. Cats meow."]
>>> scores = corpus_rouge(baseline_summaries(sources, "lead-1"), ["a cat on a mat", "dogs bark loudly"])
>>> scores["rouge1"], scores["rouge1_ci"], scores["examples"]
(67.27, [54.55, 80.0], 2)
"""

import contextlib
import functools
import importlib.metadata
import re
import unicodedata

import numpy as np
import regex
from nltk.stem import porter
from rouge_score import rouge_scorer, scoring, tokenizers

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


class RougeTokenizer(tokenizers.Tokenizer):
    """rouge-score's tokenization (lowercase, split on non-alphanumerics, Porter stem) for any script.

    Why it exists: rouge-score's `DefaultTokenizer` replaces everything outside `[a-z0-9]` with spaces after
    lowercasing, so non-ASCII letters vanish: "Müller's café" becomes the tokens `m`, `ller`, `s`, `caf`, and
    Greek, Cyrillic or CJK text becomes no tokens at all (every pair then scores 0, even a perfect copy).
    This tokenizer keeps Unicode letters, digits and combining marks (text is NFC-normalized first), splits on
    everything else, `_` included as the default does, and Porter-stems tokens longer than 3 characters with
    the same NLTK stemmer. On ASCII text its tokens are exactly those of `DefaultTokenizer(use_stemmer=True)`.

    Args:
        use_stemmer: bool. Porter-stem tokens longer than 3 characters, as rouge-score does with
            `use_stemmer=True`.
    Example:
    >>> RougeTokenizer().tokenize("Müller's cafés are running")
    ['müller', 's', 'café', 'are', 'run']
    """

    # Runs of letters, numbers and marks; on ASCII exactly rouge-score's [a-z0-9]+ after lowercasing.
    _TOKEN_RE = regex.compile(r"[\p{L}\p{N}\p{M}]+")

    def __init__(self, use_stemmer=True):
        self.use_stemmer = use_stemmer
        self._stemmer = porter.PorterStemmer() if use_stemmer else None
        self._stems = {}

    def tokenize(self, text):
        tokens = self._TOKEN_RE.findall(unicodedata.normalize("NFC", text.lower()))
        if self._stemmer is not None:
            tokens = [self._stem(token) if len(token) > 3 else token for token in tokens]
        return [token for token in tokens if token]

    def _stem(self, token):
        stem = self._stems.get(token)
        if stem is None:
            stem = self._stems[token] = self._stemmer.stem(token)
        return stem


def rouge_scorer_for_corpus():
    """rouge-score's `RougeScorer` for ROUGE-1/2/L with `RougeTokenizer` (stemming on)."""
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=RougeTokenizer(use_stemmer=True))


@contextlib.contextmanager
def _numpy_global_seed(seed):
    """Seed NumPy's global generator inside the block and give the caller's state back afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def corpus_rouge(hypotheses, references, bootstrap_samples=1000, confidence=0.95, seed=0):
    """ROUGE-1/2/L F1 of hypotheses against references, averaged over examples, with bootstrap intervals.

    Each pair is scored by rouge-score's `RougeScorer` with `RougeTokenizer` (Porter stemming, Unicode
    letters kept); an empty hypothesis scores 0. The interval is the `confidence` percentile range of the
    example mean over `bootstrap_samples` resamplings of the examples, from rouge-score's own
    `scoring.BootstrapAggregator`.

    Args:
        hypotheses: list of str, one per reference.
        references: list of str.
        bootstrap_samples: int. Resamplings for the confidence intervals.
        confidence: float in [0, 1]. Coverage of the intervals.
        seed: int. Seed of the resampling: the same seed gives the same intervals.
    Returns:
        A dict: `rouge1`, `rouge2`, `rougeL` (mean F1, percent, 2 decimals); `rouge1_ci`, `rouge2_ci`,
        `rougeL_ci` (`[low, high]`, percent); `precision` and `recall` (dicts of the three means, percent);
        `examples` (the count) and `signature` (the settings, to report next to the figures).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references; they must pair up.")
    if not references:
        raise ValueError("corpus_rouge needs at least one hypothesis/reference pair; got none.")
    scorer = rouge_scorer_for_corpus()
    aggregator = scoring.BootstrapAggregator(confidence_interval=confidence, n_samples=bootstrap_samples)
    per_example = {rouge_type: [] for rouge_type in ROUGE_TYPES}
    for hypothesis, reference in zip(hypotheses, references):
        scores = scorer.score(reference, hypothesis)  # rouge-score's order: (target, prediction)
        aggregator.add_scores(scores)
        for rouge_type in ROUGE_TYPES:
            per_example[rouge_type].append(scores[rouge_type])
    # BootstrapAggregator draws its resamples with np.random.choice from NumPy's global generator and takes
    # no seed, so it is made deterministic by seeding that generator for the call and restoring the caller's
    # state afterwards (not thread-safe with other users of np.random during the call).
    with _numpy_global_seed(seed):
        intervals = aggregator.aggregate()

    def percent(value):
        return round(100 * float(value), 2)

    result = {}
    for rouge_type in ROUGE_TYPES:
        # The aggregator's `mid` is the median of the bootstrap means, not the mean: the mean is taken here.
        result[rouge_type] = percent(np.mean([score.fmeasure for score in per_example[rouge_type]]))
    for rouge_type in ROUGE_TYPES:
        interval = intervals[rouge_type]
        result[f"{rouge_type}_ci"] = [percent(interval.low.fmeasure), percent(interval.high.fmeasure)]
    for measure in ("precision", "recall"):
        result[measure] = {
            rouge_type: percent(np.mean([getattr(score, measure) for score in per_example[rouge_type]]))
            for rouge_type in ROUGE_TYPES
        }
    result["examples"] = len(references)
    result["signature"] = (
        f"rouge-score {importlib.metadata.version('rouge-score')}, F1, porter stemmer, unicode tokenizer, "
        f"bootstrap {bootstrap_samples} @{100 * confidence:g}%, seed {seed}"
    )
    return result


# Sentence splitting for the lead baseline: a boundary is one or more of `.`, `!`, `?` (closing quotes or
# brackets may follow), then whitespace, then an uppercase letter, a digit, an opening quote, or the end.
_BOUNDARY_RE = re.compile(r"[.!?]+[\"'\u201d\u2019\u00bb)\]]*(?=\s+|$)")
_OPENING_QUOTES = "\"'\u201c\u2018\u00ab"
# Words ending in "." that do not end a sentence (compared lowercased, with any leading bracket or quote
# removed). Initialisms ("e.g.", "i.e.", "a.k.a.", "A.D.", "U.S.") are recognized by their pattern. A single letter
# and a period does end a sentence: in software descriptions it is mostly a language ("written in C. It ..."),
# far more often than an initial ("J. Smith").
ABBREVIATIONS = frozenset(
    "etc. vs. cf. approx. incl. esp. viz. al. resp. ca. no. nos. vol. fig. ed. eds. "
    "mr. mrs. ms. dr. prof. st. jr. sr. inc. ltd. co. corp. jan. feb. mar. apr. jun. jul. aug. sep. sept. "
    "oct. nov. dec.".split()
)
_INITIALISM_RE = re.compile(r"(?:[^\W\d_]\.){2,}")


def _ends_with_abbreviation(text, period_index):
    """Whether the "." at `period_index` closes an abbreviation or initialism rather than a sentence."""
    start = period_index
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:period_index + 1].lstrip("([{" + _OPENING_QUOTES)
    return word.lower() in ABBREVIATIONS or _INITIALISM_RE.fullmatch(word) is not None


def split_sentences(text):
    """Splits text into sentences with a simple rule, for extractive baselines.

    A sentence ends after `.`, `!` or `?` (a run of them, and any closing quotes or brackets) followed by
    whitespace and then an uppercase letter, a digit or an opening quote, or by the end of the text. A single
    `.` ending a common abbreviation ("etc.", "vs.", "Mr.", ... in `ABBREVIATIONS`), an initialism ("e.g.",
    "i.e.", "A.D.", "U.S.") or an initial ("J.") does not end a sentence; nor does a `.` inside a token
    ("3.5", "example.org"), which no whitespace follows. A sentence that starts lowercase (such as a package
    name) is not split from the one before it.

    Args:
        text: str.
    Returns:
        A list of str, the sentences with surrounding whitespace removed (empty for blank text).
    Example:
    >>> split_sentences("Tools, e.g. grep. Version 3.5 works! Ask Mr. Smith.")
    ['Tools, e.g. grep.', 'Version 3.5 works!', 'Ask Mr. Smith.']
    """
    sentences = []
    start = 0
    for match in _BOUNDARY_RE.finditer(text):
        rest = text[match.end():].lstrip()
        if rest and not (rest[0].isupper() or rest[0].isdigit() or rest[0] in _OPENING_QUOTES):
            continue
        punctuation = match.group().rstrip("\"'\u201d\u2019\u00bb)]")
        if punctuation == "." and _ends_with_abbreviation(text, match.start()):
            continue
        sentence = text[start:match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def lead_sentences(text, n=1):
    """The first `n` sentences of `text` (see `split_sentences`), joined by a space.

    Example:
    >>> lead_sentences("GNU a2ps converts files, e.g. manual pages. It prints them.")
    'GNU a2ps converts files, e.g. manual pages.'
    """
    if n < 1:
        raise ValueError(f"lead_sentences needs n >= 1 sentences; got n={n}.")
    return " ".join(split_sentences(text)[:n])


def first_words(text, n=10):
    """The first `n` whitespace-separated words of `text`, joined by a space.

    Example:
    >>> first_words("one two  three four", n=3)
    'one two three'
    """
    if n < 1:
        raise ValueError(f"first_words needs n >= 1 words; got n={n}.")
    return " ".join(text.split()[:n])


BASELINES = {
    "lead-1": functools.partial(lead_sentences, n=1),
    "first-10": functools.partial(first_words, n=10),
}
_BASELINE_RE = re.compile(r"(lead|first)-([1-9][0-9]*)")


def baseline_summaries(sources, name):
    """Summaries of `sources` by the extractive baseline `name`.

    Args:
        sources: list of str.
        name: str. "lead-K" (the first K sentences, `lead_sentences`) or "first-N" (the first N words,
            `first_words`), for any positive K or N; `BASELINES` holds "lead-1" and "first-10".
    Returns:
        A list of str, one summary per source.
    """
    if name in BASELINES:
        summarize = BASELINES[name]
    else:
        match = _BASELINE_RE.fullmatch(name)
        if match is None:
            raise ValueError(
                f"Unknown baseline {name!r}: use 'lead-K' (first K sentences) or 'first-N' (first N words) "
                f"with K, N >= 1, e.g. {', '.join(repr(known) for known in BASELINES)}."
            )
        kind, count = match.group(1), int(match.group(2))
        summarize = functools.partial(lead_sentences if kind == "lead" else first_words, n=count)
    return [summarize(source) for source in sources]
