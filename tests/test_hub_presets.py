"""Local keras-hub preset folders and Hugging Face BERT folders as tflm encoders (`tflm.models.hub`): the
backbone and tokenizer are keras-hub's own, the Hugging Face weights land where they belong, the tokenizer
survives a run's copy, and `tokenize + backbone` exports into a SavedModel TF Serving can run."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

keras = pytest.importorskip("keras")
keras_hub = pytest.importorskip("keras_hub")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from tflm.models.hub import (  # noqa: E402
    HubPresetError,
    HubTokenizer,
    encoder_inputs,
    load_hub_encoder,
    pooled_output,
    save_hub_encoder,
)
from tflm.text import load_tokenizer  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# ids 0-4 are the specials, as in BERT's own vocab.txt order they can be anywhere: put [CLS] and [SEP] later
WORDS = ("the a quick brown fox jump ##s ##ed over lazy dog cat sat on mat , . ! hello world is was and "
         "of to in it that with as for his her they be at one have this from or had by word but what some "
         "we can out other were all there when up use your how said an each she which do their").split()
VOCAB = ["[PAD]", "[UNK]"] + WORDS[:5] + ["[CLS]", "[SEP]", "[MASK]"] + WORDS[5:]
HIDDEN, LAYERS, HEADS, INTERMEDIATE, POSITIONS = 16, 2, 2, 32, 32
TEXTS = ["The quick brown fox jumps over the lazy dog.", "hello world", "Zebra sat on the MAT!"]


def backbone_inputs(ids):
    ids = np.array(ids, dtype="int32")
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": (ids != 0).astype("int32")}


IDS = backbone_inputs([[VOCAB.index("[CLS]"), 3, 4, 5, VOCAB.index("[SEP]"), 0], [VOCAB.index("[CLS]"), 20, 21,
                                                                                  VOCAB.index("[SEP]"), 0, 0]])


@pytest.fixture(scope="module")
def keras_preset(tmp_path_factory):
    """A tiny random BertBackbone and its BertTokenizer, saved with keras-hub's `save_to_preset`."""
    keras.utils.set_random_seed(1)
    directory = str(tmp_path_factory.mktemp("hub") / "bert_preset")
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(VOCAB), num_layers=LAYERS, num_heads=HEADS,
                                             hidden_dim=HIDDEN, intermediate_dim=INTERMEDIATE,
                                             max_sequence_length=POSITIONS)
    backbone.save_to_preset(directory)
    keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True).save_to_preset(directory)
    return directory, backbone


def hf_tensors(seed=0):
    """Random tensors of a BERT (BertModel) under the names Hugging Face saves and keras-hub's convert_bert reads."""
    rng = np.random.default_rng(seed)

    def random(*shape):
        return (rng.normal(size=shape) * 0.3).astype("float32")

    tensors = {"embeddings.word_embeddings.weight": random(len(VOCAB), HIDDEN),
               "embeddings.position_embeddings.weight": random(POSITIONS, HIDDEN),
               "embeddings.token_type_embeddings.weight": random(2, HIDDEN),
               "embeddings.LayerNorm.weight": 1 + random(HIDDEN), "embeddings.LayerNorm.bias": random(HIDDEN),
               "pooler.dense.weight": random(HIDDEN, HIDDEN), "pooler.dense.bias": random(HIDDEN)}
    for layer in range(LAYERS):
        prefix = f"encoder.layer.{layer}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            tensors[f"{prefix}{name}.weight"], tensors[f"{prefix}{name}.bias"] = random(HIDDEN, HIDDEN), random(HIDDEN)
        tensors[prefix + "intermediate.dense.weight"] = random(INTERMEDIATE, HIDDEN)
        tensors[prefix + "intermediate.dense.bias"] = random(INTERMEDIATE)
        tensors[prefix + "output.dense.weight"] = random(HIDDEN, INTERMEDIATE)
        tensors[prefix + "output.dense.bias"] = random(HIDDEN)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[f"{prefix}{norm}.weight"], tensors[f"{prefix}{norm}.bias"] = 1 + random(HIDDEN), random(HIDDEN)
    return tensors


