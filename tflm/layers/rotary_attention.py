import keras
from keras import ops
from keras_hub.layers import CachedMultiHeadAttention, RotaryEmbedding


@keras.saving.register_keras_serializable(package="tflm")
class RotaryCachedMultiHeadAttention(CachedMultiHeadAttention):
    """keras-hub's cached attention with rotary position embeddings (Su et al. 2021) on queries and keys.

    keras-hub's `CachedMultiHeadAttention` has no positions of its own, and its rotary models (Llama, ...)
    each carry a private attention layer; this adds the rotation, with keras-hub's `RotaryEmbedding`, right
    after the query and key projections. Keys enter the cache already rotated, so a cached step rotates only
    its own query and key (at `cache_update_index`).

    Args:
        num_heads, key_dim, dropout, ...: as `keras.layers.MultiHeadAttention`.
        max_wavelength: int. The rotary base.
    Call arguments:
        query, value: float `(batch, length, dim)` (self-attention: the same tensor).
        attention_mask: bool `(batch, query_length, key_length)`.
        cache: optional float `(batch, 2, max_length, num_heads, key_dim)`.
        cache_update_index: int scalar, the position of the first query when `cache` is given.
    Returns:
        The output, and the updated cache when one is given.
    """

    def __init__(self, num_heads, key_dim, max_wavelength=10000, **kwargs):
        super().__init__(num_heads, key_dim, **kwargs)
        self.max_wavelength = max_wavelength
        self.rotary = RotaryEmbedding(max_wavelength=max_wavelength, dtype=self.dtype_policy)

    def call(self, query, value, key=None, attention_mask=None, cache=None, cache_update_index=None,
             return_attention_scores=False, training=None):
        start = 0 if cache_update_index is None else cache_update_index
        query = self.rotary(self.query_dense(query), start_index=start)
        key = self.rotary(self.key_dense(value if key is None else key), start_index=start)
        value = self.value_dense(value)
        if cache is not None:
            key = ops.slice_update(cache[:, 0, ...], [0, start, 0, 0], key)
            value = ops.slice_update(cache[:, 1, ...], [0, start, 0, 0], value)
            cache = ops.stack((key, value), axis=1)
        output, scores = self._compute_attention(query=query, key=key, value=value, attention_mask=attention_mask,
                                                 return_attention_scores=return_attention_scores,
                                                 training=training)
        output = self.output_dense(output)
        results = (output,) + ((scores,) if return_attention_scores else ()) + ((cache,) if cache is not None else ())
        return results if len(results) > 1 else output

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
