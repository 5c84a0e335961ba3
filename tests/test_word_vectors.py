import bz2
import gzip

import numpy as np
import pytest

from tflm.text import SPECIAL_TOKENS, VectorFileError, load_vectors, read_vectors, vector_file_words

ROWS = {"the": [0.5, -1.0, 2.0], "cat": [1.25, 0.0, -3.5], "sat": [0.0, 4.0, 1.0], "u.s.": [9.0, 8.0, 7.0]}
VOCABULARY = list(SPECIAL_TOKENS) + ["the", "cat", "unicorn", "u.s.", "zyzzyva"]


def glove_text():
    return "".join(f"{word} {' '.join(map(str, vector))}\n" for word, vector in ROWS.items())


def write_binary(path, rows, opener=open):
    with opener(path, "wb") as f:
        f.write(f"{len(rows)} 3\n".encode())
        for word, vector in rows.items():
            f.write(word.encode() + b" " + np.asarray(vector, dtype="<f4").tobytes() + b"\n")


@pytest.fixture(params=["glove.txt", "glove.txt.gz", "glove.txt.bz2", "word2vec.txt", "vectors.bin",
                        "vectors.bin.gz"])
def vectors_file(request, tmp_path):
    path = str(tmp_path / request.param)
    if request.param.endswith(".bin") or request.param.endswith(".bin.gz"):
        write_binary(path, ROWS, gzip.open if path.endswith(".gz") else open)
        return path
    text = glove_text()
    if request.param.startswith("word2vec"):
        text = f"{len(ROWS)} 3\n" + text
    opener = {"gz": gzip.open, "bz2": bz2.open}.get(path.rsplit(".", 1)[-1], open)
    with opener(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


def test_every_format_reads_the_same_vectors(vectors_file):
    vectors = dict(read_vectors(vectors_file))
    assert list(vectors) == list(ROWS)
    for word, row in ROWS.items():
        np.testing.assert_array_equal(vectors[word], np.float32(row))
    assert vector_file_words(vectors_file, limit=2) == ["the", "cat"]
    assert dict(read_vectors(vectors_file, words={"cat"})).keys() == {"cat"}


def test_load_vectors_found_rows_are_the_files_missing_rows_random_pad_zero(vectors_file):
    counts = {"the": 10, "cat": 5, "unicorn": 3, "zyzzyva": 1, "out-of-vocabulary": 1}
    matrix, coverage = load_vectors(vectors_file, VOCABULARY, token_counts=counts, seed=3)
    assert matrix.shape == (len(VOCABULARY), 3) and matrix.dtype == np.float32
    for word in ("the", "cat", "u.s."):
        np.testing.assert_array_equal(matrix[VOCABULARY.index(word)], np.float32(ROWS[word]))
    np.testing.assert_array_equal(matrix[0], 0.0)
    assert coverage.found_words == 3 and coverage.vocabulary_words == 5
    assert coverage.missing == ("unicorn", "zyzzyva")
    assert (coverage.covered_tokens, coverage.total_tokens) == (15, 20)
    assert "vectors for 3 of 5 vocabulary words (60.0%), 75.0% of 20 training tokens" in coverage.summary()
    again, _ = load_vectors(vectors_file, VOCABULARY, seed=3)
    np.testing.assert_array_equal(again, matrix)  # seeded
    other, _ = load_vectors(vectors_file, VOCABULARY, seed=4)
    assert not np.array_equal(other[VOCABULARY.index("unicorn")], matrix[VOCABULARY.index("unicorn")])


def test_random_rows_are_scaled_like_the_found_vectors(tmp_path):
    rng = np.random.default_rng(0)
    found = rng.normal(5.0, 0.01, size=(200, 4))
    path = tmp_path / "big.txt"
    path.write_text("".join(f"w{i} {' '.join(map(str, row))}\n" for i, row in enumerate(found)))
    vocabulary = list(SPECIAL_TOKENS) + [f"w{i}" for i in range(200)] + [f"new{i}" for i in range(200)]
    matrix, _ = load_vectors(str(path), vocabulary)
    random_rows = matrix[204:]
    assert abs(random_rows.mean() - 5.0) < 0.01 and random_rows.std() < 0.05


def test_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt: no such word vectors file"):
        load_vectors(str(tmp_path / "missing.txt"), VOCABULARY)
    bad = tmp_path / "bad.txt"
    bad.write_text("the 1 2 3\ncat 1 2\n")
    with pytest.raises(VectorFileError, match=r"bad.txt:2: the vector of 'cat' has 2 values, but the file's"):
        list(read_vectors(str(bad)))
    bad.write_text("the 1 2 3\ncat 1 x 3\n")
    with pytest.raises(VectorFileError, match=r"bad.txt:2: malformed vector of 'cat'"):
        list(read_vectors(str(bad)))
    bad.write_text("the 1 2 3\nlonely\n")
    with pytest.raises(VectorFileError, match=r"bad.txt:2: malformed line 'lonely'"):
        list(read_vectors(str(bad)))
    bad.write_text("the 1 2 3\n")
    with pytest.raises(VectorFileError, match=r"bad.txt:1: .* has 3 values, but embedding_dim=4"):
        load_vectors(str(bad), VOCABULARY, embedding_dim=4)
    truncated = tmp_path / "short.bin"
    write_binary(str(truncated), ROWS)
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(VectorFileError, match="short.bin: ends after 3 of the 4 vectors"):
        list(read_vectors(str(truncated)))