def write_hf_bert(directory, tensors):
    """A Hugging Face Transformers BERT folder, written by hand: config.json, vocab.txt, tokenizer_config.json
    and model.safetensors."""
    os.makedirs(directory, exist_ok=True)
    config = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": len(VOCAB),
              "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "intermediate_size": INTERMEDIATE, "max_position_embeddings": POSITIONS, "type_vocab_size": 2,
              "hidden_act": "gelu", "layer_norm_eps": 1e-12}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f)
    safetensors_numpy.save_file(tensors, os.path.join(directory, "model.safetensors"))
    return directory


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    tensors = hf_tensors()
    return write_hf_bert(str(tmp_path_factory.mktemp("hub") / "hf_bert"), tensors), tensors


def numpy_bert(tensors, inputs):
    """BERT's forward pass in numpy from the Hugging Face tensors (with keras-hub's tanh GELU): the embeddings
    after their LayerNorm, and the pooled output."""
    def norm(x, name):
        x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
        return x * tensors[name + ".weight"] + tensors[name + ".bias"]

    def dense(x, name):
        return x @ tensors[name + ".weight"].T + tensors[name + ".bias"]

    ids, mask = inputs["token_ids"], inputs["padding_mask"]
    x = (tensors["embeddings.word_embeddings.weight"][ids] + tensors["embeddings.position_embeddings.weight"][
        np.arange(ids.shape[1])] + tensors["embeddings.token_type_embeddings.weight"][inputs["segment_ids"]])
    embeddings = x = norm(x, "embeddings.LayerNorm")
    batch, length, size = ids.shape[0], ids.shape[1], HIDDEN // HEADS
    for layer in range(LAYERS):
        p = f"encoder.layer.{layer}."

        def heads(name):
            return dense(x, p + name).reshape(batch, length, HEADS, size).transpose(0, 2, 1, 3)

        scores = heads("attention.self.query") @ heads("attention.self.key").transpose(0, 1, 3, 2) / np.sqrt(size)
        scores = np.where(mask[:, None, None, :] > 0, scores, -1e9)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ heads("attention.self.value")).transpose(0, 2, 1, 3).reshape(batch, length, HIDDEN)
        x = norm(x + dense(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = dense(x, p + "intermediate.dense")
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
        x = norm(x + dense(h, p + "output.dense"), p + "output.LayerNorm")
    return embeddings, np.tanh(dense(x[:, 0], "pooler.dense"))


def test_a_keras_hub_preset_loads_as_keras_hub_loads_it(keras_preset):
    directory, original = keras_preset
    backbone, tokenizer = load_hub_encoder(directory)
    reference = keras_hub.models.Backbone.from_preset(directory)
    assert type(backbone) is type(reference) is keras_hub.models.BertBackbone
    outputs = backbone(IDS)
    for name in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(outputs[name], reference(IDS)[name], atol=1e-6)
        np.testing.assert_allclose(outputs[name], original(IDS)[name], atol=1e-6)  # the saved weights, not new ones
    hub_tokenizer = keras_hub.models.Tokenizer.from_preset(directory)
    assert tokenizer.tokenize(TEXTS).to_list() == [list(hub_tokenizer(text)) for text in TEXTS]
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id) == \
        tuple(VOCAB.index(token) for token in SPECIALS)
    assert tokenizer.vocabulary_size == len(VOCAB) and tokenizer.pieces == VOCAB
    assert tokenizer.token_to_id("fox") == VOCAB.index("fox") and tokenizer.token_to_id("zebra") == 1
    assert tokenizer.tokenize("zebra").numpy().tolist() == [1]  # a scalar gives a vector, unknown words [UNK]


def test_a_hugging_face_folder_gives_the_bert_its_tensors_describe(hf_folder):
    directory, tensors = hf_folder
    backbone, tokenizer = load_hub_encoder(directory)
    reference = keras_hub.models.Backbone.from_preset(directory)
    outputs = backbone(IDS)
    np.testing.assert_allclose(outputs["pooled_output"], reference(IDS)["pooled_output"], atol=1e-6)
    embeddings, pooled = numpy_bert(tensors, IDS)
    layer = keras.Model(backbone.inputs, backbone.get_layer("embeddings_layer_norm").output)
    np.testing.assert_allclose(layer(IDS), embeddings, atol=1e-4)
    np.testing.assert_allclose(outputs["pooled_output"], pooled, atol=1e-4)
    hub_tokenizer = keras_hub.models.Tokenizer.from_preset(directory)
    ids = tokenizer.tokenize(TEXTS).to_list()
    assert ids == [list(hub_tokenizer(text)) for text in TEXTS]
    assert ids[1] == [VOCAB.index("hello"), VOCAB.index("world")]  # lower-cased (do_lower_case), no [CLS]/[SEP]
    assert (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id) == (7, 8, 0)


def test_a_saved_tokenizer_and_preset_copy_stand_without_the_original_folder(keras_preset, tmp_path):
    source, _ = keras_preset
    directory = str(tmp_path / "original")
    shutil.copytree(source, directory)
    backbone, tokenizer = load_hub_encoder(directory)
    vocab = tmp_path / "run" / "vocab"
    tokenizer.save(str(vocab / ("tokenizer" + tokenizer.file_suffix)))
    save_hub_encoder(backbone, tokenizer, str(vocab / "preset"))
    shutil.rmtree(directory)
    reloaded = load_tokenizer(str(vocab / "tokenizer.hub"))  # by its suffix, as a run loads every tokenizer
    assert isinstance(reloaded, HubTokenizer)
    assert reloaded.tokenize(TEXTS).to_list() == tokenizer.tokenize(TEXTS).to_list()
    assert (reloaded.cls_id, reloaded.sep_id, reloaded.pad_id, reloaded.mask_id) == (7, 8, 0, 9)
    copy, copy_tokenizer = load_hub_encoder(str(vocab / "preset"), load_weights=False)
    assert copy.get_config() == backbone.get_config()
    assert copy_tokenizer.tokenize(TEXTS).to_list() == tokenizer.tokenize(TEXTS).to_list()
    assert "model.weights.h5" not in os.listdir(vocab / "preset")
    with pytest.raises(HubPresetError, match="without weights"):
        load_hub_encoder(str(vocab / "preset"))
    ids = tf.constant([[7, 3, 4, 8, 0], [7, 1, 23, 8, 0]])
    assert reloaded.detokenize(ids).numpy().tolist() == [b"a quick", b"[UNK] hello"]


def test_a_backbone_without_segment_ids_pools_its_first_position(tmp_path):
    directory = str(tmp_path / "distilbert")
    keras_hub.models.DistilBertBackbone(vocabulary_size=len(VOCAB), num_layers=1, num_heads=2, hidden_dim=8,
                                        intermediate_dim=16, max_sequence_length=16).save_to_preset(directory)
    keras_hub.models.DistilBertTokenizer(vocabulary=VOCAB, lowercase=True).save_to_preset(directory)
    backbone, tokenizer = load_hub_encoder(directory)
    inputs = encoder_inputs(backbone, IDS["token_ids"], IDS["segment_ids"], IDS["padding_mask"])
    assert sorted(inputs) == ["padding_mask", "token_ids"]
    pooled = pooled_output(backbone, backbone(inputs))
    np.testing.assert_allclose(pooled, backbone(inputs)[:, 0, :])
    assert pooled.shape == (2, 8) and (tokenizer.cls_id, tokenizer.sep_id) == (7, 8)


def test_tokenize_and_backbone_export_without_python_ops(hf_folder, tmp_path):
    from tflm.export.check import check_ops, run_tf1_requests

    backbone, tokenizer = load_hub_encoder(hf_folder[0])

    def encode(text):
        ids = tokenizer.tokenize(text)
        rows = ids.nrows()
        ids = tf.concat([tf.fill([rows, 1], tokenizer.cls_id), ids, tf.fill([rows, 1], tokenizer.sep_id)], 1)
        ids = ids.to_tensor(tokenizer.pad_id)
        mask = tf.cast(tf.not_equal(ids, tokenizer.pad_id), tf.int32)
        return {"pooled": pooled_output(backbone, backbone(encoder_inputs(backbone, ids, tf.zeros_like(ids), mask)))}

    archive = keras.export.ExportArchive()
    archive.track(backbone)
    archive.track(tokenizer)
    archive.add_endpoint("serving_default", encode, input_signature=[tf.TensorSpec([None], tf.string)])
    path = str(tmp_path / "export")
    archive.write_out(path, verbose=False)
    problems, _, _ = check_ops(path)
    assert problems == []
    expected = encode(tf.constant(TEXTS))["pooled"].numpy()
    loaded = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(loaded["pooled"], expected, atol=1e-5)
    result, error = run_tf1_requests(path, [{"signature": "serving_default", "inputs": {"text": TEXTS}}])
    assert error is None
    np.testing.assert_allclose(result["results"][0]["pooled"], expected, atol=1e-5)


def _broken(kind, tmp_path, hf_folder, keras_preset):
    directory = tmp_path / kind
    if kind == "missing":
        return str(directory), "no such folder"
    if kind in ("hf_no_weights", "hf_no_vocab", "hf_no_case"):
        shutil.copytree(hf_folder[0], directory)
        if kind == "hf_no_weights":
            os.remove(directory / "model.safetensors")
            (directory / "pytorch_model.bin").write_bytes(b"")
            return str(directory), "no model.safetensors.*pytorch_model.bin is not read: convert it to safetensors"
        if kind == "hf_no_case":
            (directory / "tokenizer_config.json").write_text("{}")
            return str(directory), "tokenizer_config.json has no \"do_lower_case\""
        os.remove(directory / "vocab.txt")
        return str(directory), "a bert folder without vocab.txt"
    if kind == "keras_no_tokenizer":
        shutil.copytree(keras_preset[0], directory)
        os.remove(directory / "tokenizer.json")
        return str(directory), "keras-hub preset without tokenizer.json"
    directory.mkdir()
    if kind == "empty":
        return str(directory), "no config.json \\(found an empty folder\\)"
    config = {"gpt2": {"model_type": "gpt2", "vocab_size": 50, "n_layer": 1, "n_head": 2, "n_embd": 8,
                       "n_positions": 16, "architectures": ["GPT2LMHeadModel"]},
              "unknown_type": {"model_type": "deberta-v2"}, "neither": {"hidden_size": 8}}[kind]
    (directory / "config.json").write_text(json.dumps(config))
    return str(directory), {"gpt2": "GPT2Backbone, a decoder",
                            "unknown_type": "cannot load it .*no converter .*deberta-v2",
                            "neither": "neither \"registered_name\" \\(keras-hub\\) nor \"model_type\""}[kind]


@pytest.mark.parametrize("kind", ["missing", "empty", "neither", "gpt2", "unknown_type", "hf_no_weights",
                                  "hf_no_vocab", "hf_no_case", "keras_no_tokenizer"])
def test_a_folder_that_is_not_a_loadable_encoder_gets_one_clear_line(kind, tmp_path, hf_folder, keras_preset):
    directory, message = _broken(kind, tmp_path, hf_folder, keras_preset)
    with pytest.raises(HubPresetError, match=message) as error:
        load_hub_encoder(directory)
    text = str(error.value)
    assert "\n" not in text and text.startswith(os.path.abspath(directory))
