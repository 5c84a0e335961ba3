"""Masked-LM pretraining and fine-tuning: the loss counts masked positions only, the pretraining run reports its
accuracies, a fine-tuned classifier starts from exactly the pretrained encoder (or a keras-hub folder's), padding
never changes the [CLS] output, and the fine-tuned export gives the in-memory probabilities and answers :classify."""

import http.client
import json
import os
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from tflm.models.bert import BackboneEncoder, bert_backbone
from tflm.tasks import Run, get_task
from tflm.tasks.masked_lm import MaskedLMLoss

WORDS = "sun moon cat dog red blue the a of and to in is was for on with as at by it this that from".split()
TINY = {"num_layers": 1, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32, "max_sequence_length": 64}


def write_documents(path, count=40, seed=0):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(count):
            for _ in range(rng.randint(3, 7)):
                f.write(" ".join(rng.choices(WORDS, k=rng.randint(4, 12))).capitalize() + ".\n")
            f.write("\n")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mlm")
    write_documents(directory / "train.txt", 60, 1)
    write_documents(directory / "valid.txt", 10, 2)
    task = get_task("masked_lm")
    config = task.config_from_dict({
        "data": {"dataset": None, "train_file": str(directory / "train.txt"), "valid_file": str(directory / "valid.txt"),
                 "sequence_length": 32, "batch_size": 16, "max_predictions": 6, "max_valid_sequences": 32},
        "vocabulary": {"type": "wordpiece", "size": 120}, "model": {"type": "bert", "params": TINY},
        "training": {"max_steps": 30, "warmup_steps": 5, "samples": 1, "checkpoint_every_seconds": None}})
    run_dir = str(directory / "run")
    task.train(config, run_dir, verbose=False)
    return run_dir


def test_the_masked_lm_loss_counts_masked_positions_only():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 10)).astype("float32")
    labels = {"mask_ids": np.array([[1, 2, 3, 0], [4, 5, 0, 0]]), "mask_weights": np.array([[1, 1, 1, 0], [1, 1, 0, 0]], "float32"),
              "next_sentence": np.array([0, 1])}
    outputs = {"mlm_logits": tf.constant(logits), "nsp_logits": tf.constant(rng.normal(size=(2, 2)).astype("float32"))}
    loss_sum, nll_sum, count = MaskedLMLoss()(labels, outputs)
    assert float(count) == 5.0
    changed = logits.copy()
    changed[0, 3] += 100.0  # the padding slots of the predictions
    changed[1, 2:] -= 50.0
    again = MaskedLMLoss()(labels, {**outputs, "mlm_logits": tf.constant(changed)})
    assert np.isclose(float(again[1]), float(nll_sum)) and np.isclose(float(again[0]), float(loss_sum))
    changed[0, 0, 0] += 5.0  # a real masked position does count
    assert not np.isclose(float(MaskedLMLoss()(labels, {**outputs, "mlm_logits": tf.constant(changed)})[1]),
                          float(nll_sum))
    expected_nll = -sum(np.log(np.exp(logits[r, s, labels["mask_ids"][r, s]]) / np.exp(logits[r, s]).sum())
                        for r in range(2) for s in range(4) if labels["mask_weights"][r, s])
    assert np.isclose(float(nll_sum), expected_nll, rtol=1e-5)


def test_a_pretraining_run_reports_masked_lm_and_next_sentence_accuracy(pretrained):
    scores = Run.open(pretrained).evaluate("valid")
    assert {"mlm_accuracy", "mlm_loss", "nsp_accuracy", "nsp_loss"} <= set(scores)
    assert 0 <= scores["mlm_accuracy"] <= 100 and scores["masked_tokens"] > 0
    assert Run.open(pretrained).tokenizers.mask_id == 4
    tags = set()
    for name in os.listdir(os.path.join(pretrained, "logs", "valid")):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(pretrained, "logs", "valid", name)):
            tags |= {value.tag for value in event.summary.value}
    assert {"valid/mlm_accuracy", "valid/nsp_accuracy", "fill_in_the_blanks"} <= tags, tags


