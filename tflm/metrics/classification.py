"""Classification metrics with scikit-learn: accuracy, macro-F1, per-class scores, a positive class's F1 and
the confusion matrix, as one JSON-able dict (rates in percent, as every tflm metric).

scikit-learn is imported inside the functions, so that importing `tflm.metrics` for translation stays quick.

Example:
>>> scores = classification_scores(["ham", "spam", "spam"], ["ham", "spam", "ham"], ["ham", "spam"],
...                                positive_label="spam")
>>> scores["accuracy"], scores["positive"]["f1"]
(66.67, 66.67)
"""

import numpy as np


def classification_scores(references, predictions, labels, positive_label=None):
    """Scores predicted labels against the references.

    Args:
        references: list of str labels, or of int class ids (indices into `labels`).
        predictions: the same kind, one per reference.
        labels: list of str, the run's labels in id order: the order of `per_class` and of the confusion
            matrix's rows and columns.
        positive_label: optional str (e.g. "spam"): also report that class's precision, recall and F1.
    Returns:
        A JSON-able dict:
        - `accuracy`, `macro_f1`: percent. Macro-F1 averages the F1 of the classes that occur in the
          references or the predictions (scikit-learn's default), so a class absent from a test set does
          not lower it; a class that occurs but is never predicted counts with F1 0.
        - `per_class`: label -> `{"precision", "recall", "f1"` (percent, 0 where undefined)`, "support"}`.
        - `positive`: `{"label", "precision", "recall", "f1"}`, when `positive_label` is given.
        - `confusion_matrix`: `{"labels": labels, "matrix": [[int]]}`, rows the reference class, columns
          the predicted class, both in `labels` order.
        - `examples`: int.
    """
    from sklearn import metrics

    if len(references) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references; they must pair up.")
    if not len(references):
        raise ValueError("No examples to score.")
    labels = list(labels)
    y_true, y_pred = _ids(references, labels, "reference"), _ids(predictions, labels, "prediction")
    ids = list(range(len(labels)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=ids, average=None, zero_division=0
    )
    scores = {
        "accuracy": _percent(metrics.accuracy_score(y_true, y_pred)),
        "macro_f1": _percent(metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "per_class": {
            label: {"precision": _percent(precision[i]), "recall": _percent(recall[i]), "f1": _percent(f1[i]),
                    "support": int(support[i])}
            for i, label in enumerate(labels)
        },
    }
    if positive_label is not None:
        if positive_label not in labels:
            raise ValueError(f"positive_label={positive_label!r} is not one of the labels ({', '.join(labels)}).")
        i = labels.index(positive_label)
        scores["positive"] = {"label": positive_label, "precision": _percent(precision[i]),
                              "recall": _percent(recall[i]), "f1": _percent(f1[i])}
    scores["confusion_matrix"] = {"labels": labels,
                                  "matrix": metrics.confusion_matrix(y_true, y_pred, labels=ids).tolist()}
    scores["examples"] = len(y_true)
    return scores


def _percent(rate):
    return round(100.0 * float(rate), 2)


def _ids(values, labels, what):
    """Class ids of a list of labels (str) or ids (int)."""
    index = {label: i for i, label in enumerate(labels)}
    ids = []
    for position, value in enumerate(values):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if not 0 <= value < len(labels):
                raise ValueError(f"{what} {position}: class id {value} is out of range for {len(labels)} labels.")
            ids.append(int(value))
        elif value in index:
            ids.append(index[value])
        else:
            raise ValueError(f"{what} {position}: {value!r} is not one of the labels ({', '.join(labels)}).")
    return np.array(ids, dtype=np.int64)
