"""tflm models as CTranslate2 model specs (`ctranslate2.specs`): the weights of a Transformer encoder-decoder
for `ctranslate2.Translator`, of a GPT language model for `ctranslate2.Generator`, with their vocabularies.

What converts:

- Transformer encoder-decoders: model type `"transformer"` (`TransformerSeq2Seq`), and `"seq2seq"` when both
  parts are Transformers of one width and the decoder has no copy attention. Pre-LN and post-LN, sinusoidal
  or learned positions, tied or untied output embedding, shared or separate embeddings.
- GPT language models (`"gpt"`): learned or rotary positions.

Everything else (LSTM/GRU encoder-decoders, Transformer-XL, copy attention, a projected memory) raises a
`ValueError` naming the model type and what is supported.

How tflm's computation maps to CTranslate2's:

- embeddings are scaled by sqrt(hidden_dim) in the encoder-decoders (`scale_embeddings=True`), not in GPT;
- keras-hub's `SinePositionEncoding` interleaves sin (even features) and cos (odd features), which is not
  CTranslate2's built-in table (sin then cos, another frequency spacing): the exact table is written into the
  spec (`position_encodings.encodings`, `SINUSOIDAL_POSITIONS` positions or the model's
  `max_sequence_length`, whichever is more); learned positions are their table;
- the self-attention's query and key/value projections are fused into `linear[0]` (queries, keys, values),
  the cross-attention's query is `linear[0]` and its key/value `linear[1]`; Keras kernels `(in, out)` are
  transposed to CTranslate2's `(out, in)`;
- layer norms use tflm's epsilon (1e-5) through the model config's `layer_norm_epsilon`;
- keras-hub's `RotaryEmbedding` rotates the two halves of each head (`rotary_interleave=False`);
- the source gets EOS appended by CTranslate2 (`add_source_eos`, as tflm's `Translator.encode_source`), the
  decoder starts from BOS `<s>` (`decoder_start_token`), as tflm's decoding does.

Example:
>>> spec = model_spec(model, (source_tokenizer, target_tokenizer))
>>> spec.validate(); spec.optimize(quantization="int8"); spec.save("ct2/model")
"""

import numpy as np

from tflm.text.special_tokens import BOS_ID, EOS_ID, UNK_ID

SINUSOIDAL_POSITIONS = 1024  # the least number of positions a converted sinusoidal table holds
SUPPORTED = ("Transformer encoder-decoders (model type 'transformer', or 'seq2seq' with encoder='transformer' "
             "and decoder='transformer' and no copy attention) and GPT language models ('gpt')")
_ACTIVATIONS = {"relu": "RELU", "gelu": "GELU", "silu": "SWISH", "swish": "SWISH", "tanh": "Tanh",
                "sigmoid": "Sigmoid"}


def _ctranslate2():
    try:
        import ctranslate2  # noqa: F401
        from ctranslate2.specs import common_spec, transformer_spec
    except ImportError as error:
        raise ImportError("Converting to CTranslate2 needs the ctranslate2 package: "
                          "pip install 'tflm[ctranslate2]'.") from error
    return common_spec, transformer_spec


def unsupported(model_type, why):
    return ValueError(f"Cannot convert a {model_type!r} model to CTranslate2: {why}. CTranslate2 conversion "
                      f"supports {SUPPORTED}.")


def _numpy(variable):
    return np.asarray(np.asarray(variable.numpy()), dtype=np.float32)


def _set_linear(spec, dense):
    spec.weight = np.ascontiguousarray(_numpy(dense.kernel).T)
    if dense.use_bias:
        spec.bias = _numpy(dense.bias)


def _fused_linear(spec, denses):
    spec.weight = np.ascontiguousarray(np.concatenate([_numpy(d.kernel).T for d in denses], axis=0))
    if all(d.use_bias for d in denses):
        spec.bias = np.concatenate([_numpy(d.bias) for d in denses])
    elif any(d.use_bias for d in denses):
        spec.bias = np.concatenate([_numpy(d.bias) if d.use_bias else np.zeros(d.units, np.float32) for d in denses])


