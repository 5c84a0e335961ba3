"""A bag-of-words baseline for text classification: TF-IDF word n-grams and a linear SVM (scikit-learn).

The reference score a neural classifier must beat: on TREC-6 (coarse) such a baseline is reported at 88.6%
accuracy. Sentence pairs are scored by joining the two texts (`" ||| ".join(pair)`), which only sees the
words of both sides, not how they relate: a floor for pair tasks, not a fair model of them.
"""

PAIR_SEPARATOR = " ||| "


def bag_of_words_baseline(train_texts, train_labels, test_texts, ngram_range=(1, 2), c=1.0):
    """Trains TF-IDF + linear SVM on the training texts and predicts the test texts' labels.

    Features are lower-cased word n-grams (punctuation such as "?" kept as a token), sublinear term
    frequency, L2-normalised; the classifier is `sklearn.svm.LinearSVC(C=c)` (one-vs-rest). Deterministic.

    Args:
        train_texts: list of str, or of tuples of str (sentence pairs, joined with `PAIR_SEPARATOR`).
        train_labels: list of labels (str or int), one per training text.
        test_texts: list of str (or tuples), as `train_texts`.
        ngram_range: tuple `(min_n, max_n)` of word n-gram lengths.
        c: float. The SVM's inverse regularisation strength.
    Returns:
        A list of predicted labels, one per test text, of the training labels' type.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    if len(train_texts) != len(train_labels):
        raise ValueError(f"{len(train_texts)} training texts for {len(train_labels)} labels; they must pair up.")
    if len(set(train_labels)) < 2:
        raise ValueError(f"The training labels hold {len(set(train_labels))} class(es); a classifier needs two.")
    model = make_pipeline(
        TfidfVectorizer(lowercase=True, ngram_range=tuple(ngram_range), sublinear_tf=True,
                        token_pattern=r"(?u)\b\w+\b|[^\w\s]"),
        LinearSVC(C=c, random_state=0),
    )
    model.fit([_joined(t) for t in train_texts], list(train_labels))
    return model.predict([_joined(t) for t in test_texts]).tolist()


def _joined(text):
    return text if isinstance(text, str) else PAIR_SEPARATOR.join(text)
