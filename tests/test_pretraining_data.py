"""BERT-style pretraining data: the <mask> token, documents, segment pairs, packing and masking."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tflm.data.pretraining import (
    mask_tokens,
    pack,
    pretraining_dataset,
    read_documents,
    segment_pairs,
    tokenize_documents,
    word_starts,
)
from tflm.text import load_tokenizer, train_sentencepiece, train_tokenizer, train_wordpiece

OLD_RUNS = os.path.join(os.path.dirname(__file__), "fixtures", "old_runs", "runs")
CLS, SEP, PAD, MASK, VOCAB = 2, 3, 0, 4, 1000
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Unbelievably, the dog kept sleeping!",
         "A <mask> token typed by someone.", "Sleeping dogs lie; quick foxes jump."] * 25


def packed_batch(rows=512, length=128, seed=0):
    """`[CLS] a [SEP] b [SEP] <pad>...` rows with random a/b lengths and content ids in [5, VOCAB)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros([rows, length], np.int32)
    for row in range(rows):
        a, b = rng.integers(20, 60), rng.integers(20, 60)
        ids[row, 0] = CLS
        ids[row, 1:1 + a] = rng.integers(5, VOCAB, a)
        ids[row, 1 + a] = SEP
        ids[row, 2 + a:2 + a + b] = rng.integers(5, VOCAB, b)
        ids[row, 2 + a + b] = SEP
    return ids


@pytest.mark.parametrize("seed", [None, 7], ids=["keras_hub", "stateless"])
def test_masking_statistics_on_a_large_batch(seed):
    ids = packed_batch()
    out = {k: v.numpy() for k, v in mask_tokens(ids, VOCAB, MASK, [CLS, SEP, PAD], seed=seed).items()}
    weights, positions = out["mask_weights"], out["mask_positions"]
    real = weights > 0
    assert out["mask_positions"].shape == (512, 20) and out["mask_ids"].dtype == np.int32
    # mask_weights: ones for the real predictions, then zeros (with 0 positions and ids) up to max_predictions.
    assert (np.diff(weights, axis=1) <= 0).all() and set(np.unique(weights)) <= {0.0, 1.0}
    assert (positions[~real] == 0).all() and (out["mask_ids"][~real] == 0).all()
    # Each row selects ceil(15% of its selectable tokens): the share can exceed 15% only by that rounding up (under
    # 1/n, n >= 42 here, plus keras-hub's float error of one token), never fall short.
    selectable = ~np.isin(ids, [CLS, SEP, PAD])
    share = real.sum() / selectable.sum()
    assert 0.15 <= share <= 0.15 + 2 / selectable.sum(1).min(), share
    rows = np.repeat(np.arange(512)[:, None], 20, 1)[real]
    chosen = positions[real]
    # Never [CLS], [SEP] or padding; the labels are the original ids; nothing changes outside the selection.
    assert not np.isin(ids[rows, chosen], [CLS, SEP, PAD]).any()
    assert (out["mask_ids"][real] == ids[rows, chosen]).all()
    changed = np.argwhere(out["token_ids"] != ids)
    assert {tuple(p) for p in changed} <= set(zip(rows, chosen))
    # 80% <mask>, 10% random, 10% unchanged: ~8,700 selections give a standard error of 0.43 points on the 80%
    # and 0.32 on the 10% shares, so 2 and 1.5 points are over 4.5 standard errors.
    after = out["token_ids"][rows, chosen]
    assert abs(np.mean(after == MASK) - 0.8) < 0.02
    assert abs(np.mean(after == ids[rows, chosen]) - 0.1) < 0.015
    assert abs(np.mean((after != MASK) & (after != ids[rows, chosen])) - 0.1) < 0.015


def test_seeded_masking_is_reproducible_and_a_new_seed_gives_new_masks():
    ids = packed_batch(rows=32)
    first = mask_tokens(ids, VOCAB, MASK, [CLS, SEP, PAD], seed=[1, 2])["mask_positions"].numpy()
    again = mask_tokens(ids, VOCAB, MASK, [CLS, SEP, PAD], seed=[1, 2])["mask_positions"].numpy()
    other = mask_tokens(ids, VOCAB, MASK, [CLS, SEP, PAD], seed=[1, 3])["mask_positions"].numpy()
    assert (first == again).all() and (first != other).any()


