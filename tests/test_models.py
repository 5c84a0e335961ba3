import keras
import numpy as np
import pytest

from tflm.models import LSTMAttentionSeq2Seq

SOURCE = np.array([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0]], "int32")
TARGET = np.array([[2, 11, 12, 13], [2, 14, 15, 0]], "int32")


def tiny(**kwargs):
    params = dict(embedding_dim=8, hidden_dim=12, num_encoder_layers=2, num_decoder_layers=2, dropout=0.0)
    params.update(kwargs)
    return LSTMAttentionSeq2Seq(40, 30, **params)


@pytest.mark.parametrize("kwargs", [dict(attention="bahdanau"), dict(attention="luong_dot", input_feeding=False),
                                    dict(attention="luong_general", bidirectional=False)])
def test_decode_step_matches_teacher_forcing_and_padding_is_inert(kwargs):
    model = tiny(**kwargs)
    logits = np.asarray(model({"source_ids": SOURCE, "target_ids": TARGET}))
    assert logits.shape == (2, 4, 30)
    state = model.initial_state(model.encode(SOURCE), max_length=8)
    for t in range(4):
        step_logits, state = model.decode_step(TARGET[:, t], state, t)
        np.testing.assert_allclose(np.asarray(step_logits), logits[:, t], atol=1e-5)
    alone = np.asarray(model({"source_ids": SOURCE[1:, :3], "target_ids": TARGET[1:, :3]}))
    np.testing.assert_allclose(alone[0], logits[1, :3], atol=1e-5)


def test_keras_file_round_trip(tmp_path):
    model = tiny(attention="bahdanau", share_embeddings=False)
    expected = np.asarray(model({"source_ids": SOURCE, "target_ids": TARGET}))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded({"source_ids": SOURCE, "target_ids": TARGET})), expected)
    assert loaded.get_config() == model.get_config()


def test_shared_embeddings_need_one_vocabulary():
    with pytest.raises(ValueError, match="joint vocabulary"):
        LSTMAttentionSeq2Seq(40, 30, share_embeddings=True)
    model = LSTMAttentionSeq2Seq(40, 40, embedding_dim=8, hidden_dim=8, share_embeddings=True)
    model.build()
    assert model.source_embedding is model.target_embedding
