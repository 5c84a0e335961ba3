"""Models: the `Seq2Seq` interface and its implementations."""

from tflm.models.lstm_attention import LSTMAttentionSeq2Seq
from tflm.models.seq2seq import Seq2Seq, padding_mask

MODELS = {"lstm": LSTMAttentionSeq2Seq}

# Named sizes of each model type: constructor arguments (a run's model.params override them).
PRESETS = {
    "lstm": {
        "tiny": dict(embedding_dim=64, hidden_dim=128, num_encoder_layers=1, num_decoder_layers=1, dropout=0.1),
        "small": dict(embedding_dim=256, hidden_dim=256, num_encoder_layers=1, num_decoder_layers=1, dropout=0.2),
        "base": dict(embedding_dim=256, hidden_dim=512, num_encoder_layers=2, num_decoder_layers=2, dropout=0.2),
    },
}


def preset_params(model_type, preset):
    """The constructor arguments of a named size, e.g. `preset_params("lstm", "small")`."""
    if preset is None:
        return {}
    presets = PRESETS.get(model_type, {})
    if preset not in presets:
        raise ValueError(f"Model type {model_type!r} has no preset {preset!r}; known: {', '.join(presets) or 'none'}.")
    return dict(presets[preset])


def get_model_class(name):
    if name not in MODELS:
        raise ValueError(f"Unknown model type {name!r}; known: {', '.join(MODELS)}.")
    return MODELS[name]
