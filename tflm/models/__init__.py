"""Models: the `Seq2Seq` interface and its implementations."""

from tflm.models.lstm_attention import LSTMAttentionSeq2Seq
from tflm.models.seq2seq import Seq2Seq, padding_mask

MODELS = {"lstm": LSTMAttentionSeq2Seq}


def get_model_class(name):
    if name not in MODELS:
        raise ValueError(f"Unknown model type {name!r}; known: {', '.join(MODELS)}.")
    return MODELS[name]