def words_of(starts, selectable):
    """(row, first, end) of every word: runs of selectable positions from one start to the next."""
    words = []
    for row in range(starts.shape[0]):
        position = 0
        while position < starts.shape[1]:
            if selectable[row, position]:
                end = position + 1
                while end < starts.shape[1] and selectable[row, end] and not starts[row, end]:
                    end += 1
                words.append((row, position, end))
                position = end
            else:
                position += 1
    return words


def test_whole_word_masking_masks_every_piece_of_a_chosen_word():
    ids = packed_batch(rows=256)
    rng = np.random.default_rng(1)
    starts = rng.random(ids.shape) < 0.4  # words of 2.5 pieces on average
    selectable = ~np.isin(ids, [CLS, SEP, PAD])
    words = [w for w in words_of(starts, selectable) if w[2] - w[1] > 1]

    def split_words(whole_words):
        out = mask_tokens(ids, VOCAB, MASK, [CLS, SEP, PAD], whole_words=whole_words, seed=5)
        selected = np.zeros(ids.shape, bool)
        real = out["mask_weights"].numpy() > 0
        selected[np.nonzero(real)[0], out["mask_positions"].numpy()[real]] = True
        assert not (selected & ~selectable).any()
        return selected, sum(0 < selected[r, a:b].sum() < b - a for r, a, b in words)

    selected, split = split_words(starts)
    assert split == 0
    assert sum(selected[r, a:b].all() for r, a, b in words) > 500  # multi-piece words were chosen, whole
    budget = np.minimum(np.ceil(selectable.sum(1) * 0.15 - 1e-4), 20)
    assert (selected.sum(1) <= budget).all() and selected.sum() > 0.9 * budget.sum()
    _, control = split_words(None)  # piece-level masking cuts words
    assert control > 100


def test_word_starts_of_wordpiece_pieces():
    tokenizer = train_wordpiece(TEXTS, 90, reserved=("<mask>",))  # small: words in several pieces
    ids = tokenizer.tokenize(["Unbelievably, the dog kept sleeping!"]).to_tensor()
    starts = word_starts(tokenizer, ids).numpy()[0]
    pieces = [tokenizer.pieces[i] for i in ids.numpy()[0]]
    assert any(p.startswith("##") for p in pieces)
    assert list(starts) == [not p.startswith("##") for p in pieces]
    assert starts[0] and pieces[0].startswith("\u2581")
    with pytest.raises(ValueError, match="character"):
        word_starts(train_tokenizer(TEXTS, "character"), ids)


def test_pack_gives_cls_sep_segment_ids_and_truncates_round_robin():
    out = pack([[5, 6, 7, 8, 9, 10], [5], [5, 6]], [[11, 12], [13, 14, 15, 16, 17, 18, 19], [11]], CLS, SEP, PAD, 10)
    assert out["token_ids"].numpy().tolist() == [
        [CLS, 5, 6, 7, 8, 9, SEP, 11, 12, SEP],  # a gives up one token: the longer segment is cut first
        [CLS, 5, SEP, 13, 14, 15, 16, 17, 18, SEP],
        [CLS, 5, 6, SEP, 11, SEP, PAD, PAD, PAD, PAD]]
    assert out["segment_ids"].numpy().tolist() == [
        [0, 0, 0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]]
    assert out["padding_mask"].numpy()[2].tolist() == [True] * 6 + [False] * 4
    assert out["token_ids"].dtype == tf.int32
    single = pack([[5, 6, 7]], None, CLS, SEP, PAD, 6)
    assert single["token_ids"].numpy().tolist() == [[CLS, 5, 6, 7, SEP, PAD]]
    assert single["segment_ids"].numpy().tolist() == [[0] * 6]


