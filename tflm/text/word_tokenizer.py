"""`WordTokenizer`: one id per word, words split as GloVe's vocabulary expects (lower-cased, Penn-Treebank-like).

GloVe 6B (and most pretrained word vectors) were trained on lower-cased text tokenized by Stanford's PTB
tokenizer: punctuation is a token of its own, clitics are split off ("don't" -> "do", "n't"; "it's" -> "it",
"'s"), while abbreviations ("u.s.", "p.m.", "mr."), numbers ("1,000", "3.5", "10:30") and hyphenated words
("well-known") stay whole. `split_words` approximates that with `tf.strings` regular expressions (RE2, so it runs
in any graph and in TF Serving), in this order:

1. Lower-case (Unicode), turn curly quotes into `'` and `"`, and mend the "can 't" of some pre-tokenized
   corpora (TREC) into "can't".
2. Put spaces around `... -- , ; : ! ? ( ) [ ] { } " $ % #`, except a comma or colon between two digits.
3. Split on whitespace, then per word: a quote around a word or after it is split off (`'hello'` ->
   `'`, `hello`, `'`; `dogs'` -> `dogs`, `'`).
4. A final period is split off, unless the word is letters with periods (`u.s.`, `j.`) or a common abbreviation
   (`ABBREVIATIONS`: `mr.`, `inc.`, `etc.`, ...). As in PTB, a sentence that ends with one keeps a single period.
5. `n't` and the clitics `'s 're 've 'll 'd 'm` are split off (`can't` -> `ca`, `n't`; `won't` -> `wo`, `n't`).

Known differences from the Stanford tokenizer: no `` `` ''`` quote conversion (GloVe has `"` too, as its 9th most
frequent word), a comma in "1,2,3" is split after the first number, and HTML entities or emoticons are not
special-cased.
"""

import collections

import tensorflow as tf

from tflm.text.special_tokens import SPECIAL_TOKENS, UNK_ID
from tflm.text.tokenizer import Tokenizer

# Abbreviations that keep their final period (all in GloVe 6B's vocabulary with it).
ABBREVIATIONS = (
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "inc", "ltd", "co", "corp", "bros", "vs", "etc",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "gen", "gov", "sen", "rep", "rev", "lt", "col", "sgt", "capt", "pp",
)
_DIGIT_COMMA = "\x01"  # stands for a digit separator (",", ":") while punctuation is split off
_DIGIT_COLON = "\x02"
_SPLIT_OFF = r"(\.\.\.|--|[,;:!?()\[\]{}\"$%#])"
_KEEPS_PERIOD = r"\.+|(\pL\.)+|(" + "|".join(ABBREVIATIONS) + r")\."


def split_words(text):
    """Splits text into lower-cased, GloVe-style words (see the module docstring for the rules).

    Args:
        text: string `(batch_size,)`.
    Returns:
        A ragged string tensor `(batch_size, None)`.
    Example:
    >>> split_words(tf.constant(["Don't stop, U.S. Army!"])).to_list()
    [[b'do', b"n't", b'stop', b',', b'u.s.', b'army', b'!']]
    """
    text = tf.strings.lower(tf.convert_to_tensor(text, dtype=tf.string), encoding="utf-8")
    text = tf.strings.regex_replace(text, "[\u2018\u2019\u201a\u2032]", "'")
    text = tf.strings.regex_replace(text, "[\u201c\u201d\u201e\u2033]", '"')
    text = tf.strings.regex_replace(text, r"(\pL)n 't(\s|$)", r"\1n't\2")  # pre-tokenized "can 't" (TREC)
    for _ in range(2):  # twice: "1,000,000" protects "1,0" then "0,0"
        text = tf.strings.regex_replace(text, r"(\d),(\d)", r"\1" + _DIGIT_COMMA + r"\2")
        text = tf.strings.regex_replace(text, r"(\d):(\d)", r"\1" + _DIGIT_COLON + r"\2")
    text = tf.strings.regex_replace(text, _SPLIT_OFF, r" \1 ")
    text = tf.strings.regex_replace(text, _DIGIT_COMMA, ",")
    text = tf.strings.regex_replace(text, _DIGIT_COLON, ":")
    words = tf.strings.split(text)  # (batch, words)
    words = _resplit(words, _split_quotes)
    words = _resplit(words, _split_period)
    return _resplit(words, _split_clitics)


def count_words(texts, batch_size=1024):
    """Counts the words (`split_words`) of texts.

    Args:
        texts: iterable of str.
        batch_size: int. Texts split per TensorFlow call.
    Returns:
        A `collections.Counter` {word: count}.
    """
    counts = collections.Counter()
    batch = []

    def flush():
        words = split_words(tf.constant(batch, dtype=tf.string)).flat_values.numpy()
        counts.update(word.decode("utf-8", errors="replace") for word in words)
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return counts


