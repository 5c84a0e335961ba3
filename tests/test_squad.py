"""Extractive question answering's data and metrics: the SQuAD reader, windows of contexts, answers decoded from
span logits (checked against a brute-force search), training labels, and exact match / F1 against a
transcription of the official SQuAD evaluation scripts."""

import collections
import gzip
import json
import re
import string

import numpy as np
import pytest
import tensorflow as tf

from tflm.data.qa_windows import answer_positions, context_words, decode_answers, qa_features
from tflm.data.squad import QAExample, SquadDataError, read_squad, write_squad
from tflm.metrics.squad import squad_scores
from tflm.text.vocab import train_wordpiece

# Non-ASCII text before the answers (so character and byte offsets differ), answers next to punctuation, CJK
# ideographs (each a word of its own) and an emoji.
ZURICH = "Zürich's café «Odéon» (opened 1911), where Einstein drank tea 🍵, stood near 東京 Street until 1990."
LONG = " ".join(f"Word{i} is here, and item {i} follows (see {i})." for i in range(30)) + " The end came in 2024."


def _answer(qid, question, context, text, occurrence=0):
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(text, start + 1)
    return QAExample(qid, "Fixture", question, context, [{"text": text, "answer_start": start}], False)


EXAMPLES = [
    _answer("z1", "When did it close?", ZURICH, "1990"),
    _answer("z2", "When did it open?", ZURICH, "1911"),
    _answer("z3", "Which city?", ZURICH, "Zürich"),
    _answer("z4", "Which café?", ZURICH, "café «Odéon»"),
    _answer("z5", "Near which street?", ZURICH, "東京 Street"),
    _answer("z6", "What did he drink?", ZURICH, "tea 🍵"),
    _answer("z7", "Who drank?", ZURICH, "Einstein"),
    _answer("l1", "When did the end come?", LONG, "2024"),
    _answer("l2", "What follows item 17?", LONG, "Word18"),
    _answer("l3", "Where is item 3?", LONG, "(see 3)"),
]


@pytest.fixture(scope="module")
def tokenizer():
    texts = [ZURICH, LONG] + [example.question for example in EXAMPLES]
    return train_wordpiece(texts * 3, vocabulary_size=200, reserved=("<mask>",))


def _features(tokenizer, examples, **options):
    options = {"max_length": 32, "doc_stride": 8, "max_question_length": 8, **options}
    return qa_features(tokenizer, [e.question for e in examples], [e.context for e in examples], **options)


def _numpy(features):
    return {key: value.to_list() if isinstance(value, tf.RaggedTensor) else value.numpy()
            for key, value in features.items()}


# The reader.


def _squad_file(path, version, qas, context=ZURICH):
    document = {"version": version, "data": [{"title": "Zürich", "paragraphs": [{"context": context, "qas": qas}]}]}
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False)
    return path