def keyword_splits(directory):
    rng = random.Random(3)
    for split, count in (("train", 200), ("valid", 40), ("test", 40)):
        with open(directory / f"{split}.tsv", "w") as f:
            for _ in range(count):
                label = rng.choice(["cats", "sky"])
                words = rng.choices(WORDS[6:], k=5) + [rng.choice(["cat", "dog"] if label == "cats" else ["sun", "moon"])]
                rng.shuffle(words)
                f.write(" ".join(words) + f"\t{label}\n")


def finetune_config(directory, **init):
    return get_task("classification").config_from_dict({
        "data": {"dataset": None, **{f"{s}_file": str(directory / f"{s}.tsv") for s in ("train", "valid", "test")},
                 "max_length": 20, "batch_size": 16},
        "model": {"type": "bert", "params": {"dropout": 0.0}}, "init": init,
        "training": {"max_steps": 150, "learning_rate": 2e-3, "checkpoint_every_seconds": None}})


@pytest.mark.parametrize("weights", [True, False], ids=["pretrained", "scratch"])
def test_a_fine_tuned_model_starts_from_exactly_the_pretrained_encoder(pretrained, tmp_path, weights):
    keyword_splits(tmp_path)
    task = get_task("classification")
    config = finetune_config(tmp_path, from_run=pretrained, weights=weights)
    run_dir = str(tmp_path / "run")
    from tflm.tasks import runs

    config = runs.start_run(config, run_dir)
    data = task.prepare_data(config, run_dir)
    trainer = task.build_trainer(config, run_dir, data, verbose=False)
    task.training_data(config, data, trainer.model)
    source = Run.open(pretrained).load_model("best").backbone.get_weights()
    mine = trainer.model.encoder.backbone.get_weights()
    assert len(source) == len(mine)
    same = [np.array_equal(a, b) for a, b in zip(source, mine)]
    if weights:
        assert all(same)
        assert Run.open(run_dir).tokenizers["tokenizer"].pieces == Run.open(pretrained).tokenizers.pieces
    else:  # the control: the same sizes and tokenizer, random weights
        assert not all(same)


def test_padding_never_changes_the_cls_output():
    keras.utils.set_random_seed(0)
    encoder = BackboneEncoder(backbone=bert_backbone(30, **{**TINY, "dropout": 0.0}), pooling="cls")
    alone = {"token_ids": np.array([[2, 7, 8, 3]]), "segment_ids": np.zeros([1, 4], "int32"),
             "padding_mask": np.ones([1, 4], "int32")}
    batch = {"token_ids": np.array([[2, 7, 8, 3, 0, 0], [2, 9, 10, 11, 12, 3]]), "segment_ids": np.zeros([2, 6], "int32"),
             "padding_mask": np.array([[1, 1, 1, 1, 0, 0], [1] * 6], "int32")}
    np.testing.assert_allclose(encoder(alone), encoder(batch)[:1], atol=1e-5)
    unmasked = dict(batch, padding_mask=np.ones([2, 6], "int32"), token_ids=np.array([[2, 7, 8, 3, 9, 9], [2] * 6]))
    assert np.max(np.abs(encoder(unmasked)[:1] - encoder(alone))) > 1e-4  # (what padding changes when attended)


