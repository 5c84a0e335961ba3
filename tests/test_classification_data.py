"""Reading classification data (TSV, CSV, JSON Lines), the label set, its file, class weights, and the
registered classification corpora. Every test writes its own small files."""

import gzip
import json
import os

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from tflm.data import (
    ClassificationDataError,
    UnknownLabelError,
    class_weights,
    dataset_info,
    encode_labels,
    find_dataset,
    label_set,
    list_datasets,
    read_classification,
    read_classification_splits,
    read_labels,
    verify_files,
    write_labels,
)

from conftest import SHARED_DATA


def write(path, text):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as f:
        f.write(text)
    return str(path)


def test_tsv_single_texts_are_read_with_their_lines(tmp_path):
    path = write(tmp_path / "train.tsv", "Free  entry now\tspam\n\nsee you at 5 \tham\r\n")
    data = read_classification(path)
    assert data.texts == {"text": ["Free entry now", "see you at 5"]}
    assert data.labels == ["spam", "ham"]
    assert data.line_numbers == [1, 3]
    assert data.path == path and len(data) == 2 and data.text_fields == ("text",)
    assert data.head(1).labels == ["spam"] and data.head(1).texts == {"text": ["Free entry now"]}


def test_tsv_pairs_and_gzip(tmp_path):
    path = write(tmp_path / "train.tsv.gz", "Thanks.\tThank you.\t1\nThanks.\tHi there.\t0\n")
    data = read_classification(path, text_fields=("text_a", "text_b"))
    assert data.texts == {"text_a": ["Thanks.", "Thanks."], "text_b": ["Thank you.", "Hi there."]}
    assert data.labels == ["1", "0"]


def test_csv_with_named_columns_quotes_and_multiline_records(tmp_path):
    path = write(tmp_path / "d.csv", 'id,label,question,answer\n1,yes,"a, b","x"\n2,no,"two\nlines",y\n\n3,yes,c,z\n')
    data = read_classification(path, text_fields=("question", "answer"), label_field="label")
    assert data.texts == {"question": ["a, b", "two lines", "c"], "answer": ["x", "y", "z"]}
    assert data.labels == ["yes", "no", "yes"]
    assert data.line_numbers == [2, 3, 6]