def test_read_squad_v11_and_v20(tmp_path):
    start = ZURICH.index("1990")
    v11 = _squad_file(tmp_path / "dev-v1.1.json", "1.1", [
        {"id": "a", "question": "When?", "answers": [{"text": "1990", "answer_start": start},
                                                     {"text": "until 1990", "answer_start": start - 6}]}])
    [example] = read_squad(v11)
    assert example == QAExample("a", "Zürich", "When?", ZURICH, [{"text": "1990", "answer_start": start},
                                                                 {"text": "until 1990", "answer_start": start - 6}],
                                False)

    v20 = _squad_file(tmp_path / "dev-v2.0.json.gz", "v2.0", [
        {"id": "a", "question": "When?", "answers": [{"text": "1990", "answer_start": start}], "is_impossible": False},
        {"id": "b", "question": "Who sang?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "Einstein", "answer_start": ZURICH.index("Einstein")}]}])
    examples = read_squad(v20)
    assert [e.id for e in examples] == ["a", "b"]
    assert examples[1].answers == [] and examples[1].is_impossible and not examples[0].is_impossible

    # write_squad round-trips both versions.
    for version, name in (("1.1", "out.json"), ("2.0", "out.json.gz")):
        kept = [e for e in EXAMPLES + examples if version == "2.0" or not e.is_impossible]
        write_squad(tmp_path / name, kept, version=version)
        assert read_squad(tmp_path / name) == kept


def test_read_squad_errors_name_the_question(tmp_path):
    start = ZURICH.index("1990")
    path = _squad_file(tmp_path / "bad.json", "v2.0", [
        {"id": "good", "question": "When?", "answers": [{"text": "1990", "answer_start": start}]},
        {"id": "q-misaligned", "question": "When?", "answers": [{"text": "1990", "answer_start": start + 1}]}])
    with pytest.raises(SquadDataError, match=rf"bad.json: question id 'q-misaligned'.*answer_start={start + 1}.*"
                                             rf"'1990'.*occurs at answer_start={start}"):
        read_squad(path)
    assert [e.id for e in read_squad(path, skip_misaligned=True)] == ["good"]

    path = _squad_file(tmp_path / "missing.json", "v2.0", [{"id": "q7", "answers": []}])
    with pytest.raises(SquadDataError, match=r"missing.json: question id 'q7'.*'question' is missing"):
        read_squad(path)
    path = _squad_file(tmp_path / "unanswered.json", "v2.0", [{"id": "q8", "question": "?", "answers": []}])
    with pytest.raises(SquadDataError, match=r"question id 'q8': no answers, and is_impossible is not true"):
        read_squad(path)


# Windows.


def test_windows_cover_every_context_piece(tokenizer):
    question = " ".join(["which word follows which item here"] * 3)  # more than 8 pieces
    contexts = [LONG, ZURICH, "", "   "]
    max_length, stride, max_question = 24, 5, 8
    features = _numpy(qa_features(tokenizer, [question] * len(contexts), contexts, max_length=max_length,
                                  doc_stride=stride, max_question_length=max_question))
    question_ids = tokenizer.tokenize([question])[0].numpy()[:max_question]
    assert len(tokenizer.tokenize([question])[0]) > max_question
    words = context_words(contexts)[0].to_list()
    for row, context in enumerate(contexts):
        # The context's pieces: each word tokenized on its own (as inside the text where it follows the word
        # before without whitespace), <unk> for a word without pieces.
        pieces, piece_words = [], []
        starts, ends = features["word_byte_starts"][row], features["word_byte_ends"][row]
        for index, word in enumerate(words[row]):
            attached = index > 0 and starts[index] == ends[index - 1]
            tokenize = tokenizer.tokenize_attached if attached else tokenizer.tokenize
            ids = tokenize([word.decode()])[0].numpy().tolist() or [tokenizer.unk_id]
            pieces += ids
            piece_words += [index] * len(ids)
        windows = np.flatnonzero(features["example_index"] == row)
        assert len(windows) >= 1 and np.all(np.diff(windows) == 1)
        covered = set()
        for number, w in enumerate(windows):
            start = features["window_start"][w]
            assert start == number * stride
            context_positions = np.flatnonzero(features["context_mask"][w])
            n = len(context_positions)
            first = len(question_ids) + 2
            # [CLS] question [SEP] window [SEP], consecutive pieces of the context, within max_length.
            expected = [2, *question_ids, 3, *pieces[start:start + n], 3]
            assert len(expected) <= max_length
            assert features["token_ids"][w].tolist() == expected + [0] * (max_length - len(expected))
            assert features["segment_ids"][w].tolist() == [0] * first + [1] * (n + 1) + [0] * (max_length -
                                                                                             len(expected))
            assert features["padding_mask"][w].tolist() == [True] * len(expected) + [False] * (max_length -
                                                                                            len(expected))
            assert context_positions.tolist() == list(range(first, first + n))
            assert features["word_index"][w][context_positions].tolist() == piece_words[start:start + n]
            assert np.all(features["word_index"][w][~features["context_mask"][w]] == -1)
            covered.update(range(start, start + n))
            if number < len(windows) - 1:
                assert n == max_length - len(question_ids) - 3  # full windows before the last
        assert covered == set(range(len(pieces)))  # every piece, the last window reaching the end
        assert set(features["word_index"][windows][features["context_mask"][windows]]) == set(range(len(words[row])))
        # Word offsets: characters index the str, bytes its UTF-8.
        for word, char_start, char_end, byte_start, byte_end in zip(
                words[row], features["word_char_starts"][row], features["word_char_ends"][row],
                features["word_byte_starts"][row], features["word_byte_ends"][row]):
            assert context[char_start:char_end].encode() == word == context.encode()[byte_start:byte_end]
    assert len(np.flatnonzero(features["example_index"] == 0)) > 5
    assert [len(words[row]) for row in (2, 3)] == [0, 0]  # still one window each


def test_a_context_is_read_as_the_pieces_of_its_running_text(tokenizer):
    """Words that follow the one before without whitespace ("1990" in "(1990),") are tokenized as inside the text:
    the window holds exactly the pieces `tokenizer.tokenize(context)` gives (what a pretrained encoder read)."""
    contexts = ["Tom was born (1990), in Zürich; he left.", "e-mail: x@y.z ok"]
    features = _numpy(qa_features(tokenizer, ["who ?"] * 2, contexts, max_length=64, max_question_length=4))
    for row, context in enumerate(contexts):
        window = features["token_ids"][row][features["context_mask"][row]]
        assert window.tolist() == tokenizer.tokenize(tf.constant([context]))[0].numpy().tolist()
    # (read word by word on its own, "1990" would take its word-start form)
    alone = tokenizer.tokenize(tf.constant(["1990"]))[0].numpy().tolist()
    assert alone != tokenizer.tokenize_attached(tf.constant(["1990"]))[0].numpy().tolist()


def test_context_words_split_like_bert():
    words = context_words(["Zürich (1990), 東京東 a.b  c"])[0].to_list()[0]
    assert [w.decode() for w in words] == ["Zürich", "(", "1990", ")", ",", "東", "京", "東", "a", ".", "b", "c"]


# Decoding.


def test_answers_round_trip_through_labels_and_decoding(tokenizer):
    impossible = QAExample("n1", "Fixture", "Who sang?", ZURICH, [], True)
    examples = EXAMPLES + [impossible]
    tensors = _features(tokenizer, examples)
    features = _numpy(tensors)
    start_positions, end_positions = answer_positions(tensors, examples)
    assert start_positions.dtype == np.int32 and start_positions.shape == features["example_index"].shape
    for row, example in enumerate(examples):
        labelled = (features["example_index"] == row) & (start_positions > 0)
        assert labelled.any() != example.is_impossible, example.id  # whole in some window iff answerable
    assert np.all(start_positions <= end_positions)
    # The same labels from char spans and from NumPy features.
    spans = [None if e.is_impossible else (e.answers[0]["answer_start"],
                                           e.answers[0]["answer_start"] + len(e.answers[0]["text"])) for e in examples]
    assert all(np.array_equal(a, b) for a, b in zip(answer_positions(features, spans), (start_positions,
                                                                                        end_positions)))

    length = features["token_ids"].shape[1]
    start_logits = 10 * np.eye(length, dtype=np.float32)[start_positions]
    end_logits = 10 * np.eye(length, dtype=np.float32)[end_positions]
    answers = decode_answers(start_logits, end_logits, tensors, [e.context for e in examples])
    for row, example in enumerate(examples[:-1]):
        answer = example.answers[0]
        assert answers["answer"][row].numpy().decode() == answer["text"]
        assert (answers["start"][row], answers["end"][row]) == (answer["answer_start"],
                                                                answer["answer_start"] + len(answer["text"]))
        assert answers["score"][row] == 20.0


def _brute_force(start_logits, end_logits, features, contexts, max_answer_length):
    """The best span of each row by trying every pair of context positions."""
    best = []
    for row, context in enumerate(contexts):
        found = (-np.inf, -1, -1)
        for w in np.flatnonzero(features["example_index"] == row):
            positions = np.flatnonzero(features["context_mask"][w])
            for i in positions:
                for j in positions:
                    score = start_logits[w, i] + end_logits[w, j]
                    if i <= j < i + max_answer_length and score > found[0]:
                        found = (score, features["word_char_starts"][row][features["word_index"][w, i]],
                                 features["word_char_ends"][row][features["word_index"][w, j]])
        best.append(found)
    return best


def test_random_logits_give_spans_inside_the_context(tokenizer):
    examples = [EXAMPLES[0], EXAMPLES[7], QAExample("e", "", "Anything?", "", [], True)]
    contexts = [e.context for e in examples]
    tensors = _features(tokenizer, examples, max_length=24, doc_stride=6)
    features = _numpy(tensors)
    outside = ~features["context_mask"]
    for seed in range(12):
        rng = np.random.default_rng(seed)
        # Non-context positions ([CLS], question, [SEP], padding) get the highest logits, to tempt the decoder.
        start_logits, end_logits = (rng.normal(size=features["token_ids"].shape).astype(np.float32) + 5 * outside
                                    for _ in range(2))
        max_answer_length = int(rng.integers(1, 12))
        answers = decode_answers(start_logits, end_logits, tensors, contexts, max_answer_length=max_answer_length)
        expected = _brute_force(start_logits, end_logits, features, contexts, max_answer_length)
        for row, (context, (score, start, end)) in enumerate(zip(contexts, expected)):
            got_start, got_end = int(answers["start"][row]), int(answers["end"][row])
            assert (got_start, got_end) == (start, end), (seed, row)
            assert answers["score"][row].numpy() == pytest.approx(score)
            if context:
                assert 0 <= got_start < got_end <= len(context)
                assert answers["answer"][row].numpy().decode() == context[got_start:got_end]
            else:  # no piece, no span
                assert answers["answer"][row].numpy() == b"" and (got_start, got_end) == (-1, -1)


def test_no_answer_when_the_null_score_wins(tokenizer):
    examples = [EXAMPLES[0], EXAMPLES[7]]
    tensors = _features(tokenizer, examples)
    starts, ends = answer_positions(tensors, examples)
    length = tensors["token_ids"].shape[1]
    start_logits = 4 * np.eye(length, dtype=np.float32)[starts]
    end_logits = 4 * np.eye(length, dtype=np.float32)[ends]
    start_logits[:, 0] += 6.0  # [CLS]: null score 10 (+ 8 where the window holds the answer) against spans of 8
    end_logits[:, 0] += 4.0
    contexts = [e.context for e in examples]

    answers = decode_answers(start_logits, end_logits, tensors, contexts, allow_no_answer=True)
    assert answers["answer"].numpy().tolist() == [b"", b""]
    assert answers["start"].numpy().tolist() == answers["end"].numpy().tolist() == [-1, -1]
    assert answers["score"].numpy().tolist() == [10.0, 10.0]  # the lowest [CLS] score over the windows
    # The null score must beat the best span by more than null_threshold.
    answers = decode_answers(start_logits, end_logits, tensors, contexts, allow_no_answer=True, null_threshold=2.0)
    assert answers["answer"].numpy().tolist() == [b"1990", b"2024"]
    assert answers["score"].numpy().tolist() == [8.0, 8.0]
    # Without allow_no_answer, [CLS] is never an answer.
    answers = decode_answers(start_logits, end_logits, tensors, contexts)
    assert answers["answer"].numpy().tolist() == [b"1990", b"2024"]


def test_features_and_decoding_in_a_tf_function_with_unknown_batch(tokenizer):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)])
    def answer(questions, contexts):
        features = qa_features(tokenizer, questions, contexts, max_length=32, doc_stride=8, max_question_length=8)
        # A stand-in model: logits from the ids.
        start_logits = tf.cast(features["token_ids"] % 7, tf.float32)
        end_logits = tf.cast(features["token_ids"] % 5, tf.float32)
        return decode_answers(start_logits, end_logits, features, contexts, allow_no_answer=True)

    for examples in (EXAMPLES[:1], EXAMPLES[6:9]):
        questions, contexts = [e.question for e in examples], [e.context for e in examples]
        got = answer(tf.constant(questions), tf.constant(contexts))
        features = _features(tokenizer, examples)
        expected = decode_answers(tf.cast(features["token_ids"] % 7, tf.float32),
                                  tf.cast(features["token_ids"] % 5, tf.float32), features, contexts,
                                  allow_no_answer=True)
        assert got["answer"].shape == (len(examples),)
        for key in ("answer", "start", "end", "score"):
            assert got[key].numpy().tolist() == expected[key].numpy().tolist()
    assert answer.experimental_get_tracing_count() == 1

    # Core TensorFlow and tensorflow-text ops only: nothing that calls back into Python.
    graph = answer.get_concrete_function().graph.as_graph_def()
    op_types = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
    assert not op_types & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    assert "RegexSplitWithOffsets" in op_types


