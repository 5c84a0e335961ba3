import logging
import os
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins.projector import ProjectorConfig

from tflm.layers import PretrainedEmbedding
from tflm.text import SPECIAL_TOKENS
from tflm.training import CheckpointError, checkpoint_tensor_name, model_checkpoint, write_projector
from tflm.training.projector import embedding_tables, readable_words

WORDS = list(SPECIAL_TOKENS) + ["the", "cat", "sat", "tab\tword"]


def model_with_checkpoint(run_dir, mode="multichannel"):
    model = keras.Sequential([keras.Input((None,), dtype="int32"),
                              PretrainedEmbedding(len(WORDS), 3, mode=mode, name="words"),
                              keras.layers.Dense(4), keras.layers.Dense(len(WORDS))])
    model.layers[0].set_vectors(np.arange(len(WORDS) * 3, dtype="float32").reshape(len(WORDS), 3))
    manager = tf.train.CheckpointManager(model_checkpoint(model), str(run_dir / "checkpoints"), max_to_keep=2,
                                         checkpoint_name="ckpt")
    manager.save(checkpoint_number=1)
    model.layers[0].embeddings.assign_add(tf.ones_like(model.layers[0].embeddings))  # the latest differs
    return model, manager.save(checkpoint_number=2)


def test_config_names_the_tables_of_the_latest_checkpoint(tmp_path):
    model, latest = model_with_checkpoint(tmp_path)
    path = write_projector(str(tmp_path), model, WORDS)
    assert path == str(tmp_path / "logs" / "projector_config.pbtxt")
    config = text_format.Parse((tmp_path / "logs" / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert config.model_checkpoint_path == latest
    stored = dict(tf.train.list_variables(latest))
    reader = tf.train.load_checkpoint(latest)
    embedding = model.layers[0]
    assert len(config.embeddings) == 2  # the frozen and the fine-tuned table; not the (4, 7) output kernel
    by_name = {e.tensor_name: e for e in config.embeddings}
    for table in (embedding.static_embeddings, embedding.embeddings):
        name = next(n for n in by_name if np.array_equal(reader.get_tensor(n), keras.ops.convert_to_numpy(table)))
        assert stored[name] == [len(WORDS), 3]
        assert by_name[name].metadata_path == "metadata.tsv"
    rows = (tmp_path / "logs" / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    assert rows == WORDS[:-1] + ["tab word"]


def test_a_chosen_table_and_the_errors(tmp_path):
    model, _ = model_with_checkpoint(tmp_path, mode="non_static")
    write_projector(str(tmp_path), model, WORDS, tables=model.layers[0].embeddings)
    config = text_format.Parse((tmp_path / "logs" / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert [e.tensor_name for e in config.embeddings] == ["model/variables_by_index/00000/.ATTRIBUTES/VARIABLE_VALUE"]
    with pytest.raises(ValueError, match="no 2-D weight has 5 rows"):
        write_projector(str(tmp_path), model, WORDS[:5])
    other = keras.Sequential([keras.Input((None,), dtype="int32"), PretrainedEmbedding(len(WORDS), 5)])
    other.build((None, None))
    with pytest.raises(CheckpointError, match="is of shape"):
        write_projector(str(tmp_path), other, WORDS)
    with pytest.raises(CheckpointError, match="untrained: no last checkpoint"):
        write_projector(str(tmp_path / "untrained"), model, WORDS)


# ----------------------------------------------------------------------------------------- runs of every task

LM_TEXT = "Le café est chaud.\nThe cat sat on the mat.\nNaïve readers read slowly.\n" * 20


def projector_files(run_dir):
    """(the parsed projector_config.pbtxt, {metadata file: its lines}) of a run."""
    logs = os.path.join(run_dir, "logs")
    with open(os.path.join(logs, "projector_config.pbtxt")) as f:
        config = text_format.Parse(f.read(), ProjectorConfig())
    metadata = {}
    for embedding in config.embeddings:
        with open(os.path.join(logs, embedding.metadata_path), encoding="utf-8") as f:
            metadata[embedding.metadata_path] = f.read().splitlines()
    return config, metadata


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A tiny GPT on byte-level BPE, trained for two steps: the driver writes its projector."""
    from tflm.tasks import language_modeling

    directory = tmp_path_factory.mktemp("projector-lm")
    (directory / "text.txt").write_text(LM_TEXT, encoding="utf-8")
    config = language_modeling.LanguageModelConfig()
    config.data.dataset = None
    config.data.train_file = config.data.valid_file = config.data.test_file = str(directory / "text.txt")
    config.data.sequence_length, config.data.batch_size = 16, 4
    config.vocabulary.type, config.vocabulary.size = "byte_bpe", 300
    config.model.preset = "tiny"
    config.training = language_modeling.TrainingConfig(epochs=None, max_steps=2, samples=0, label_smoothing=0.0)
    run_dir = str(directory / "run")
    language_modeling.train(config, run_dir, verbose=False)
    return run_dir, config


def test_a_language_model_run_shows_its_token_embedding_with_readable_words(lm_run):
    from tflm.tasks import Run

    run_dir, _ = lm_run
    run = Run.open(run_dir)
    tokenizer = run.tokenizers
    config, metadata = projector_files(run_dir)
    assert config.model_checkpoint_path == tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    assert [e.metadata_path for e in config.embeddings] == ["metadata.tsv"]
    rows = metadata["metadata.tsv"]
    assert len(rows) == tokenizer.vocabulary_size == 300 and rows[:4] == list(SPECIAL_TOKENS)
    assert "é" in rows and "\\n" in rows and "▁the" in rows  # byte-level pieces as text: é, a line break, " the"
    assert "Ã©" not in rows and "Ġthe" not in rows
    model = run.load_model("last")
    table = keras.ops.convert_to_numpy(model.token_embedding.embeddings)
    stored = tf.train.load_variable(config.model_checkpoint_path, config.embeddings[0].tensor_name)
    assert stored.shape == (300, table.shape[1]) and np.array_equal(stored, table)


def test_a_translation_run_with_two_vocabularies_shows_both_each_with_its_own_words(tmp_path):
    from tflm.tasks import Run, translation

    config = translation.TranslationConfig(
        data=translation.DataConfig(batch_tokens=400, max_train_pairs=200, max_source_length=20,
                                    max_target_length=20),
        vocabulary=translation.VocabularyConfig(size=120, joint=False),
        model=translation.ModelConfig(type="transformer", preset="tiny", params={"num_encoder_layers": 1}),
        training=translation.TrainingConfig(max_steps=2, samples=0),
    )
    run_dir = str(tmp_path / "run")
    translation.train(config, run_dir, verbose=False)
    run = Run.open(run_dir)
    source, target = run.tokenizers
    assert source is not target and source.vocabulary_size == target.vocabulary_size == 120  # told apart by part
    assert source.pieces != target.pieces
    config, metadata = projector_files(run_dir)
    assert [e.metadata_path for e in config.embeddings] == ["metadata.tsv", "metadata-target.tsv"]
    assert metadata["metadata.tsv"] == source.pieces and metadata["metadata-target.tsv"] == target.pieces
    model = run.load_model("last")
    for embedding, part in zip(config.embeddings, (model.encoder, model.decoder)):
        assert embedding.tensor_name == checkpoint_tensor_name(model, part.embedding.embeddings)
        stored = tf.train.load_variable(config.model_checkpoint_path, embedding.tensor_name)
        assert stored.shape == (120, 64)
        assert np.array_equal(stored, keras.ops.convert_to_numpy(part.embedding.embeddings))


def test_a_joint_vocabulary_labels_one_shared_table():
    from tflm.models import TransformerSeq2Seq

    tokenizer = types.SimpleNamespace(pieces=[f"w{i}" for i in range(11)])
    model = TransformerSeq2Seq(11, 11, share_embeddings=True, hidden_dim=8, intermediate_dim=16, num_heads=2,
                               num_encoder_layers=1, num_decoder_layers=1)
    model.build()
    [(name, words, tables)] = embedding_tables(model, (tokenizer, tokenizer))
    assert name == "joint" and words == tokenizer.pieces and [t.path for t in tables] == [
        model.decoder.embedding.embeddings.path]
    assert embedding_tables(model, None) == [] and embedding_tables(model, {"ids": object()}) == []


def test_readable_labels_of_characters():
    from tflm.text import train_tokenizer

    words = readable_words(train_tokenizer(["a b\tc\n"], "character"))
    assert words[:4] == list(SPECIAL_TOKENS) and {"▁", "\\t", "\\n", "a"} <= set(words[4:])


def test_tflm_projector_writes_the_best_checkpoints_tables_in_a_subprocess(lm_run, tmp_path):
    import shutil

    run_dir = str(tmp_path / "run")
    shutil.copytree(lm_run[0], run_dir)
    shutil.rmtree(os.path.join(run_dir, "logs"))
    result = subprocess.run([sys.executable, "-m", "tflm.cli", "projector", "--run-dir", run_dir, "--checkpoint",
                             "best"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == os.path.join(run_dir, "logs", "projector_config.pbtxt")
    config, metadata = projector_files(run_dir)
    assert config.model_checkpoint_path == tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints", "best"))
    assert len(metadata["metadata.tsv"]) == 300
    assert tf.train.load_variable(config.model_checkpoint_path, config.embeddings[0].tensor_name).shape[0] == 300


def test_a_failing_write_only_warns_and_a_task_without_tables_writes_nothing(lm_run, monkeypatch, caplog, tmp_path):
    from tflm.tasks import language_modeling
    from tflm.training import projector

    run_dir, config = lm_run
    before = open(os.path.join(run_dir, "logs", "projector_config.pbtxt")).read()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(projector, "write_projector", fail)
    with caplog.at_level(logging.WARNING, logger="tflm"):
        result = language_modeling.train(config, run_dir, verbose=False)  # nothing left to train: then the projector
    assert result.stopped_by == "already_done"
    assert "Embedding Projector files were not written" in caplog.text and "OSError: disk full" in caplog.text
    assert open(os.path.join(run_dir, "logs", "projector_config.pbtxt")).read() == before
    monkeypatch.undo()

    class NoTables:
        name = "no_tables"

        def projector_tables(self, config, model, tokenizers):
            return []

    assert projector.write_run_projector(NoTables(), str(tmp_path), None, None, None) is None
    assert not os.path.exists(tmp_path / "logs")
