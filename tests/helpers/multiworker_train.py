"""One worker of a two-process MultiWorkerMirroredStrategy training (run by tests/test_training.py).

    TF_CONFIG=... python tests/helpers/multiworker_train.py RUN_DIR
Prints one JSON line: the step reached and a checksum of the trained weights.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tflm.data import Batching, read_parallel, tokenize_pairs, translation_dataset  # noqa: E402
from tflm.models import LSTMAttentionSeq2Seq  # noqa: E402
from tflm.text import train_tokenizer  # noqa: E402
from tflm.training import Trainer  # noqa: E402

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "tflm", "data", "samples", "tatoeba-es-en-sample")


def main():
    run_dir = sys.argv[1]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    corpus = read_parallel(os.path.join(SAMPLE, "valid.en.gz"), os.path.join(SAMPLE, "valid.es.gz")).head(200)
    tokenizer = train_tokenizer(corpus.source + corpus.target, "unigram", 200)
    pairs = tokenize_pairs(corpus, tokenizer, tokenizer, 30, 30)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = LSTMAttentionSeq2Seq(tokenizer.vocabulary_size, tokenizer.vocabulary_size, embedding_dim=16,
                                     hidden_dim=16, num_encoder_layers=1, num_decoder_layers=1, dropout=0.0)
        model.build()
        optimizer = keras.optimizers.Adam(1e-2)
    trainer = Trainer(model, optimizer, run_dir, strategy=strategy, clip_norm=1.0, verbose=False)
    result = trainer.fit(lambda epoch: translation_dataset(pairs, Batching(batch_size=16), epoch=epoch), max_steps=6)
    checksum = float(sum(np.abs(np.asarray(v)).sum() for v in model.weights))
    print(json.dumps({"step": result.step, "checksum": checksum, "replicas": strategy.num_replicas_in_sync}))


if __name__ == "__main__":
    main()