def test_a_classifier_fine_tuned_from_a_keras_hub_folder_exports_and_answers_classify(tmp_path):
    import keras_hub

    from tflm.export import export_run, load
    from tflm.serving import Server
    from tflm.tasks.predictor import serialize_examples

    keyword_splits(tmp_path)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    keras.utils.set_random_seed(1)
    preset = str(tmp_path / "preset")
    backbone = keras_hub.models.BertBackbone(len(vocabulary), **TINY)
    backbone.save_to_preset(preset)
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(preset)
    task = get_task("classification")
    run_dir = str(tmp_path / "run")
    task.train(finetune_config(tmp_path, from_preset=preset), run_dir, verbose=False)
    run = Run.open(run_dir)
    assert run.evaluate("test")["accuracy"] >= 80.0  # (chance 50: the keywords decide)
    path = export_run(run, "keywords", base_dir=str(tmp_path / "models"), check=True, check_sentences=4)
    texts = ["the cat is in the sun", "a moon", ""]
    expected = run.load_predictor("best").predict_proba(texts)
    served = load(path).run("classify", inputs=serialize_examples({"text": texts}))
    labels = run.tokenizers["labels"]
    for row in range(len(texts)):
        scores = dict(zip([c.decode() for c in served["classes"][row]], served["scores"][row]))
        np.testing.assert_allclose([scores[label] for label in labels], expected[row], atol=1e-5)
    server = Server(str(tmp_path / "models"), rest_port=0, grpc_port=0, max_batch_size=8).start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
        connection.request("POST", "/v1/models/keywords:classify", json.dumps(
            {"signature_name": "classify", "examples": [{"text": t} for t in texts]}))
        body = json.loads(connection.getresponse().read())
        assert [[label for label, _ in result] for result in body["results"]] == \
            [[c.decode() for c in row] for row in served["classes"]]
    finally:
        server.stop()


def test_adam_scales_each_variables_learning_rate_and_keeps_frozen_ones_still():
    from tflm.training.optimizers import FusedAdam

    variables = [keras.Variable(np.array([1.0, -1.0, 2.0], "float32"), name=name) for name in "abcd"]
    optimizer = FusedAdam(0.1, weight_decay=0.5)
    optimizer.build(variables)
    a, b, c, d = variables
    optimizer.set_learning_rate_multipliers([(a, 0.25, 0), (c, 1.0, 2), (d, 0.5, 1)])
    gradients = [tf.constant([0.5, -2.0, 3.0])] * 4
    start = [v.numpy().copy() for v in variables]
    optimizer.apply(gradients, variables)
    moved = [v.numpy() - s for v, s in zip(variables, start)]
    assert np.all(np.abs(moved[1]) > 1e-3)  # b: the schedule's rate (with weight decay)
    np.testing.assert_allclose(moved[0], 0.25 * moved[1], rtol=1e-5)  # a: a quarter of it, decay included
    assert np.array_equal(c.numpy(), start[2]) and np.array_equal(d.numpy(), start[3])  # frozen for now
    optimizer.apply(gradients, variables)
    assert np.array_equal(c.numpy(), start[2]) and not np.array_equal(d.numpy(), start[3])
    optimizer.apply(gradients, variables)
    assert not np.array_equal(c.numpy(), start[2])  # after its two frozen steps


