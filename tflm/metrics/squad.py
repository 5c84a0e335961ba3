"""SQuAD's exact match and F1, as the official evaluation scripts (`evaluate-v1.1.py`, `evaluate-v2.0.py`)
compute them.

Both scripts normalize an answer the same way: lower-case, remove ASCII punctuation (`string.punctuation`),
remove the articles a/an/the as whole words, collapse whitespace. Exact match is whether the normalized
prediction equals a normalized gold answer; F1 is over the normalized whitespace tokens (bag overlap); each
question takes its best score over its gold answers. The versions differ in two edge cases, and each is
followed on its own data (v2.0's rules whenever a question is unanswerable):

- v2.0 drops gold answers that normalize to nothing, and an unanswerable question's only gold answer is `""`;
- v2.0's F1 is 1 when the prediction and the gold answer both have no tokens (v1.1's is 0).

A question without a prediction scores 0 and is counted (as v1.1 does; v2.0's script would leave it out).

Example:
>>> squad_scores(examples, {"q1": "the Zürich", "q2": ""})
{'exact_match': 100.0, 'f1': 100.0, 'total': 2, 'missing': 0, 'has_answer_exact_match': 100.0, ...}
"""

import collections
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text):
    """Lower-cases, removes punctuation and the articles a/an/the, and collapses whitespace (SQuAD's rule)."""
    text = "".join(character for character in text.lower() if character not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction, gold):
    """1 if the normalized texts are equal, else 0."""
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction, gold, version="2.0"):
    """Token-level F1 of the normalized texts, in [0, 1].

    Args:
        prediction, gold: str.
        version: "1.1" or "2.0": when either side has no tokens, v2.0 gives 1 if both have none, v1.1 gives 0.
    """
    prediction_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if version == "2.0" and (not prediction_tokens or not gold_tokens):
        return float(prediction_tokens == gold_tokens)
    same = sum((collections.Counter(prediction_tokens) & collections.Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(examples, predictions, version=None):
    """Scores predicted answers against SQuAD examples.

    Args:
        examples: list of `QAExample` (`tflm.data.squad`).
        predictions: dict, question id -> predicted answer text (`""` for no answer).
        version: "1.1" or "2.0", whose script's rules to follow; by default "2.0" if any example is
            unanswerable, else "1.1".
    Returns:
        A JSON-able dict, rates in percent (not rounded, as the official scripts print them):
        - `exact_match`, `f1`, `total` (questions), `missing` (questions without a prediction, scored 0);
        - for v2.0: `has_answer_exact_match`, `has_answer_f1`, `has_answer_total` over the answerable
          questions and `no_answer_exact_match`, `no_answer_f1`, `no_answer_total` over the others (rates 0
          over no question).
    """
    examples = list(examples)
    if not examples:
        raise ValueError("No examples to score.")
    if version is None:
        version = "2.0" if any(example.is_impossible for example in examples) else "1.1"
    if version not in ("1.1", "2.0"):
        raise ValueError(f"version={version!r}; score by SQuAD's \"1.1\" or \"2.0\" rules.")
    exact_scores, f1_scores, missing = {}, {}, 0
    for example in examples:
        gold = example.answer_texts
        if version == "2.0":
            gold = [text for text in gold if normalize_answer(text)] or [""]
        elif not gold:
            raise ValueError(f"question id {example.id!r} has no gold answer, which SQuAD v1.1 cannot score; "
                             "score with version=\"2.0\".")
        if example.id not in predictions:
            missing += 1
            exact_scores[example.id] = f1_scores[example.id] = 0
            continue
        prediction = predictions[example.id]
        if not isinstance(prediction, str):
            raise ValueError(f"the prediction for question id {example.id!r} is {prediction!r}; predictions are "
                             "answer strings (\"\" for no answer).")
        exact_scores[example.id] = max(exact_match(prediction, text) for text in gold)
        f1_scores[example.id] = max(f1(prediction, text, version) for text in gold)
    scores = _rates(examples, exact_scores, f1_scores, "")
    scores["missing"] = missing
    if version == "2.0":
        scores.update(_rates([e for e in examples if e.answers], exact_scores, f1_scores, "has_answer_"))
        scores.update(_rates([e for e in examples if not e.answers], exact_scores, f1_scores, "no_answer_"))
    return scores


def _rates(examples, exact_scores, f1_scores, prefix):
    total = len(examples)
    return {
        f"{prefix}exact_match": 100.0 * sum(exact_scores[e.id] for e in examples) / total if total else 0.0,
        f"{prefix}f1": 100.0 * sum(f1_scores[e.id] for e in examples) / total if total else 0.0,
        f"{prefix}total": total,
    }