def test_jsonl_with_named_keys_and_non_string_labels(tmp_path):
    rows = [{"sentence": "good film", "stars": 1}, {"sentence": "bad", "stars": 0, "extra": "x"},
            {"sentence": "ok", "stars": True}]
    path = write(tmp_path / "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    data = read_classification(path, text_fields=("sentence",), label_field="stars")
    assert data.texts == {"sentence": ["good film", "bad", "ok"]}
    assert data.labels == ["1", "0", "true"]


def test_tsv_with_the_wrong_number_of_fields_names_file_line_and_expectation(tmp_path):
    path = write(tmp_path / "train.tsv", "good\tpos\nno label here\nbad\tneg\n")
    with pytest.raises(ClassificationDataError) as error:
        read_classification(path)
    message = str(error.value)
    assert f"{path}:2:" in message and "expected 2 tab-separated fields" in message and "found 1" in message
    pairs = write(tmp_path / "pairs.tsv", "a\tb\t1\na\t1\n")
    with pytest.raises(ClassificationDataError, match=r"pairs.tsv:2: expected 3 tab-separated fields"):
        read_classification(pairs, text_fields=("text_a", "text_b"))


def test_empty_files_are_errors_in_every_format(tmp_path):
    for name in ("e.tsv", "e.csv", "e.jsonl"):
        path = write(tmp_path / name, "\n\n" if name != "e.csv" else "")
        with pytest.raises(ClassificationDataError, match="empty"):
            read_classification(path)
    header_only = write(tmp_path / "h.csv", "text,label\n")
    with pytest.raises(ClassificationDataError, match=r"h.csv: the file is empty"):
        read_classification(header_only)


def test_missing_columns_and_keys_are_named_with_the_ones_present(tmp_path):
    path = write(tmp_path / "d.csv", "sentence,label\nhi,a\n")
    with pytest.raises(ClassificationDataError) as error:
        read_classification(path)
    assert "d.csv:1: no column 'text'" in str(error.value) and "columns: sentence, label" in str(error.value)
    path = write(tmp_path / "d.jsonl", '{"text": "hi", "label": "a"}\n{"text": "yo", "class": "b"}\n')
    with pytest.raises(ClassificationDataError) as error:
        read_classification(path)
    assert "d.jsonl:2: no key 'label'" in str(error.value) and "keys: text, class" in str(error.value)


def test_other_malformed_rows(tmp_path):
    cases = {
        "ragged.csv": ("text,label\nhi,a,extra\n", "ragged.csv:2: expected 2 comma-separated fields"),
        "json.jsonl": ('{"text": "hi", "label": "a"}\n{"text": \n', "json.jsonl:2: not valid JSON"),
        "list.jsonl": ('["hi", "a"]\n', "list.jsonl:1: expected a JSON object"),
        "empty_label.tsv": ("hi\t \n", "empty_label.tsv:1: the 'label' label is empty"),
        "empty_text.tsv": ("hi\ta\n  \tb\n", "empty_text.tsv:2: the 'text' text is empty"),
        "data.txt": ("hi\ta\n", "cannot tell the format"),
    }
    for name, (text, expected) in cases.items():
        with pytest.raises(ClassificationDataError, match=expected):
            read_classification(write(tmp_path / name, text))
    path = tmp_path / "latin1.tsv"
    path.write_bytes(b"ok\ta\ncaf\xe9\tb\n")
    with pytest.raises(ClassificationDataError, match="latin1.tsv:2: not valid UTF-8"):
        read_classification(str(path))


def test_label_set_is_sorted_whatever_the_file_order():
    assert label_set(["spam", "ham", "spam"]) == label_set(["ham", "spam"]) == ["ham", "spam"]
    assert label_set(["10", "2", "1", "2"]) == ["1", "2", "10"]  # integer labels by value
    assert label_set(["b", "10", "a"]) == ["10", "a", "b"]


def test_splits_share_the_training_labels_and_unseen_labels_are_errors(tmp_path):
    write(tmp_path / "train.tsv", "w1\tNUM\nw2\tDESC\nw3\tNUM\n")
    write(tmp_path / "valid.tsv", "w4\tDESC\n")
    write(tmp_path / "test.tsv", "w5\tNUM\nw6\tLOC\n")
    with pytest.raises(UnknownLabelError) as error:
        read_classification_splits(str(tmp_path))
    message = str(error.value)
    assert f"{tmp_path / 'test.tsv'}:2:" in message and "'LOC'" in message and "labels: DESC, NUM" in message
    data, labels = read_classification_splits(str(tmp_path), splits=("train", "valid"))
    assert labels == ["DESC", "NUM"]
    np.testing.assert_array_equal(encode_labels(data["train"], labels), [1, 0, 1])
    assert encode_labels(data["valid"], labels).dtype == np.int32


def test_labels_file_round_trip_and_errors(tmp_path):
    path = str(tmp_path / "labels.txt")
    write_labels(path, ["ABBR", "DESC", "é"])
    assert read_labels(path) == ["ABBR", "DESC", "é"]
    assert open(path, encoding="utf-8").read() == "ABBR\nDESC\né\n"
    with pytest.raises(ValueError, match="one a line"):
        write_labels(path, ["a\nb"])
    with pytest.raises(ValueError, match="duplicates"):
        write_labels(path, ["a", "a"])
    write(tmp_path / "bad.txt", "a\nb\na\n")
    with pytest.raises(ClassificationDataError, match=r"bad.txt:3: label 'a' repeats line 1"):
        read_labels(str(tmp_path / "bad.txt"))
    write(tmp_path / "empty.txt", "")
    with pytest.raises(ClassificationDataError, match="empty"):
        read_labels(str(tmp_path / "empty.txt"))


def test_class_weights_are_sklearns_balanced_weights():
    train = ["ham"] * 6 + ["spam"] * 2
    weights = class_weights(train, ["ham", "spam"])
    assert weights == pytest.approx({0: 8 / (2 * 6), 1: 8 / (2 * 2)})
    expected = compute_class_weight("balanced", classes=np.array(["ham", "spam"]), y=np.array(train))
    assert list(weights.values()) == pytest.approx(list(expected))
    assert sum(weights[i] * train.count(label) for i, label in enumerate(["ham", "spam"])) == pytest.approx(8)
    with pytest.raises(ValueError, match="no training example"):
        class_weights(train, ["ham", "other", "spam"])


def test_classification_corpora_are_registered_and_found_under_a_data_dir(tmp_path):
    assert {"sms-spam", "movie-review-sentiment", "trec-6"} <= set(list_datasets("classification"))
    assert list_datasets("sentence_pairs") == ["tatoeba-paraphrase-en"]
    for name in ("sms-spam", "movie-review-sentiment", "trec-6", "tatoeba-paraphrase-en"):
        info = dataset_info(name)
        assert not info.downloads and not info.packaged
        assert {"train.tsv", "valid.tsv", "test.tsv"} <= set(info.files)
    corpus = tmp_path / "trec-6"
    corpus.mkdir()
    write(corpus / "train.tsv", "what is x ?\tDESC\n")
    assert find_dataset("trec-6", str(tmp_path), download=False) == str(corpus)
    assert len(verify_files(dataset_info("trec-6"), str(corpus))) == 3  # a fixture, not the published files


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="the shared corpora are not here")
def test_the_real_corpora_parse_with_their_published_sizes():
    sizes = {"sms-spam": (3665, 422, 424), "movie-review-sentiment": (8504, 1012, 1050),
             "trec-6": (4912, 540, 500), "tatoeba-paraphrase-en": (13478, 1592, 1655)}
    for name, expected in sizes.items():
        fields = ("text_a", "text_b") if dataset_info(name).task == "sentence_pairs" else ("text",)
        data, labels = read_classification_splits(find_dataset(name, SHARED_DATA, download=False), fields)
        assert tuple(len(data[split]) for split in ("train", "valid", "test")) == expected, name
    assert labels == ["0", "1"]
