"""Keras layers: attention, embeddings (pretrained word vectors too), recurrent and Transformer encoders and
decoders, a convolutional encoder."""

from tflm.layers.additive_attention import AdditiveAttention
from tflm.layers.attention_decoder import ATTENTION_TYPES, AttentionDecoder
from tflm.layers.conv_encoder import CONV_ACTIVATIONS, ConvBlock, ConvEncoder
from tflm.layers.copy_attention import CopyAttention, copy_distribution, coverage_loss
from tflm.layers.encoder_decoder import Decoder, Encoder
from tflm.layers.lstm_encoder import RNN_CELLS, LSTMEncoder, RecurrentStack
from tflm.layers.luong_attention import LuongAttention
from tflm.layers.feedforward import FeedForward, residual
from tflm.layers.masking import masked_softmax, padding_mask
from tflm.layers.multi_head_attention import MultiHeadAttention
from tflm.layers.relative_attention import RelativeMultiHeadAttention, TransformerXLBlock
from tflm.layers.rnn_parts import RNNAttentionDecoder, RNNEncoder
from tflm.layers.sentence_encoders import (POOLINGS, SENTENCE_ENCODERS, KimCNN, RecurrentSentenceEncoder,
                                          SequencePooling, TransformerSentenceEncoder)
from tflm.layers.pretrained_embedding import CHANNEL_MERGES, EMBEDDING_MODES, PretrainedEmbedding
from tflm.layers.token_embedding import TokenEmbedding, read_word_vectors
from tflm.layers.transformer_decoder_block import TransformerDecoderBlock, causal_mask
from tflm.layers.transformer_encoder_block import TransformerEncoderBlock
from tflm.layers.transformer_parts import POSITION_EMBEDDINGS, TransformerDecoder, TransformerEncoder
