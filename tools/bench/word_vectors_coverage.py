"""How much of a word vocabulary pretrained vectors cover, and how long loading them takes.

A manual check (not a test: it reads the 171 MB GloVe file). Run from the repository root:

    python tools/bench/word_vectors_coverage.py [--vectors FILE] [--train TSV] [--max-size 5000]

It trains a `WordTokenizer` on the text column of `text<TAB>label` lines (default: TREC-6's training set),
loads the vectors for it with `tflm.text.load_vectors` and prints the coverage and the times.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tflm.text  # noqa: E402
from machine import describe  # noqa: E402

SHARED = "/work/shared/data"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", default=f"{SHARED}/glove-6b-50d/glove.6B.50d.txt.bz2")
    parser.add_argument("--train", default=f"{SHARED}/trec-6/train.tsv")
    parser.add_argument("--max-size", type=int, default=5000)
    args = parser.parse_args()

    with open(args.train, encoding="utf-8") as f:
        texts = [line.split("\t", 1)[0] for line in f if line.strip()]
    start = time.perf_counter()
    tokenizer = tflm.text.train_words(texts, max_size=args.max_size)
    counts = tflm.text.count_words(texts)
    vocabulary_seconds = time.perf_counter() - start
    start = time.perf_counter()
    matrix, coverage = tflm.text.load_vectors(args.vectors, tokenizer.pieces, token_counts=counts)
    load_seconds = time.perf_counter() - start
    print(f"{len(texts)} texts, {sum(counts.values())} tokens, {len(counts)} distinct words; vocabulary "
          f"{tokenizer.vocabulary_size} ({vocabulary_seconds:.1f} s)")
    print(f"matrix {matrix.shape} in {load_seconds:.1f} s")
    print(coverage.summary(examples=20))
    print(f"machine: {describe()}")


if __name__ == "__main__":
    main()
