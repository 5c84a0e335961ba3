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


def tiny_transformer(**kwargs):
    from tflm.models import TransformerSeq2Seq

    params = dict(hidden_dim=16, intermediate_dim=32, num_heads=2, num_encoder_layers=2, num_decoder_layers=2,
                  dropout=0.0)
    params.update(kwargs)
    return TransformerSeq2Seq(40, 40, **params)


@pytest.mark.parametrize("kwargs", [dict(), dict(normalize_first=False, position_embedding="learned",
                                                 share_embeddings=True, tie_output_embeddings=False)])
def test_transformer_steps_padding_and_keras_round_trip(kwargs, tmp_path):
    model = tiny_transformer(**kwargs)
    target = np.array([[2, 11, 12, 13], [2, 14, 15, 0]], "int32")
    logits = np.asarray(model({"source_ids": SOURCE, "target_ids": target}))
    state = model.initial_state(model.encode(SOURCE), max_length=6)
    for t in range(4):
        step_logits, state = model.decode_step(target[:, t], state, t)
        np.testing.assert_allclose(np.asarray(step_logits), logits[:, t], atol=1e-5)
    alone = np.asarray(model({"source_ids": SOURCE[1:, :3], "target_ids": target[1:, :3]}))
    np.testing.assert_allclose(alone[0], logits[1, :3], atol=1e-5)
    path = str(tmp_path / "transformer.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded({"source_ids": SOURCE, "target_ids": target})), logits)


def test_cross_attention_is_a_distribution_over_real_source_tokens():
    for model in (tiny(attention="bahdanau"), tiny_transformer()):
        weights = np.asarray(model.cross_attention(SOURCE, TARGET))
        assert weights.shape == (2, 4, 5)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
        assert (weights[1, :, 3:] == 0).all()


def test_decoder_block_get_config_round_trips():
    from tflm.layers import TransformerDecoderBlock

    block = TransformerDecoderBlock(32, 2, dropout=0.1, normalize_first=False, cross_attention=False)
    assert TransformerDecoderBlock.from_config(block.get_config()).get_config() == block.get_config()
