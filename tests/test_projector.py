import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins.projector import ProjectorConfig

from tflm.layers import PretrainedEmbedding
from tflm.text import SPECIAL_TOKENS
from tflm.training import CheckpointError, model_checkpoint, write_projector

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
