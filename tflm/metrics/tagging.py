"""Tagging metrics: entity-level scores of BIO/BIOES tags (seqeval), or per-label token scores (scikit-learn),
as one JSON-able dict (rates in percent, rounded to 2 decimals, as every tflm metric).

Entities ("bio", "bioes") are scored by seqeval itself, in its default mode (conlleval's reading, the figures
CoNLL-2003 papers report): an entity counts when its type and both ends match. The default mode reads BIOES's
`E-` and `S-` too (checked in the tests: a sentence's BIO tags and their BIOES conversion score the same), and
like conlleval it is lenient with ill-formed sequences: an `I-X` without a `B-X` starts an entity. With
`strict=True` the scores are seqeval's strict mode with the IOB2 or IOBES scheme, where only well-formed
entities count.

Per-word labels ("tokens": part-of-speech tags, the punctuation corpus's labels) are scored word by word with
scikit-learn: precision, recall and F1 of each label but "O", and their micro average (over all words whose
reference or prediction is not "O"). Punctuation/case labels (`tflm.data.punctuation`) also get the scores of
the case part alone and of the punctuation part alone (`families`).

seqeval, scikit-learn and `tflm.data` are imported inside the functions, so that importing `tflm.metrics` stays
quick.

Example:
>>> scores = tagging_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]], "bio")
>>> scores["precision"], scores["recall"], scores["f1"], scores["accuracy"]
(100.0, 50.0, 66.67, 75.0)
"""

TAGGING_SCHEMES = ("bio", "bioes", "tokens")
OUTSIDE = "O"


def tagging_scores(true, pred, scheme, families=None, strict=False):
    """Scores predicted tags against the references.

    Args:
        true: list of sentences, each a list of str labels (the references).
        pred: the predictions, one list per sentence, as long as its reference.
        scheme: "bio" or "bioes" (entity-level scores) or "tokens" (per-word labels).
        families: for "tokens": also score the case and the punctuation parts of punctuation/case labels
            (`punctuation_case_families`). None (default): when every label is of that form.
        strict: for "bio"/"bioes": seqeval's strict mode (only well-formed entities count) instead of its
            default, conlleval-compatible one.
    Returns:
        A JSON-able dict (rates in percent):
        - `precision`, `recall`, `f1`: micro averages, over entities ("bio", "bioes": seqeval's), or over the
          words whose reference or prediction is not "O" ("tokens");
        - `accuracy`: of every word, "O" included;
        - `per_label`: label (entity type for "bio"/"bioes") -> `{"precision", "recall", "f1", "support"}`
          (support: entities, or words, in the references), sorted by label;
        - `families` ("tokens", punctuation/case labels): `{"case": {...}, "punctuation": {...}}`, each with
          the `precision`, `recall`, `f1`, `accuracy` and `per_label` above, of that part of the labels alone
          ("O" where a word has none);
        - `sentences`, `words`: int.
    Raises:
        ValueError: for a different number of sentences, or naming the first sentence whose reference and
            prediction differ in length.
    """
    if scheme not in TAGGING_SCHEMES:
        raise ValueError(f"scheme={scheme!r} is not one of {', '.join(TAGGING_SCHEMES)}: 'bio'/'bioes' for entity "
                         "tags, 'tokens' for one label per word (part of speech, punctuation).")
    true, pred = [list(s) for s in true], [list(s) for s in pred]
    if len(true) != len(pred):
        raise ValueError(f"{len(pred)} predicted sentences for {len(true)} references; they must pair up.")
    for index, (reference, prediction) in enumerate(zip(true, pred)):
        if len(reference) != len(prediction):
            raise ValueError(f"sentence {index}: {len(prediction)} predicted labels for {len(reference)} words; give "
                             "one label per word (a truncated sentence's dropped words predicted 'O', say).")
    if not any(true):
        raise ValueError("No words to score.")
    if scheme == "tokens":
        from tflm.data.punctuation import punctuation_case_families

        scores = _token_scores([t for s in true for t in s], [p for s in pred for p in s])
        if families is None:
            families = _all_punctuation_labels(true) and _all_punctuation_labels(pred)
        if families:
            def part(labels, index):  # the case (0) or punctuation (1) of every word, "O" for none
                return [punctuation_case_families(label)[index] or OUTSIDE for s in labels for label in s]

            scores["families"] = {"case": _token_scores(part(true, 0), part(pred, 0)),
                                  "punctuation": _token_scores(part(true, 1), part(pred, 1))}
    else:
        scores = _entity_scores(true, pred, scheme, strict)
    scores["sentences"] = len(true)
    scores["words"] = sum(map(len, true))
    return scores


def _entity_scores(true, pred, scheme, strict):
    from seqeval import metrics
    from seqeval.scheme import IOB2, IOBES

    options = {"mode": "strict", "scheme": IOB2 if scheme == "bio" else IOBES} if strict else {}
    report = metrics.classification_report(true, pred, output_dict=True, zero_division=0, **options)
    return {
        "precision": _percent(metrics.precision_score(true, pred, zero_division=0, **options)),
        "recall": _percent(metrics.recall_score(true, pred, zero_division=0, **options)),
        "f1": _percent(metrics.f1_score(true, pred, zero_division=0, **options)),
        "accuracy": _percent(metrics.accuracy_score(true, pred)),
        "per_label": {
            label: {"precision": _percent(values["precision"]), "recall": _percent(values["recall"]),
                    "f1": _percent(values["f1-score"]), "support": int(values["support"])}
            for label, values in sorted(report.items()) if not label.endswith(" avg")
        },
    }


def _token_scores(true, pred):
    from sklearn import metrics

    labels = sorted((set(true) | set(pred)) - {OUTSIDE})
    scores = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": _percent(metrics.accuracy_score(true, pred)),
              "per_label": {}}
    if not labels:  # every word "O" in both: nothing to find, nothing found
        return scores
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        true, pred, labels=labels, average=None, zero_division=0)
    micro = metrics.precision_recall_fscore_support(true, pred, labels=labels, average="micro", zero_division=0)
    scores.update(precision=_percent(micro[0]), recall=_percent(micro[1]), f1=_percent(micro[2]))
    scores["per_label"] = {
        label: {"precision": _percent(precision[i]), "recall": _percent(recall[i]), "f1": _percent(f1[i]),
                "support": int(support[i])}
        for i, label in enumerate(labels)
    }
    return scores


def _all_punctuation_labels(sentences):
    from tflm.data.punctuation import punctuation_case_families

    for sentence in sentences:
        for label in sentence:
            try:
                punctuation_case_families(label)
            except ValueError:
                return False
    return True


def _percent(rate):
    return round(100.0 * float(rate), 2)
