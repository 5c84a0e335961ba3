"""Reading labelled text for classification: TSV, CSV and JSON Lines, one example (or sentence pair) a row.

Formats (chosen by the file name; `.gz` is read transparently):

- `.tsv`: no header, the text fields then the label, tab-separated: `text<TAB>label`, or
  `text_a<TAB>text_b<TAB>label` for sentence pairs (the layout of the registry's classification corpora);
- `.csv`: a header row naming the columns; `text_fields` and `label_field` pick them;
- `.jsonl` / `.ndjson`: one JSON object a line; `text_fields` and `label_field` pick the keys.

Texts are whitespace-normalized; labels are strings (a JSON number or boolean label is written as JSON writes it:
`1`, `true`). The label set comes from the training split only, sorted (`label_set`), and is saved with the run
(`write_labels` / `read_labels`): sorted rather than first-seen because the ids then depend on the set of labels
only, not on the order of the training file, so reshuffling or re-splitting the data keeps every class id.
"""

import csv
import dataclasses
import io
import json
import os

import numpy as np

from tflm.data.registry import SPLITS, open_text, split_file

FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class ClassificationDataError(ValueError):
    """Raised when a classification file cannot be read: its message names the file, the line and the fix."""


class UnknownLabelError(ClassificationDataError):
    """Raised when a validation or test example has a label the training split never had."""


@dataclasses.dataclass
class ClassificationData:
    """Labelled examples read from one file.

    Attributes:
        texts: dict, text field name -> list of str (whitespace-normalized, never empty), in
            `text_fields` order: `{"text": [...]}` or `{"text_a": [...], "text_b": [...]}`.
        labels: list of str, one per example.
        line_numbers: 1-based line of each example in `path` (of its first line, for a CSV record
            spanning several lines).
        path: the file they were read from.
    """

    texts: dict
    labels: list
    line_numbers: list
    path: str

    @property
    def text_fields(self):
        return tuple(self.texts)

    def __len__(self):
        return len(self.labels)

    def head(self, n):
        """The first `n` examples, as a new `ClassificationData` (for quick runs and tests)."""
        return dataclasses.replace(
            self, texts={field: texts[:n] for field, texts in self.texts.items()}, labels=self.labels[:n],
            line_numbers=self.line_numbers[:n],
        )


def read_classification(path, text_fields=("text",), label_field="label", file_format=None):
    """Reads a TSV, CSV or JSON Lines file of labelled texts.

    Args:
        path: the file (plain or `.gz`).
        text_fields: tuple of str. The text columns: `("text",)` for single texts, `("text_a", "text_b")`
            for sentence pairs. In a TSV file they are the first columns, in this order.
        label_field: str. The label column (the last column of a TSV file).
        file_format: optional "tsv", "csv" or "jsonl"; by default from the file name's extension.
    Returns:
        A `ClassificationData`.
    Raises:
        ClassificationDataError: naming the file and line, for an empty file, a row with the wrong number
            of fields, a missing column or key, an empty text or label, or text that is not UTF-8.
    """
    text_fields = (text_fields,) if isinstance(text_fields, str) else tuple(text_fields)
    if not text_fields:
        raise ValueError("text_fields is empty; name the text column(s), e.g. text_fields=('text',).")
    file_format = file_format or _format_of(path)
    rows = {"tsv": _tsv_rows, "csv": _csv_rows, "jsonl": _jsonl_rows}[file_format](path, text_fields, label_field)
    data = ClassificationData({field: [] for field in text_fields}, [], [], str(path))
    for number, texts, label in rows:
        for field, text in zip(text_fields, texts):
            text = " ".join(text.split())
            if not text:
                raise ClassificationDataError(f"{path}:{number}: the {field!r} text is empty; remove the line "
                                              "or give it a text.")
            data.texts[field].append(text)
        label = label.strip()
        if not label:
            raise ClassificationDataError(f"{path}:{number}: the {label_field!r} label is empty; every example "
                                          "needs a label.")
        data.labels.append(label)
        data.line_numbers.append(number)
    if not data.labels:
        raise ClassificationDataError(f"{path}: the file is empty (no examples); expected one example a line "
                                      f"with the fields {', '.join(text_fields + (label_field,))}.")
    return data