# Metrics: a transcription of the official scripts (evaluate-v1.1.py and evaluate-v2.0.py) as the reference.


def official_normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace (both scripts)."""
    def remove_articles(text):
        return re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_v11_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def official_v11_exact_match_score(prediction, ground_truth):
    return official_normalize_answer(prediction) == official_normalize_answer(ground_truth)


def official_v11_evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue  # "Unanswered question ... will receive score 0."
                ground_truths = [x["text"] for x in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_match += max(official_v11_exact_match_score(prediction, gt) for gt in ground_truths)
                f1 += max(official_v11_f1_score(prediction, gt) for gt in ground_truths)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def official_v20_get_tokens(s):
    if not s:
        return []
    return official_normalize_answer(s).split()


def official_v20_compute_exact(a_gold, a_pred):
    return int(official_normalize_answer(a_gold) == official_normalize_answer(a_pred))


def official_v20_compute_f1(a_gold, a_pred):
    gold_toks = official_v20_get_tokens(a_gold)
    pred_toks = official_v20_get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)  # if either is no-answer, F1 is 1 if they agree, 0 otherwise
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def official_v20_evaluate(dataset, preds):
    """get_raw_scores, make_qid_to_has_ans and make_eval_dict (no na_prob file: no threshold applied)."""
    exact_scores, f1_scores, qid_to_has_ans = {}, {}, {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid = qa["id"]
                qid_to_has_ans[qid] = bool(qa["answers"])
                gold_answers = [a["text"] for a in qa["answers"] if official_normalize_answer(a["text"])]
                if not gold_answers:
                    gold_answers = [""]  # for unanswerable questions, the only correct answer is ""
                if qid not in preds:
                    continue  # "Missing prediction for ..."
                exact_scores[qid] = max(official_v20_compute_exact(a, preds[qid]) for a in gold_answers)
                f1_scores[qid] = max(official_v20_compute_f1(a, preds[qid]) for a in gold_answers)

    def make_eval_dict(qid_list):
        total = len(qid_list)
        return {"exact": 100.0 * sum(exact_scores[k] for k in qid_list) / total,
                "f1": 100.0 * sum(f1_scores[k] for k in qid_list) / total, "total": total}

    out = {"": make_eval_dict(list(exact_scores))}
    has_ans = [k for k, v in qid_to_has_ans.items() if v]
    no_ans = [k for k, v in qid_to_has_ans.items() if not v]
    if has_ans:
        out["HasAns"] = make_eval_dict(has_ans)
    if no_ans:
        out["NoAns"] = make_eval_dict(no_ans)
    return out


def _gold(qid, *texts, impossible=False):
    context = " ".join(texts) or "nothing"
    answers = [{"text": t, "answer_start": context.index(t)} for t in texts]
    return QAExample(qid, "", "?", context, [] if impossible else answers, impossible)


METRIC_EXAMPLES = [
    _gold("articles", "the Eiffel Tower"),
    _gold("punctuation", "Paris, France."),
    _gold("case", "NEW York"),
    _gold("several", "1990", "in 1990", "the year 1990"),
    _gold("partial", "Albert Einstein's theory of relativity"),
    _gold("repeats", "the the cat cat sat"),
    _gold("empty_prediction", "Einstein"),
    _gold("article_only_gold", "the", "An"),
    _gold("unicode", "Zürich Café"),
    _gold("wrong", "Berlin"),
]
METRIC_PREDICTIONS = {
    "articles": "Eiffel tower", "punctuation": "paris france", "case": "new york!", "several": "year 1990",
    "partial": "the theory of relativity", "repeats": "cat the sat", "empty_prediction": "",
    "article_only_gold": "a", "unicode": "zürich  café", "wrong": "Munich", "unanswerable": "",
    "unanswerable_answered": "the Eiffel Tower", "unanswerable_article": "The",
}
IMPOSSIBLE = [_gold("unanswerable", impossible=True), _gold("unanswerable_answered", impossible=True),
              _gold("unanswerable_article", impossible=True)]


def _dataset(tmp_path, examples, version):
    write_squad(tmp_path / f"{version}.json", examples, version=version)
    with open(tmp_path / f"{version}.json", encoding="utf-8") as f:
        return json.load(f)["data"]


def test_squad_scores_equal_the_official_scripts(tmp_path):
    # v1.1 rules: all questions answerable; a missing prediction scores 0 and counts.
    predictions = {k: v for k, v in METRIC_PREDICTIONS.items() if k != "wrong"}
    reference = official_v11_evaluate(_dataset(tmp_path, METRIC_EXAMPLES, "1.1"), predictions)
    scores = squad_scores(METRIC_EXAMPLES, predictions)
    assert scores == {"exact_match": pytest.approx(reference["exact_match"]), "f1": pytest.approx(reference["f1"]),
                      "total": len(METRIC_EXAMPLES), "missing": 1}
    assert 0 < scores["exact_match"] < scores["f1"] < 100

    # v2.0 rules, with unanswerable questions.
    examples = METRIC_EXAMPLES + IMPOSSIBLE
    reference = official_v20_evaluate(_dataset(tmp_path, examples, "2.0"), METRIC_PREDICTIONS)
    scores = squad_scores(examples, METRIC_PREDICTIONS)
    expected = {"missing": 0}
    for key, prefix in (("", ""), ("HasAns", "has_answer_"), ("NoAns", "no_answer_")):
        expected.update({f"{prefix}exact_match": pytest.approx(reference[key]["exact"]),
                         f"{prefix}f1": pytest.approx(reference[key]["f1"]), f"{prefix}total": reference[key]["total"]})
    assert scores == expected
    assert scores["no_answer_total"] == 3 and scores["no_answer_exact_match"] == pytest.approx(200 / 3)
    # The versions differ on an empty prediction against a gold answer of only an article.
    v11 = squad_scores([METRIC_EXAMPLES[7]], {"article_only_gold": ""}, version="1.1")
    v20 = squad_scores([METRIC_EXAMPLES[7]], {"article_only_gold": ""}, version="2.0")
    assert (v11["exact_match"], v11["f1"], v20["exact_match"], v20["f1"]) == (100.0, 0.0, 100.0, 100.0)
