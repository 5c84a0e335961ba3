"""Models: the `Seq2Seq` and `LanguageModel` interfaces and their implementations."""

from tflm.models.encoder_decoder import DECODERS, ENCODERS, ComposedSeq2Seq, EncoderDecoder
from tflm.models.gpt import GPT
from tflm.models.language_model import LanguageModel
from tflm.models.lstm_attention import GRUAttentionSeq2Seq, LSTMAttentionSeq2Seq
from tflm.models.seq2seq import Seq2Seq, padding_mask
from tflm.models.transformer import TransformerSeq2Seq
from tflm.models.transformer_xl import TransformerXL

# Model types (a run's config.json `model.type`); each is built as `cls(vocabulary size(s), dtype=..., **params)`.
# "seq2seq" pairs any encoder with any decoder: params encoder= "transformer" | "lstm" | "gru" | "cnn",
# decoder= "transformer" | "lstm" | "gru".
MODELS = {"lstm": LSTMAttentionSeq2Seq, "gru": GRUAttentionSeq2Seq, "transformer": TransformerSeq2Seq,
          "seq2seq": ComposedSeq2Seq, "gpt": GPT, "transformer_xl": TransformerXL}

# Named sizes of each model type: constructor arguments (a run's model.params override them).
PRESETS = {
    "lstm": {
        "tiny": dict(embedding_dim=64, hidden_dim=128, num_encoder_layers=1, num_decoder_layers=1, dropout=0.1),
        "small": dict(embedding_dim=256, hidden_dim=256, num_encoder_layers=1, num_decoder_layers=1, dropout=0.2),
        "base": dict(embedding_dim=256, hidden_dim=512, num_encoder_layers=2, num_decoder_layers=2, dropout=0.2),
    },
    "gru": {
        "tiny": dict(embedding_dim=64, hidden_dim=128, num_encoder_layers=1, num_decoder_layers=1, dropout=0.1),
        "small": dict(embedding_dim=256, hidden_dim=256, num_encoder_layers=1, num_decoder_layers=1, dropout=0.2),
    },
    # sizes only: params "encoder" and "decoder" pick the parts (both "transformer" by default)
    "seq2seq": {
        "tiny": dict(hidden_dim=64, embedding_dim=64, intermediate_dim=256, num_heads=2, num_encoder_layers=2,
                     num_decoder_layers=1, dropout=0.1),
        "small": dict(hidden_dim=256, embedding_dim=256, intermediate_dim=1024, num_heads=4, num_encoder_layers=3,
                      num_decoder_layers=2, dropout=0.2),
    },
    "transformer": {
        "tiny": dict(hidden_dim=64, intermediate_dim=256, num_heads=2, num_encoder_layers=2, num_decoder_layers=2),
        # the size of OpenNMT-tf's comparison model: 3 layers, d=256, 4 heads, ff 1024
        "small": dict(hidden_dim=256, intermediate_dim=1024, num_heads=4, num_encoder_layers=3, num_decoder_layers=3),
        "base": dict(hidden_dim=512, intermediate_dim=2048, num_heads=8, num_encoder_layers=6, num_decoder_layers=6),
    },
    "gpt": {
        "tiny": dict(hidden_dim=64, intermediate_dim=256, num_heads=2, num_layers=2),
        # nanoGPT's "baby GPT" for Shakespeare characters: 6 layers, 6 heads, 384 wide
        "small": dict(hidden_dim=384, intermediate_dim=1536, num_heads=6, num_layers=6, dropout=0.2),
        "base": dict(hidden_dim=768, intermediate_dim=3072, num_heads=12, num_layers=12),  # GPT-2 small
    },
    "transformer_xl": {
        "tiny": dict(hidden_dim=64, intermediate_dim=256, num_heads=2, num_layers=2, memory_length=32),
        "small": dict(hidden_dim=384, intermediate_dim=1536, num_heads=6, num_layers=6, dropout=0.2,
                      memory_length=256),
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