def _format_of(path):
    name = str(path)[:-3] if str(path).endswith(".gz") else str(path)
    extension = os.path.splitext(name)[1].lower()
    if extension not in FORMATS:
        raise ClassificationDataError(f"{path}: cannot tell the format from the extension {extension!r}; name "
                                      f"the file {', '.join(FORMATS)} or pass file_format='tsv'/'csv'/'jsonl'.")
    return FORMATS[extension]


def _lines(path):
    """(line number, decoded line without its line break), skipping blank lines."""
    with open_text(path) as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise ClassificationDataError(f"{path}:{number}: not valid UTF-8 ({error.reason}); re-encode the "
                                              "file as UTF-8.") from None
            if line.strip():
                yield number, line


def _tsv_rows(path, text_fields, label_field):
    expected = len(text_fields) + 1
    for number, line in _lines(path):
        columns = line.split("\t")
        if len(columns) != expected:
            raise ClassificationDataError(
                f"{path}:{number}: expected {expected} tab-separated fields "
                f"({'<TAB>'.join(text_fields + (label_field,))}) but found {len(columns)}. A TSV example is "
                f"{expected - 1} text(s) then the label, with no tab inside a text and no header line."
            )
        yield number, columns[:-1], columns[-1]


def _csv_rows(path, text_fields, label_field):
    with open_text(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                return
            missing = [field for field in text_fields + (label_field,) if field not in header]
            if missing:
                raise ClassificationDataError(
                    f"{path}:1: no column {', '.join(map(repr, missing))} in the header (columns: "
                    f"{', '.join(header)}); pass text_fields=(...) and label_field=... naming the columns."
                )
            positions = [header.index(field) for field in text_fields]
            label_position = header.index(label_field)
            start = reader.line_num + 1
            for row in reader:
                number, start = start, reader.line_num + 1
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise ClassificationDataError(
                        f"{path}:{number}: expected {len(header)} comma-separated fields, as in the header, but "
                        f"found {len(row)}; quote a text holding commas (\"a, b\")."
                    )
                yield number, [row[p] for p in positions], row[label_position]
        except UnicodeDecodeError as error:
            raise ClassificationDataError(f"{path}: near line {reader.line_num + 1}: not valid UTF-8 "
                                          f"({error.reason}); re-encode the file as UTF-8.") from None
        except csv.Error as error:
            raise ClassificationDataError(f"{path}:{reader.line_num}: malformed CSV ({error}).") from None


def _jsonl_rows(path, text_fields, label_field):
    for number, line in _lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ClassificationDataError(f"{path}:{number}: not valid JSON ({error.msg} at column "
                                          f"{error.colno}); JSON Lines holds one JSON object a line.") from None
        if not isinstance(record, dict):
            raise ClassificationDataError(f"{path}:{number}: expected a JSON object, found "
                                          f"{type(record).__name__}.")
        missing = [field for field in text_fields + (label_field,) if field not in record]
        if missing:
            raise ClassificationDataError(
                f"{path}:{number}: no key {', '.join(map(repr, missing))} (keys: {', '.join(record)}); pass "
                "text_fields=(...) and label_field=... naming the keys."
            )
        texts = []
        for field in text_fields:
            if not isinstance(record[field], str):
                raise ClassificationDataError(f"{path}:{number}: {field!r} is {record[field]!r}, not a string.")
            texts.append(record[field])
        label = record[label_field]
        if not isinstance(label, (str, int, float, bool)):
            raise ClassificationDataError(f"{path}:{number}: the label {label_field!r} is {label!r}; expected a "
                                          "string, number or boolean.")
        yield number, texts, label if isinstance(label, str) else json.dumps(label)


def label_set(labels):
    """The sorted distinct labels: a class's id is its index.

    Integer labels ("0", "1", "10") sort by value, other labels as strings.

    Args:
        labels: iterable of str, the training split's labels.
    Returns:
        A list of str.
    """
    distinct = set(labels)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def check_labels(data, labels):
    """Raises `UnknownLabelError` at the first example of `data` whose label is not in `labels`.

    Args:
        data: a `ClassificationData` (a validation or test split).
        labels: list of str, the run's labels (from the training split).
    """
    known = set(labels)
    for number, label in zip(data.line_numbers, data.labels):
        if label not in known:
            raise UnknownLabelError(
                f"{data.path}:{number}: label {label!r} never occurs in the training data (labels: "
                f"{', '.join(labels)}); fix the label or add training examples of it."
            )


def encode_labels(data, labels):
    """The class id of each example: its label's index in `labels`.

    Args:
        data: a `ClassificationData`.
        labels: list of str, the run's labels.
    Returns:
        int32 array `(len(data),)`.
    Raises:
        UnknownLabelError: for a label not in `labels`.
    """
    check_labels(data, labels)
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[label] for label in data.labels], dtype=np.int32)


