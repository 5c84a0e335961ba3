"""The CTranslate2 side of the peer benchmark; runs in its own venv (ctranslate2 4.8).

    python ct2_side.py --model W/onmt/export/ctranslate2 --input test.pieces --output hyp.pieces \
        --beam-size 4 --batch-size 32 [--compute-type int8]

Decodes pre-tokenized sentences (SentencePiece pieces, one sentence per line, sorted by length) in batches of
`--batch-size`, one `translate_batch` call per batch, after one warm-up batch; prints one JSON line.
"""

import argparse
import json
import os
import time

import ctranslate2


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--length-penalty", type=float, default=0.6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-decoding-length", type=int, default=128)
    parser.add_argument("--compute-type", default="default")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    translator = ctranslate2.Translator(args.model, device="cpu", compute_type=args.compute_type,
                                        inter_threads=1, intra_threads=args.threads)
    with open(args.input, encoding="utf-8") as f:
        lines = [line.split() for line in f.read().splitlines()]
    batches = [lines[i: i + args.batch_size] for i in range(0, len(lines), args.batch_size)]
    options = dict(beam_size=args.beam_size, length_penalty=args.length_penalty if args.beam_size > 1 else 0.0,
                   max_decoding_length=args.max_decoding_length)
    translator.translate_batch(batches[0], **options)
    started = time.monotonic()
    hypotheses = [r.hypotheses[0] for batch in batches for r in translator.translate_batch(batch, **options)]
    seconds = time.monotonic() - started
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("".join(" ".join(h) + "\n" for h in hypotheses))
    print(json.dumps({"sentences": len(lines), "seconds": seconds, "sentences_per_second": len(lines) / seconds,
                      "mean_output_tokens": sum(map(len, hypotheses)) / len(hypotheses),
                      "compute_type": translator.compute_type, "ctranslate2": ctranslate2.__version__}))


if __name__ == "__main__":
    main()
