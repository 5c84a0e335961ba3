"""`tflm.text.align_pieces`: subword pieces aligned with their words and their bytes in the text, for every
tokenizer type, eagerly and inside `tf.function`."""

import numpy as np
import pytest
import tensorflow as tf

from tflm.text import align_pieces, train_tokenizer

TEXTS = ["The  unbelievable café   reopened,\tyesterday!", "  naïve señoritas ate crème brûlée  ", "",
         "Überraschung: 東京 is big"]
TRAINING = [
    "the unbelievable cafe reopened yesterday", "a naive senorita ate creme brulee", "the surprise in tokyo",
    "reopened believable cafés", "señor naïve crème brûlée café Überraschung 東京",
] * 30


@pytest.fixture(scope="module", params=["unigram", "bpe", "wordpiece", "byte_bpe", "character"])
def tokenizer(request):
    sizes = {"unigram": 90, "bpe": 90, "wordpiece": 80, "byte_bpe": 300, "character": None}
    if request.param == "character":
        return train_tokenizer(TRAINING, "character")
    return train_tokenizer(TRAINING, request.param, sizes[request.param])


def as_lists(aligned):
    return {key: (value.to_list() if isinstance(value, tf.RaggedTensor) else value.numpy().tolist())
            for key, value in aligned.items()}


def test_pieces_point_back_into_their_words(tokenizer):
    aligned = as_lists(align_pieces(tf.constant(TEXTS), tokenizer))
    multi_piece_words = 0
    for row, text in enumerate(TEXTS):
        data = text.encode("utf-8")
        words = text.split()
        assert aligned["text"][row] == data
        word_ids, starts, ends = aligned["word_ids"][row], aligned["starts"][row], aligned["ends"][row]
        # every word, in order; its offsets slice it out of the text (multiple spaces, tabs, unicode)
        assert [data[s:e].decode() for s, e in zip(aligned["word_starts"][row], aligned["word_ends"][row])] == words
        assert word_ids == sorted(word_ids) and set(word_ids) == set(range(len(words)))
        for index, word in enumerate(words):
            pieces = [i for i, w in enumerate(word_ids) if w == index]
            assert aligned["first_piece"][row][index] == pieces[0]
            multi_piece_words += len(pieces) > 1
            # the word's pieces, in order, cover its bytes: contiguous, from its start to its end
            word_start, word_end = aligned["word_starts"][row][index], aligned["word_ends"][row][index]
            spans = [(starts[i], ends[i]) for i in pieces]
            assert spans[0][0] == word_start and spans[-1][1] == word_end, (word, spans)
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), (word, spans)
            assert b"".join(data[s:e] for s, e in spans).decode() == word
        assert aligned["token_ids"][row] == [t for w in words for t in tokenizer.tokenize(w).numpy().tolist()]
    assert multi_piece_words >= 5  # the test sees words of several pieces


def test_piece_offsets_slice_the_piece_s_own_characters():
    """For SentencePiece (tensorflow-text's offsets) and WordPiece (the pieces' lengths): the bytes a piece's offsets slice are that piece's text (without `▁` or
    `##`), so the offsets are no mere partition of the word (the control: shifted offsets would differ)."""
    for kind in ("unigram", "wordpiece"):
        tokenizer = train_tokenizer(TRAINING, kind, 90 if kind == "unigram" else 80)
        aligned = as_lists(align_pieces(tf.constant(TEXTS[:2]), tokenizer))
        checked = 0
        for row, text in enumerate(TEXTS[:2]):
            data = text.encode("utf-8")
            for token, start, end in zip(aligned["token_ids"][row], aligned["starts"][row], aligned["ends"][row]):
                piece = tokenizer.pieces[token].lstrip("\u2581")
                piece = piece[2:] if piece.startswith("##") else piece
                if token > 3 and piece:
                    assert data[start:end].decode() == piece, (kind, piece, data[start:end])
                    checked += 1
        assert checked >= 10


def test_the_same_in_a_tf_function_and_with_pre_split_words(tokenizer):
    eager = as_lists(align_pieces(tf.constant(TEXTS), tokenizer))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def traced(text):
        return align_pieces(text, tokenizer)

    assert as_lists(traced(tf.constant(TEXTS))) == eager
    words = tf.ragged.constant([text.split() for text in TEXTS], dtype=tf.string)
    given = as_lists(align_pieces(None, tokenizer, words=words))
    assert given["token_ids"] == eager["token_ids"] and given["word_ids"] == eager["word_ids"]
    for row, text in enumerate(given["text"]):
        assert text.decode() == " ".join(TEXTS[row].split())
        assert [text[s:e].decode() for s, e in zip(given["word_starts"][row], given["word_ends"][row])] == \
            TEXTS[row].split()


def test_an_exported_saved_model_aligns_the_same_with_tf_serving_s_ops(tmp_path):
    from tflm.export.check import check_ops

    tokenizer = train_tokenizer(TRAINING, "unigram", 90)
    module = tf.Module()
    module.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def align(text):
        aligned = align_pieces(text, tokenizer)
        return {key: aligned[key].to_tensor(-1) for key in ("token_ids", "word_ids", "starts", "ends")}

    module.align = align
    path = str(tmp_path / "aligner")
    tf.saved_model.save(module, path, signatures={"serving_default": align})
    problems, _, _ = check_ops(path)
    assert problems == []  # no py_function, nothing outside TF Serving 2.20's ops
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops for loading)

    served = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(TEXTS))
    expected = align(tf.constant(TEXTS))
    for key, value in expected.items():
        np.testing.assert_array_equal(served[key].numpy(), value.numpy())