def encoded_documents(count=600, seed=0):
    """Documents whose ids say where they come from: document * 10_000 + sentence * 100 + position."""
    rng = np.random.default_rng(seed)
    return [[[d * 10_000 + s * 100 + k for k in range(rng.integers(3, 25))] for s in range(rng.integers(1, 12))]
            for d in range(count)]


def test_next_sentence_pairs_are_half_and_half_and_random_b_comes_from_another_document():
    documents = encoded_documents()
    pairs = segment_pairs(documents, 64, seed=[0, 0])
    labels = pairs.next_sentence
    # ~1,500 pairs: a standard error of 1.3 points on the share, so 5 points is over 3.5 of them.
    assert len(pairs) > 1200 and labels.dtype == np.int32 and abs(labels.mean() - 0.5) < 0.05
    for a, b, label, a_doc, b_doc in zip(pairs.segments_a, pairs.segments_b, labels, pairs.a_documents,
                                         pairs.b_documents):
        assert a and b and len(a) + len(b) <= 64 - 3
        assert {t // 10_000 for t in a} == {a_doc} and {t // 10_000 for t in b} == {b_doc}
        if label == 1:
            assert b_doc != a_doc
        else:  # the true continuation: B follows A in the same document
            assert b_doc == a_doc and min(b) > max(a)
    again = segment_pairs(documents, 64, seed=[0, 0])
    assert again.segments_a == pairs.segments_a and (again.next_sentence == labels).all()
    assert segment_pairs(documents, 64, seed=[0, 1]).segments_a != pairs.segments_a  # a new epoch, new pairs
    # With two documents, a random B drawn from "any document" would be from A's own half the time.
    two = [[[d * 10_000 + s * 100 + k for k in range(8)] for s in range(90)] for d in range(2)]
    pairs = segment_pairs(two, 64, seed=3)
    random_b = pairs.next_sentence == 1
    assert random_b.sum() >= 20 and (pairs.b_documents[random_b] != pairs.a_documents[random_b]).all()
    assert all({t // 10_000 for t in b} == {1 - a_doc} for b, a_doc, is_random in
               zip(pairs.segments_b, pairs.a_documents, random_b) if is_random)
    with pytest.raises(ValueError, match="at least 2"):
        segment_pairs(documents[:1], 64, seed=0)


def test_full_sentences_have_no_label_and_fill_the_length():
    documents = [[[(d + 1) * 10_000 + s * 100 + k for k in range(10)] for s in range(7)] for d in range(40)]
    pairs = segment_pairs(documents, 64, seed=0, next_sentence=False, separator=SEP)
    assert pairs.next_sentence is None and pairs.segments_b is None
    lengths = [len(a) for a in pairs.segments_a]
    # A segment closes only when the next sentence (10 ids, with a separator 11) would pass 64 - 2 = 62.
    assert max(lengths) <= 62 and min(lengths[:-1]) >= 52
    crossing = [a for a in pairs.segments_a if SEP in a]
    assert crossing and all(len({t // 10_000 for t in a if t != SEP}) == 2 for a in crossing)
    assert sum(lengths) - sum(a.count(SEP) for a in pairs.segments_a) == 40 * 7 * 10  # every token, once


def test_reserved_mask_token_is_id_4_and_never_comes_from_text():
    for tokenizer in (train_wordpiece(TEXTS, 70, reserved=("<mask>",)),
                      train_sentencepiece(TEXTS, 60, reserved=("<mask>",))):
        assert tokenizer.pieces[4] == "<mask>" and tokenizer.mask_id == 4
        assert (tokenizer.cls_id, tokenizer.sep_id) == (2, 3)
        assert 4 not in tokenizer.tokenize(["A <mask> token typed by someone."]).flat_values.numpy()
    assert train_wordpiece(TEXTS, 70).mask_id is None  # the default reserves nothing, as before
    assert "<mask>" not in train_sentencepiece(TEXTS, 60).pieces
    with pytest.raises(ValueError, match="already reserved"):
        train_wordpiece(TEXTS, 70, reserved=("<s>",))
    with pytest.raises(ValueError, match="cannot reserve"):
        train_tokenizer(TEXTS, "character", reserved=("<mask>",))
    old = load_tokenizer(os.path.join(OLD_RUNS, "transformer", "vocab", "source.vocab"))
    assert old.mask_id is None and old.cls_id == 2


WIKITEXT = """ 
 = Valkyria Chronicles = 
 
 The game began development in 2010 . It was released in Japan . 
 
 = = Gameplay = = 
 
 Players take control of a squad . 
 
 = Tropical Storm Bonnie = 
 
 Bonnie formed near Cuba ! It weakened . 
 = = = Impact = = = 
 Damage was minor . 
 = Ode = 
 A short one . 
"""


def test_read_documents_splits_wikitext_articles_blocks_and_files(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(WIKITEXT, encoding="utf-8")
    assert read_documents(str(path)) == [
        ["The game began development in 2010 .", "It was released in Japan .", "Players take control of a squad ."],
        ["Bonnie formed near Cuba !", "It weakened .", "Damage was minor ."],
        ["A short one ."]]
    speeches = ["First Citizen:\n", "Before we proceed any further, hear me speak.\n", "\n", "All:\n",
                "Speak, speak.\n"]
    assert read_documents(speeches, sentences=False) == [
        ["First Citizen:", "Before we proceed any further, hear me speak."], ["All:", "Speak, speak."]]
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "1.txt").write_text("Alpha one.\n\nAlpha two.\n", encoding="utf-8")
    (folder / "2.txt").write_text("Beta.\n", encoding="utf-8")
    assert read_documents(str(folder)) == [["Alpha one.", "Alpha two."], ["Beta."]]
    assert read_documents(str(folder), kind="blocks") == [["Alpha one."], ["Alpha two."], ["Beta."]]


def test_pretraining_dataset_contract_and_dynamic_masking():
    tokenizer = train_wordpiece(TEXTS, 70, reserved=("<mask>",))
    documents = tokenize_documents([TEXTS[i:i + 4] for i in range(0, 40, 4)], tokenizer)

    def first_batch(**kwargs):
        return next(iter(pretraining_dataset(documents, tokenizer, 32, 8, **kwargs)))

    inputs, labels = first_batch(whole_words=True)
    assert set(inputs) == {"token_ids", "segment_ids", "padding_mask", "mask_positions"}
    assert set(labels) == {"mask_ids", "mask_weights", "next_sentence"}
    assert inputs["token_ids"].shape == (8, 32) and inputs["mask_positions"].shape == (8, 20)
    assert inputs["padding_mask"].dtype == tf.bool and labels["mask_weights"].dtype == tf.float32
    assert labels["next_sentence"].dtype == tf.int32 and (inputs["token_ids"].numpy()[:, 0] == CLS).all()
    assert (inputs["token_ids"].numpy() == MASK).any() and (inputs["segment_ids"].numpy() == 1).any()
    again, _ = first_batch(whole_words=True)
    later, _ = first_batch(whole_words=True, epoch=1)
    assert (again["token_ids"].numpy() == inputs["token_ids"].numpy()).all()
    assert (later["token_ids"].numpy() != inputs["token_ids"].numpy()).any()
    plain, plain_labels = first_batch(next_sentence=False)
    assert "next_sentence" not in plain_labels and (plain["segment_ids"].numpy() == 0).all()
    with pytest.raises(ValueError, match="reserved=\\('<mask>',\\)"):
        pretraining_dataset(documents, train_wordpiece(TEXTS, 70), 32, 8)


def test_the_masking_budget_is_ceil_of_the_rate():
    ids = packed_batch(rows=4)
    out = mask_tokens(ids, VOCAB, MASK, [CLS, SEP, PAD], rate=0.5, max_predictions=128, seed=0)
    selectable = (~np.isin(ids, [CLS, SEP, PAD])).sum(1)
    assert out["mask_weights"].numpy().sum(1).tolist() == [math.ceil(n * 0.5) for n in selectable]
