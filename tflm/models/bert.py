"""BERT-style encoders: keras-hub's `BertBackbone` (token, position and segment embeddings, a Transformer
encoder stack, a pooled `[CLS]`), for classification (`BackboneEncoder`) and masked-LM pretraining
(`BertPretrainer`: a masked-LM head tied to the token embeddings and a next-sentence head).

tflm uses keras-hub's `BertBackbone` rather than its own encoder blocks so that an encoder pretrained with tflm is
a keras-hub model: `backbone.save_to_preset(DIR)` writes a preset that `keras_hub.models.BertBackbone.from_preset`
loads, and a keras-hub or Hugging Face BERT folder (`tflm.models.hub`) drops into the same place. keras-hub has no
next-sentence head and no pretraining model (removed in its PR #1771): `BertPretrainer` is tflm's.
"""

import keras
from keras import ops

# The size arguments of a tflm BERT encoder (model.params of a masked_lm or classification run with type "bert").
BERT_SIZES = ("num_layers", "num_heads", "hidden_dim", "intermediate_dim", "dropout", "max_sequence_length")
BERT_PRESETS = {
    "tiny": dict(num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=256, dropout=0.1, max_sequence_length=128),
    "small": dict(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024, dropout=0.1,
                  max_sequence_length=128),
}
POOLINGS = ("cls", "first", "mean")


def bert_backbone(vocabulary_size, num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024, dropout=0.1,
                  max_sequence_length=128, dtype=None):
    """A keras-hub `BertBackbone` of these sizes (two segments)."""
    import keras_hub

    return keras_hub.models.BertBackbone(vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
                                         dropout=dropout, max_sequence_length=max_sequence_length, num_segments=2,
                                         dtype=dtype)


def backbone_inputs(token_ids, segment_ids=None, padding_mask=None):
    """keras-hub's backbone inputs from token ids (`segment_ids` 0, `padding_mask` where the id is not 0 by default)."""
    return {"token_ids": token_ids,
            "segment_ids": ops.zeros_like(token_ids) if segment_ids is None else segment_ids,
            "padding_mask": ops.not_equal(token_ids, 0) if padding_mask is None else padding_mask}


class BackboneEncoder(keras.layers.Layer):
    """A keras-hub backbone as a classification encoder: it reads token ids (`[CLS] a [SEP] (b [SEP])`, segment
    ids and a padding mask; `reads_token_ids`) and gives one vector per text.

    Args:
        vocabulary_size: int. For a new tflm BERT (when `backbone` is None).
        backbone: a keras-hub `Backbone` (e.g. loaded from a folder by `tflm.models.hub`), or None for a new
            `BertBackbone` of the given sizes.
        pooling: "cls" (the backbone's pooled output, BERT's tanh layer over `[CLS]`, where it has one; else the
            `[CLS]` position), "first" (the `[CLS]` position) or "mean" (over the real tokens).
        **sizes: `BERT_SIZES` of a new backbone.
    """

    reads_token_ids = True

    def __init__(self, vocabulary_size=None, backbone=None, pooling="cls", num_layers=4, num_heads=4, hidden_dim=256,
                 intermediate_dim=1024, dropout=0.1, max_sequence_length=128, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} must be one of {', '.join(POOLINGS)} for a backbone encoder.")
        self.pooling = pooling
        self.backbone = backbone if backbone is not None else bert_backbone(
            vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim, dropout, max_sequence_length,
            dtype=self.dtype_policy)

    @property
    def max_sequence_length(self):
        return getattr(self.backbone, "max_sequence_length", None)

    def build(self, input_shape=None):
        self.built = True

    def _outputs(self, inputs, training=False):
        from tflm.models.hub import encoder_inputs

        return self.backbone(encoder_inputs(self.backbone, inputs["token_ids"], inputs["segment_ids"],
                                            inputs["padding_mask"]), training=training)

    def sequence_output(self, inputs, training=False):
        """The last layer's state of every position `(batch, length, hidden_dim)` (for tagging and QA)."""
        outputs = self._outputs(inputs, training=training)
        return outputs["sequence_output"] if isinstance(outputs, dict) else outputs

    def call(self, inputs, padding_mask=None, training=False):
        outputs = self._outputs(inputs, training=training)
        sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
        if self.pooling == "cls" and isinstance(outputs, dict) and "pooled_output" in outputs:
            return outputs["pooled_output"]
        if self.pooling == "mean":
            weights = ops.expand_dims(ops.cast(inputs["padding_mask"], sequence.dtype), -1)
            return ops.sum(sequence * weights, 1) / ops.maximum(ops.sum(weights, 1), ops.cast(1.0, sequence.dtype))
        return sequence[:, 0]


class BertPretrainer(keras.Model):
    """A BERT backbone with its pretraining heads: masked LM (tied to the token embeddings) and next sentence.

    Inputs: `token_ids`, `segment_ids`, `padding_mask` `(batch, length)` and `mask_positions`
    `(batch, predictions)`. Outputs: `{"mlm_logits": (batch, predictions, vocabulary), "nsp_logits": (batch, 2)}`
    (float32).

    Args:
        vocabulary_size: int.
        next_sentence: bool. With a next-sentence head (without: RoBERTa's full-sentence pretraining).
        **sizes: `BERT_SIZES`.
    """

    def __init__(self, vocabulary_size, next_sentence=True, num_layers=4, num_heads=4, hidden_dim=256,
                 intermediate_dim=1024, dropout=0.1, max_sequence_length=128, **kwargs):
        import keras_hub

        super().__init__(**kwargs)
        self.vocabulary_size, self.next_sentence = vocabulary_size, next_sentence
        self.backbone = bert_backbone(vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim, dropout,
                                      max_sequence_length, dtype=self.dtype_policy)
        self.mlm_head = keras_hub.layers.MaskedLMHead(token_embedding=self.backbone.token_embedding,
                                                      intermediate_activation="gelu", dtype=self.dtype_policy,
                                                      name="mlm_head")
        self.nsp_head = keras.layers.Dense(2, dtype="float32", name="nsp_head") if next_sentence else None

    def build(self, input_shape=None):
        self.call(self.dummy_inputs())
        self.built = True

    def call(self, inputs, training=False):
        outputs = self.backbone({key: inputs[key] for key in ("token_ids", "segment_ids", "padding_mask")},
                                training=training)
        result = {"mlm_logits": ops.cast(self.mlm_head(outputs["sequence_output"],
                                                       mask_positions=inputs["mask_positions"]), "float32")}
        if self.nsp_head is not None:
            result["nsp_logits"] = self.nsp_head(outputs["pooled_output"])
        return result

    def dummy_inputs(self):
        ids = ops.convert_to_tensor([[2, 5, 4, 3, 6, 3]], "int32")
        return {"token_ids": ids, "segment_ids": ops.convert_to_tensor([[0, 0, 0, 0, 1, 1]], "int32"),
                "padding_mask": ops.ones_like(ids, dtype="bool"), "mask_positions": ops.convert_to_tensor([[2]], "int32")}
