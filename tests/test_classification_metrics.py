"""Classification metrics against hand-computed values and scikit-learn, the confusion-matrix image, and the
bag-of-words baseline (with a constant predictor as the control)."""

import random

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score

from tflm.metrics import bag_of_words_baseline, classification_scores, confusion_matrix_image
from tflm.visualization import png_bytes

# ham is id 0; "other" occurs once and is never predicted.
LABELS = ["ham", "other", "spam"]
REFERENCES = ["ham", "ham", "ham", "spam", "spam", "other"]
PREDICTIONS = ["ham", "spam", "ham", "spam", "ham", "ham"]


def test_scores_equal_hand_computed_values():
    scores = classification_scores(REFERENCES, PREDICTIONS, LABELS, positive_label="spam")
    assert scores["accuracy"] == 50.0  # 3 of 6
    # ham: 2 of 4 predicted are right, 2 of 3 found; spam: 1 of 2, 1 of 2; other: never predicted.
    ham_f1 = 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)
    assert scores["per_class"] == {
        "ham": {"precision": 50.0, "recall": 66.67, "f1": round(100 * ham_f1, 2), "support": 3},
        "other": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "spam": {"precision": 50.0, "recall": 50.0, "f1": 50.0, "support": 2},
    }
    assert scores["macro_f1"] == round(100 * (ham_f1 + 0 + 0.5) / 3, 2) == 35.71
    assert scores["positive"] == {"label": "spam", "precision": 50.0, "recall": 50.0, "f1": 50.0}
    assert scores["confusion_matrix"] == {"labels": LABELS, "matrix": [[2, 0, 1], [1, 0, 0], [1, 0, 1]]}
    assert scores["examples"] == 6


def test_class_ids_score_like_label_strings():
    ids = {label: i for i, label in enumerate(LABELS)}
    by_id = classification_scores([ids[r] for r in REFERENCES], np.array([ids[p] for p in PREDICTIONS]), LABELS)
    assert by_id == classification_scores(REFERENCES, PREDICTIONS, LABELS)


def test_spam_f1_is_sklearns_f1_of_that_class():
    rng = random.Random(3)
    references = [rng.choice(["ham"] * 6 + ["spam"]) for _ in range(200)]
    predictions = [r if rng.random() < 0.8 else rng.choice(["ham", "spam"]) for r in references]
    scores = classification_scores(references, predictions, ["ham", "spam"], positive_label="spam")
    assert scores["positive"]["f1"] == round(100 * f1_score(references, predictions, pos_label="spam"), 2)
    assert scores["positive"]["f1"] != scores["accuracy"]
    multi = classification_scores(REFERENCES, PREDICTIONS, LABELS, positive_label="spam")
    assert multi["positive"]["f1"] == round(100 * f1_score(REFERENCES, PREDICTIONS, labels=["spam"],
                                                           average=None)[0], 2)


def test_confusion_matrix_follows_the_given_label_order():
    labels = ["spam", "other", "ham"]
    matrix = classification_scores(REFERENCES, PREDICTIONS, labels)["confusion_matrix"]
    assert matrix["labels"] == labels
    assert matrix["matrix"] == confusion_matrix(REFERENCES, PREDICTIONS, labels=labels).tolist()
    assert matrix["matrix"][0] == [1, 0, 1]  # row: reference spam; columns: predicted spam, other, ham
    assert matrix["matrix"] != classification_scores(REFERENCES, PREDICTIONS, LABELS)["confusion_matrix"]["matrix"]


def test_macro_f1_leaves_out_classes_absent_from_references_and_predictions():
    perfect = classification_scores(["ham", "spam"], ["ham", "spam"], LABELS)
    assert perfect["macro_f1"] == 100.0 and perfect["per_class"]["other"]["support"] == 0
    missed = classification_scores(["ham", "spam", "other"], ["ham", "spam", "ham"], LABELS)
    assert missed["macro_f1"] < 100.0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="prediction 1: 'eggs' is not one of the labels"):
        classification_scores(["ham", "spam"], ["ham", "eggs"], LABELS)
    with pytest.raises(ValueError, match="reference 0: class id 3 is out of range"):
        classification_scores([3], [0], LABELS)
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        classification_scores(["ham"], ["ham", "spam"], LABELS)
    with pytest.raises(ValueError, match="positive_label='eggs'"):
        classification_scores(["ham"], ["ham"], LABELS, positive_label="eggs")


def test_confusion_matrix_image_is_an_rgb_array_with_shaded_cells():
    matrix = classification_scores(REFERENCES, PREDICTIONS, LABELS)["confusion_matrix"]["matrix"]
    image = confusion_matrix_image(matrix, LABELS, cell=40)
    array = np.asarray(image)
    assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3
    assert png_bytes(image).startswith(b"\x89PNG")
    larger = np.asarray(confusion_matrix_image(np.eye(5, dtype=int), LABELS + ["a", "b"], cell=40))
    assert larger.shape[0] - array.shape[0] == larger.shape[1] - array.shape[1] == 2 * 40
    # The bottom-right cell (spam predicted spam: half of the spam row) is green; an empty cell is white.
    height, width = array.shape[:2]
    red, green, blue = array[height - 4, width - 30].astype(int)
    assert green == 255 and red < 200 and blue < 200
    assert (array[height - 4, width - 40 - 30] == 255).all()  # other predicted for spam: 0
    with pytest.raises(ValueError, match="does not match 3 labels"):
        confusion_matrix_image(np.eye(2, dtype=int), LABELS)


def topic_texts(rng, count):
    """A trivially separable fixture: each topic has its own words, plus words shared by all topics."""
    words = {"sport": "goal match team score referee league".split(),
             "food": "recipe oven salt flour bake soup".split(),
             "music": "guitar song chord drum melody band".split()}
    shared = "the a today really very new old my".split()
    texts, labels = [], []
    for _ in range(count):
        label = rng.choice(sorted(words))
        texts.append(" ".join(rng.sample(words[label], 2) + rng.sample(shared, 4)))
        labels.append(label)
    return texts, labels


def assert_learned(predictions, references):
    assert classification_scores(references, predictions, sorted(set(references)))["accuracy"] > 90


def test_bag_of_words_baseline_learns_a_separable_fixture_and_a_constant_predictor_does_not():
    rng = random.Random(0)
    train_texts, train_labels = topic_texts(rng, 90)
    test_texts, test_labels = topic_texts(rng, 60)
    predictions = bag_of_words_baseline(train_texts, train_labels, test_texts)
    assert len(predictions) == len(test_texts) and all(isinstance(p, str) for p in predictions)
    assert_learned(predictions, test_labels)
    constant = [max(set(train_labels), key=train_labels.count)] * len(test_texts)
    with pytest.raises(AssertionError):
        assert_learned(constant, test_labels)


def test_bag_of_words_baseline_takes_sentence_pairs():
    pairs = [("goal match", "team"), ("oven salt", "bake"), ("match team", "score"), ("salt soup", "flour")]
    labels = ["sport", "food", "sport", "food"]
    assert bag_of_words_baseline(pairs, labels, [("league goal", "referee"), ("flour", "oven")]) == ["sport", "food"]
    with pytest.raises(ValueError, match="needs two"):
        bag_of_words_baseline(pairs, ["food"] * 4, pairs)