def _set_layer_norm(spec, norm):
    if norm.rms_scaling or not (norm.center and norm.scale):
        raise ValueError(f"{norm.name}: only layer norms with a scale and a center convert to CTranslate2.")
    spec.gamma = _numpy(norm.gamma)
    spec.beta = _numpy(norm.beta)


def _set_self_attention(spec, attention, norm):
    _fused_linear(spec.linear[0], [attention.query_dense, attention.key_value_dense])
    _set_linear(spec.linear[1], attention.output_dense)
    _set_layer_norm(spec.layer_norm, norm)


def _set_cross_attention(spec, attention, norm):
    _set_linear(spec.linear[0], attention.query_dense)
    _set_linear(spec.linear[1], attention.key_value_dense)
    _set_linear(spec.linear[2], attention.output_dense)
    _set_layer_norm(spec.layer_norm, norm)


def _set_feedforward(spec, feedforward, norm):
    _set_linear(spec.linear_0, feedforward.intermediate)
    _set_linear(spec.linear_1, feedforward.output_dense)
    _set_layer_norm(spec.layer_norm, norm)


def sinusoidal_table(length, dim, max_wavelength=10000.0):
    """keras-hub's `SinePositionEncoding` for positions `0 .. length - 1`: float32 `(length, dim)`, sin at even
    features and cos at odd ones, feature pair k at frequency `max_wavelength ** (-2k / dim)`."""
    positions = np.arange(length, dtype=np.float64)[:, None]
    timescales = np.power(1.0 / max_wavelength, 2 * (np.arange(dim) // 2) / dim)
    angles = positions * timescales[None, :]
    return np.where(np.arange(dim) % 2 == 0, np.sin(angles), np.cos(angles)).astype(np.float32)


def _position_table(positions, hidden_dim, max_sequence_length):
    from keras_hub.layers import PositionEmbedding, SinePositionEncoding

    if isinstance(positions, SinePositionEncoding):
        return sinusoidal_table(max(SINUSOIDAL_POSITIONS, max_sequence_length or 0), hidden_dim,
                                positions.max_wavelength)
    if isinstance(positions, PositionEmbedding):
        return _numpy(positions.position_embeddings)
    raise ValueError(f"{type(positions).__name__}: positions CTranslate2 conversion does not know.")


def _activation(common_spec, blocks, model_type):
    names = {block.activation if isinstance(block.activation, str) else getattr(block.activation, "__name__", "?")
             for block in blocks}
    if len(names) != 1 or next(iter(names)) not in _ACTIVATIONS:
        raise unsupported(model_type, f"its feed-forward activation {sorted(names)} is not one of "
                                       f"{', '.join(_ACTIVATIONS)}")
    return getattr(common_spec.Activation, _ACTIVATIONS[names.pop()])


def _epsilon(norms, model_type):
    epsilons = {float(norm.epsilon) for norm in norms}
    if len(epsilons) != 1:
        raise unsupported(model_type, f"its layer norms have different epsilons {sorted(epsilons)}")
    return epsilons.pop()


def _vocabulary(tokenizer, side):
    pieces = tokenizer.pieces
    if len(pieces) != len(set(pieces)):
        duplicates = sorted({p for p in pieces if pieces.count(p) > 1})[:5]
        raise ValueError(f"The {side} vocabulary has duplicate pieces ({duplicates}); CTranslate2 needs unique "
                         "tokens.")
    if len(pieces) != tokenizer.vocabulary_size:
        raise ValueError(f"The {side} tokenizer lists {len(pieces)} pieces for a vocabulary of "
                         f"{tokenizer.vocabulary_size}.")
    return pieces


def _set_special_tokens(config, pieces):
    config.unk_token = pieces[UNK_ID]
    config.bos_token = pieces[BOS_ID]
    config.eos_token = pieces[EOS_ID]


def _model_type(model):
    from tflm.models import MODELS

    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    return type(model).__name__


def seq2seq_spec(model, source_tokenizer, target_tokenizer):
    """The `ctranslate2.specs.TransformerSpec` of a Transformer encoder-decoder (an `EncoderDecoder` with a
    `TransformerEncoder` and a `TransformerDecoder`), with its vocabularies and special tokens."""
    from tflm.layers.transformer_parts import TransformerDecoder, TransformerEncoder
    from tflm.models.encoder_decoder import EncoderDecoder

    common_spec, transformer_spec = _ctranslate2()
    model_type = _model_type(model)
    if not isinstance(model, EncoderDecoder):
        raise unsupported(model_type, "it is not an encoder-decoder")
    encoder, decoder = model.encoder, model.decoder
    if not isinstance(encoder, TransformerEncoder) or not isinstance(decoder, TransformerDecoder):
        raise unsupported(model_type, f"its encoder is a {type(encoder).__name__} and its decoder a "
                                       f"{type(decoder).__name__}, not Transformer ones")
    if decoder.copy is not None:
        raise unsupported(model_type, "its decoder has copy attention (a pointer-generator mixture)")
    if model.memory_projection is not None:
        raise unsupported(model_type, "its encoder's memory is projected to the decoder's width")
    if any(block.rotary for block in decoder.blocks):
        raise unsupported(model_type, "its decoder uses rotary positions")
    activation = _activation(common_spec, list(encoder.blocks) + list(decoder.blocks), model_type)
    norms = [encoder.norm, decoder.norm]
    for block in encoder.blocks:
        norms += [block.attention_norm, block.feedforward_norm]
    for block in decoder.blocks:
        norms += [block.self_attention_norm, block.cross_attention_norm, block.feedforward_norm]
    epsilon = _epsilon(norms, model_type)

    encoder_spec = transformer_spec.TransformerEncoderSpec(
        encoder.num_layers, encoder.num_heads, pre_norm=encoder.normalize_first, activation=activation)
    decoder_spec = transformer_spec.TransformerDecoderSpec(
        decoder.num_layers, decoder.num_heads, pre_norm=decoder.normalize_first, activation=activation)
    spec = transformer_spec.TransformerSpec(encoder_spec, decoder_spec)

    encoder_spec.embeddings[0].weight = _numpy(encoder.embedding.embeddings)
    encoder_spec.scale_embeddings = True
    encoder_spec.position_encodings.encodings = _position_table(encoder.positions, encoder.hidden_dim,
                                                                encoder.max_sequence_length)
    for layer_spec, block in zip(encoder_spec.layer, encoder.blocks):
        _set_self_attention(layer_spec.self_attention, block.attention, block.attention_norm)
        _set_feedforward(layer_spec.ffn, block.feedforward, block.feedforward_norm)
    if encoder.normalize_first:
        _set_layer_norm(encoder_spec.layer_norm, encoder.norm)

    decoder_spec.embeddings.weight = _numpy(decoder.embedding.embeddings)
    decoder_spec.scale_embeddings = True
    decoder_spec.position_encodings.encodings = _position_table(decoder.positions, decoder.hidden_dim,
                                                                decoder.max_sequence_length)
    for layer_spec, block in zip(decoder_spec.layer, decoder.blocks):
        _set_self_attention(layer_spec.self_attention, block.self_attention, block.self_attention_norm)
        _set_cross_attention(layer_spec.attention, block.cross_attention_layer, block.cross_attention_norm)
        _set_feedforward(layer_spec.ffn, block.feedforward, block.feedforward_norm)
    if decoder.normalize_first:
        _set_layer_norm(decoder_spec.layer_norm, decoder.norm)
    _set_output_projection(decoder_spec.projection, decoder.embedding)

    source_pieces = _vocabulary(source_tokenizer, "source")
    target_pieces = _vocabulary(target_tokenizer, "target")
    spec.register_source_vocabulary(source_pieces)
    spec.register_target_vocabulary(target_pieces)
    _set_special_tokens(spec.config, target_pieces)
    spec.config.decoder_start_token = target_pieces[BOS_ID]
    spec.config.add_source_eos = True  # tflm encodes a source as its pieces then EOS
    spec.config.add_source_bos = False
    spec.config.layer_norm_epsilon = epsilon
    if source_pieces[EOS_ID] != target_pieces[EOS_ID]:
        raise ValueError(f"The source's EOS piece {source_pieces[EOS_ID]!r} is not the target's "
                         f"{target_pieces[EOS_ID]!r}: CTranslate2 appends one EOS token to sources.")
    return spec


def _set_output_projection(spec, embedding):
    if embedding.tie_weights:
        spec.weight = _numpy(embedding.embeddings)
    else:
        spec.weight = np.ascontiguousarray(_numpy(embedding.reverse_embeddings).T)
    if getattr(embedding, "logit_soft_cap", None) is not None:
        raise ValueError("An output embedding with a logit soft cap does not convert to CTranslate2.")


def language_model_spec(model, tokenizer):
    """The `ctranslate2.specs.TransformerDecoderModelSpec` of a GPT language model, with its vocabulary."""
    from tflm.models.gpt import GPT

    common_spec, transformer_spec = _ctranslate2()
    model_type = _model_type(model)
    if not isinstance(model, GPT):
        raise unsupported(model_type, "it is not a GPT language model (Transformer-XL's relative attention "
                                       "and memory have no CTranslate2 counterpart)")
    activation = _activation(common_spec, model.blocks, model_type)
    norms = [model.final_norm]
    for block in model.blocks:
        norms += [block.self_attention_norm, block.feedforward_norm]
    epsilon = _epsilon(norms, model_type)
    rotary = model.position_embedding == "rotary"
    options = {}
    if rotary:
        wavelengths = {block.self_attention.max_wavelength for block in model.blocks}
        options = dict(rotary_dim=0, rotary_interleave=False, rotary_base=float(wavelengths.pop()))
    spec = transformer_spec.TransformerDecoderModelSpec.from_config(
        model.num_layers, model.num_heads, pre_norm=True, activation=activation, **options)
    decoder_spec = spec.decoder
    decoder_spec.embeddings.weight = _numpy(model.token_embedding.embeddings)
    decoder_spec.scale_embeddings = False
    if not rotary:
        decoder_spec.position_encodings.encodings = _numpy(model.positions.position_embeddings)
    for layer_spec, block in zip(decoder_spec.layer, model.blocks):
        _set_self_attention(layer_spec.self_attention, block.self_attention, block.self_attention_norm)
        _set_feedforward(layer_spec.ffn, block.feedforward, block.feedforward_norm)
    _set_layer_norm(decoder_spec.layer_norm, model.final_norm)
    _set_output_projection(decoder_spec.projection, model.token_embedding)

    pieces = _vocabulary(tokenizer, "language model")
    spec.register_vocabulary(pieces)
    _set_special_tokens(spec.config, pieces)
    spec.config.layer_norm_epsilon = epsilon
    return spec


def model_spec(model, tokenizers):
    """The CTranslate2 spec of a tflm model and its tokenizers (`(source, target)` for an encoder-decoder, one
    tokenizer or `(tokenizer,)` for a language model); a `ValueError` for a model it cannot convert."""
    from tflm.models.language_model import LanguageModel
    from tflm.models.seq2seq import Seq2Seq

    if isinstance(model, LanguageModel):
        tokenizer = tokenizers[0] if isinstance(tokenizers, (tuple, list)) else tokenizers
        return language_model_spec(model, tokenizer)
    if isinstance(model, Seq2Seq):
        source, target = tokenizers
        return seq2seq_spec(model, source, target)
    raise unsupported(_model_type(model), "it is neither an encoder-decoder nor a language model")