def test_layer_decay_and_a_frozen_encoder_when_fine_tuning(pretrained, tmp_path):
    keyword_splits(tmp_path)
    task = get_task("classification")
    config = finetune_config(tmp_path, from_run=pretrained, layer_decay=0.5, frozen_steps=2)
    run_dir = str(tmp_path / "run")
    from tflm.tasks import runs

    config = runs.start_run(config, run_dir)
    data = task.prepare_data(config, run_dir)
    trainer = task.build_trainer(config, run_dir, data, verbose=False)
    task.training_data(config, data, trainer.model)
    factors = {variable.path: factor for variable, factor, frozen in
               task.learning_rate_multipliers(config, trainer.model)}
    # one encoder layer (TINY): the embeddings x0.5^2, the layer x0.5, the pooler x1; the head is not listed (x1)
    assert factors["token_embedding/embeddings"] == 0.25 and factors["pooled_dense/kernel"] == 1.0
    assert {factor for path, factor in factors.items() if path.startswith("transformer_layer_0/")} == {0.5}
    assert not any("classes" in path for path in factors)
    source = Run.open(pretrained).load_model("best").backbone.get_weights()
    head = [w.numpy().copy() for w in trainer.model.classes.weights]
    inputs, labels = next(iter(data.train_dataset(0)))
    for _ in range(2):
        trainer.train_on_batch(inputs, labels)
    assert all(np.array_equal(x, y) for x, y in zip(source, trainer.model.encoder.backbone.get_weights()))
    assert not np.array_equal(head[0], trainer.model.classes.weights[0].numpy())  # the head learns meanwhile
    trainer.train_on_batch(inputs, labels)
    assert not all(np.array_equal(x, y) for x, y in zip(source, trainer.model.encoder.backbone.get_weights()))


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    from tflm.tasks import language_modeling

    directory = tmp_path_factory.mktemp("gpt")
    write_documents(directory / "text.txt", 40, 4)
    config = language_modeling.LanguageModelConfig()
    config.data.dataset = None
    config.data.train_file = config.data.valid_file = config.data.test_file = str(directory / "text.txt")
    config.data.sequence_length, config.data.batch_size = 32, 8
    config.vocabulary = language_modeling.LMVocabularyConfig(type="wordpiece", size=120)
    config.model.params = {"hidden_dim": 16, "intermediate_dim": 32, "num_heads": 2, "num_layers": 2,
                           "max_sequence_length": 64, "dropout": 0.0}
    config.training = language_modeling.TrainingConfig(epochs=None, max_steps=10, samples=0,
                                                       checkpoint_every_seconds=None)
    run_dir = str(directory / "run")
    language_modeling.train(config, run_dir, verbose=False)
    return run_dir


def test_a_gpt_run_is_a_starting_point_with_last_token_pooling(gpt_run, tmp_path):
    from tflm.models.gpt import GPTEncoder
    from tflm.tasks.pretrained import pretrained_model_option

    assert pretrained_model_option({"init_from": gpt_run})["model"] == "gpt"
    keyword_splits(tmp_path)
    task = get_task("classification")
    config = finetune_config(tmp_path, from_run=gpt_run, layer_decay=0.8)
    config.model.type = "gpt"
    run_dir = str(tmp_path / "run")
    task.train(config, run_dir, verbose=False)
    run = Run.open(run_dir)
    assert run.tokenizers["tokenizer"].pieces == Run.open(gpt_run).tokenizers.pieces
    assert isinstance(run.load_model("best").encoder, GPTEncoder)
    assert run.evaluate("test")["accuracy"] >= 70  # the keyword decides the label

    # it started from exactly the GPT's weights
    config = runs_start(finetune_config(tmp_path, from_run=gpt_run), str(tmp_path / "again"), model_type="gpt")
    data = task.prepare_data(config, str(tmp_path / "again"))
    trainer = task.build_trainer(config, str(tmp_path / "again"), data, verbose=False)
    task.training_data(config, data, trainer.model)
    source = Run.open(gpt_run).load_model("best").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(source, trainer.model.encoder.backbone.get_weights()))

    # the last real token's state: padding after it changes nothing; without the mask it would
    encoder = trainer.model.encoder
    alone = {"token_ids": np.array([[2, 7, 8, 3]]), "padding_mask": np.ones([1, 4], "int32")}
    batch = {"token_ids": np.array([[2, 7, 8, 3, 0, 0], [2, 9, 10, 11, 12, 3]]),
             "padding_mask": np.array([[1, 1, 1, 1, 0, 0], [1] * 6], "int32")}
    np.testing.assert_allclose(encoder(alone), encoder(batch)[:1], atol=1e-5)
    assert np.max(np.abs(encoder(dict(batch, padding_mask=np.ones([2, 6], "int32")))[:1] - encoder(alone))) > 1e-4


def runs_start(config, run_dir, model_type):
    from tflm.tasks import runs

    config.model.type = model_type
    return runs.start_run(config, run_dir)
