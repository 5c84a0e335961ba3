"""Keras layers: attention, embeddings, LSTM encoder and attention decoder."""

from tflm.layers.additive_attention import AdditiveAttention
from tflm.layers.attention_decoder import ATTENTION_TYPES, AttentionDecoder
from tflm.layers.lstm_encoder import LSTMEncoder
from tflm.layers.luong_attention import LuongAttention
from tflm.layers.feedforward import FeedForward, residual
from tflm.layers.masking import masked_softmax
from tflm.layers.multi_head_attention import MultiHeadAttention
from tflm.layers.relative_attention import RelativeMultiHeadAttention, TransformerXLBlock
from tflm.layers.token_embedding import TokenEmbedding, read_word_vectors
from tflm.layers.transformer_decoder_block import TransformerDecoderBlock, causal_mask
from tflm.layers.transformer_encoder_block import TransformerEncoderBlock
