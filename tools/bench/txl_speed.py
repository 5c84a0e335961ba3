"""Transformer-XL vs GPT of the same size: training tokens/s, in one process.

    python tools/bench/txl_speed.py [--hidden 256 --layers 4 --heads 4 --vocab-size 8000 --length 128 --memory 128]

Both models get the same shape and the same random batches of `--batch-size` x `--length` tokens; a training
step is the forward pass, the loss, the gradients and an Adam update in one `tf.function` (Transformer-XL
also reads and returns its memory of `--memory` positions). Steps alternate between the models, `--warmup`
of each first, then `--steps` timed of each; the ratio is Transformer-XL / GPT. Run it at two commits to see
what a change to one model did, with GPT as the yardstick that did not change.
"""

import argparse
import os
import sys
import time

import numpy as np
import tensorflow as tf

import tflm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--memory", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15)
    return parser.parse_args()


def count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def train_step(model, optimizer, recurrent):
    @tf.function
    def step(tokens, memory):
        with tf.GradientTape() as tape:
            if recurrent:
                logits, memory = model.forward(tokens[:, :-1], memory, training=True)
            else:
                logits = model({"token_ids": tokens[:, :-1]}, training=True)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(tokens[:, 1:], logits,
                                                                                from_logits=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss, memory
    return step


def main():
    args = parse_args()
    import keras

    shape = dict(vocabulary_size=args.vocab_size, hidden_dim=args.hidden, intermediate_dim=4 * args.hidden,
                 num_heads=args.heads, num_layers=args.layers, dropout=0.1)
    gpt = tflm.models.GPT(max_sequence_length=args.length, **shape)
    txl = tflm.models.TransformerXL(memory_length=args.memory, **shape)
    rng = np.random.default_rng(0)
    batches = [tf.constant(rng.integers(3, args.vocab_size, (args.batch_size, args.length + 1)), tf.int32)
               for _ in range(4)]
    memory = [tf.zeros([args.batch_size, args.memory, args.hidden]) for _ in range(args.layers)]
    steps = {"gpt": train_step(gpt, keras.optimizers.Adam(1e-4), False),
             "transformer_xl": train_step(txl, keras.optimizers.Adam(1e-4), True)}
    seconds = {name: 0.0 for name in steps}
    memories = {"gpt": memory, "transformer_xl": memory}
    for i in range(args.warmup + args.steps):
        for name, step in steps.items():  # alternate, so that both see the same machine
            started = time.monotonic()
            loss, memories[name] = step(batches[i % len(batches)], memories[name])
            loss.numpy()
            if i >= args.warmup:
                seconds[name] += time.monotonic() - started
    tokens = args.steps * args.batch_size * args.length
    rates = {name: tokens / s for name, s in seconds.items()}
    print(f"machine: {describe()}")
    print(f"{args.layers} layers, width {args.hidden}, {args.heads} heads, vocabulary {args.vocab_size}, "
          f"segments of {args.length}, memory {args.memory}, batch {args.batch_size}; "
          f"{count(gpt):,} (GPT) and {count(txl):,} (Transformer-XL) parameters")
    print(f"training tokens/s: GPT {rates['gpt']:8.0f}   Transformer-XL {rates['transformer_xl']:8.0f}   "
          f"ratio x{rates['transformer_xl'] / rates['gpt']:.2f}")


if __name__ == "__main__":
    main()
