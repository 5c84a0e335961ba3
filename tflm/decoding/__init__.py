"""In-graph decoding: every strategy is one `tf.while_loop` over a model's `decode_step`."""

from tflm.decoding.common import DecodeResult, row_max_lengths
from tflm.decoding.greedy import greedy_search