def class_weights(train_labels, labels):
    """Class weights for an imbalanced training set: inverse frequency, normalised ("balanced" as in sklearn).

    weight(c) = n_examples / (n_classes * count(c)), so the weighted number of examples equals the number of
    examples; computed by `sklearn.utils.class_weight.compute_class_weight("balanced", ...)`.

    Args:
        train_labels: list of str, the training split's labels.
        labels: list of str, the run's labels.
    Returns:
        A dict class id -> float, as `keras.Model.fit(class_weight=...)` takes it.
    """
    from sklearn.utils.class_weight import compute_class_weight

    absent = sorted(set(labels) - set(train_labels))
    if absent:
        raise ValueError(f"labels {', '.join(absent)} have no training example, so no class weight; build the "
                         "label set from the training split (label_set(train.labels)).")
    weights = compute_class_weight("balanced", classes=np.array(labels), y=np.array(train_labels))
    return {i: float(weight) for i, weight in enumerate(weights)}


def write_labels(path, labels):
    """Writes the run's labels to `path` (`labels.txt`), one a line in id order, UTF-8."""
    for label in labels:
        if not label or "\n" in label or "\r" in label or label != label.strip():
            raise ValueError(f"label {label!r} cannot be saved one a line; labels must be non-empty, on one "
                             "line, without leading or trailing spaces.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels {labels} hold duplicates; build them with label_set().")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(label + "\n" for label in labels))


def read_labels(path):
    """Reads a `labels.txt` written by `write_labels`: the list of labels in id order."""
    labels = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            label = line.rstrip("\n")
            if not label.strip():
                raise ClassificationDataError(f"{path}:{number}: empty line; a labels file holds one label a line.")
            if label in labels:
                raise ClassificationDataError(f"{path}:{number}: label {label!r} repeats line "
                                              f"{labels.index(label) + 1}.")
            labels.append(label)
    if not labels:
        raise ClassificationDataError(f"{path}: the labels file is empty; it holds one label a line, in id order.")
    return labels


def read_classification_splits(directory, text_fields=("text",), label_field="label", suffix="tsv",
                               splits=SPLITS):
    """Reads a corpus folder's `{split}.{suffix}` files; the labels come from `train`.

    Args:
        directory: a corpus folder (e.g. from `find_dataset`).
        text_fields, label_field: as in `read_classification`.
        suffix: "tsv", "csv" or "jsonl".
        splits: the splits to read; the first must be the training split.
    Returns:
        `(splits, labels)`: a dict split name -> `ClassificationData`, and the sorted labels of the first split.
    Raises:
        UnknownLabelError: for a label of another split that the training split never had.
    """
    data = {split: read_classification(split_file(directory, split, suffix), text_fields, label_field)
            for split in splits}
    labels = label_set(data[splits[0]].labels)
    for split in splits[1:]:
        check_labels(data[split], labels)
    return data, labels
