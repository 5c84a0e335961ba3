"""In-graph decoding: every strategy is one `tf.while_loop` over a model's `decode_step`."""

from tflm.decoding.beam_search import beam_search, length_penalty
from tflm.decoding.common import (
    DecodeResult,
    SearchSettings,
    banned_repeats,
    constrain,
    reorder_state,
    row_max_lengths,
    tile_state,
)
from tflm.decoding.greedy import greedy_search
from tflm.decoding.sampling import filter_logits, sample
from tflm.decoding.search import STRATEGIES, DecodingOptions, rescore, search