def _resplit(words, rewrite):
    """Applies `rewrite` (which may insert spaces) to every word of a ragged `(batch, words)` tensor and splits
    the results again: returns `(batch, words)`."""
    pieces = tf.strings.split(rewrite(words.flat_values))  # (words, pieces)
    return words.with_flat_values(pieces).merge_dims(1, 2)


def _split_quotes(words):
    words = tf.strings.regex_replace(words, r"^'(.+)'$", r"' \1 '")
    return tf.strings.regex_replace(words, r"^([^']+)'$", r"\1 '")


def _split_period(words):
    split = tf.strings.regex_replace(words, r"^(.+)\.$", r"\1 .")
    return tf.where(tf.strings.regex_full_match(words, _KEEPS_PERIOD), words, split)


def _split_clitics(words):
    words = tf.strings.regex_replace(words, r"^(.+)n't$", r"\1 n't")
    return tf.strings.regex_replace(words, r"^(.+)('s|'re|'ve|'ll|'d|'m)$", r"\1 \2")


class WordTokenizer(Tokenizer):
    """One id per word, words split by `split_words` (lower-cased, PTB-like, as GloVe's vocabulary).

    The vocabulary is the special tokens followed by words; a word outside it maps to `<unk>`, and text
    never produces a special id (`<s>` in text is one unknown word). Detokenization joins the words with
    spaces and attaches punctuation and clitics again ("do n't" -> "don't"): it cannot give back the case
    or the original spacing.

    Args:
        vocabulary: list of str. Ids 0-3 must be `<pad>`, `<unk>`, `<s>`, `</s>`; then distinct words
            without whitespace.
    Example:
    >>> tokenizer = WordTokenizer(list(SPECIAL_TOKENS) + ["the", "cat", "."])
    >>> tokenizer.tokenize(["The dog."]).to_list()
    [[4, 1, 6]]
    >>> tokenizer.detokenize(tf.constant([[4, 5, 6]]))
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'the cat.'], dtype=object)>
    """

    kind = "word"
    file_suffix = ".words"

    def __init__(self, vocabulary, name=None):
        super().__init__(name=name)
        vocabulary = list(vocabulary)
        if tuple(vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(
                f"A word vocabulary must start with {list(SPECIAL_TOKENS)}; this one starts with "
                f"{vocabulary[:4]}. Build it with `tflm.text.train_words`."
            )
        words = vocabulary[len(SPECIAL_TOKENS):]
        bad = [w for w in words if not w or any(c.isspace() for c in w) or w in SPECIAL_TOKENS]
        if bad:
            raise ValueError(f"A word vocabulary holds words without whitespace; {bad[0]!r} is not one.")
        if len(set(vocabulary)) != len(vocabulary):
            duplicate = next(w for w, n in collections.Counter(vocabulary).items() if n > 1)
            raise ValueError(f"A word vocabulary holds each word once; {duplicate!r} is there twice.")
        self._set_pieces(vocabulary)
        ids = list(range(len(SPECIAL_TOKENS), len(vocabulary)))
        self._table = tf.lookup.StaticHashTable(  # "" never comes out of `split_words`: a key for no words
            tf.lookup.KeyValueTensorInitializer(tf.constant(words or [""], dtype=tf.string),
                                                tf.constant(ids or [UNK_ID], dtype=tf.int32)),
            default_value=UNK_ID,
        )

    @classmethod
    def from_file(cls, path):
        """Reads a vocabulary written by `save` (one word a line, the special tokens first)."""
        with open(path, encoding="utf-8") as f:
            return cls([line.rstrip("\n") for line in f if line.rstrip("\n")])

    @property
    def vocabulary_size(self):
        return len(self._piece_list)

    def _tokenize(self, text):
        return tf.ragged.map_flat_values(self._table.lookup, split_words(text))

    def _detokenize(self, token_ids):
        text = tf.strings.reduce_join(tf.gather(self._pieces, token_ids), axis=-1, separator=" ")
        text = tf.strings.regex_replace(text, r" (n't|'s|'re|'ve|'ll|'d|'m)(\s|$)", r"\1\2")
        text = tf.strings.regex_replace(text, r" ([.,;:!?%)\]}]|\.\.\.)", r"\1")
        return tf.strings.regex_replace(text, r"([(\[{$#]) ", r"\1")

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(word + "\n" for word in self._piece_list)
