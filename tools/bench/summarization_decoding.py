"""Choose a summarization run's length penalty on validation, then score the test split with it; one record per run.

    python tools/bench/summarization_decoding.py runs/debian-transformer-copy runs/debian-lstm-copy \
        --checkpoint averaged --valid-pairs 1000 --length-penalties 0.6,1.0,1.5

For each run: beam search (the run's beam size, trigram blocking and length limits) with each length penalty on
the first `--valid-pairs` validation documents, the penalty with the best ROUGE-L kept, then the whole test split
with it. An evaluation already in `RUN/eval/` for the same setting and number of documents is read, not redone
(`tflm evaluate` names its files by the setting). Prints a table and writes
`docs/results/summarization-decoding-<run>.json` (`metrics`: the test ROUGE with the chosen penalty, the
validation ROUGE-L of every penalty tried).
"""

import argparse
import dataclasses
import json
import os

import tflm


def evaluation(task, run_dir, split, checkpoint, decoding, max_examples):
    """`task.evaluate`, or the scores it wrote before for the same setting and the same number of documents."""
    configured = task.decoding(task.load_config(run_dir))
    setting = tflm.summarization.decoding_setting(decoding, configured)
    path = os.path.join(run_dir, "eval", f"{split}.{os.path.basename(checkpoint)}{setting}.json")
    if os.path.exists(path):
        with open(path) as f:
            scores = json.load(f)
        if max_examples is None or scores.get("examples") == max_examples:
            return scores
    return task.evaluate(run_dir, split, checkpoint, max_examples=max_examples, decoding=decoding)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="summarization run directories")
    parser.add_argument("--checkpoint", default="averaged")
    parser.add_argument("--valid-pairs", type=int, default=1000)
    parser.add_argument("--length-penalties", default="0.6,1.0,1.5")
    parser.add_argument("--results-dir", default="docs/results")
    args = parser.parse_args()
    task = tflm.tasks.get_task("summarization")
    penalties = [float(value) for value in args.length_penalties.split(",")]
    rows = []
    for run_dir in args.runs:
        configured = task.decoding(task.load_config(run_dir))
        valid = {}
        for penalty in penalties:
            decoding = dataclasses.replace(configured, length_penalty=penalty)
            valid[penalty] = evaluation(task, run_dir, "valid", args.checkpoint, decoding, args.valid_pairs)
        chosen = max(penalties, key=lambda penalty: valid[penalty]["rougeL"])
        test = evaluation(task, run_dir, "test", args.checkpoint,
                          dataclasses.replace(configured, length_penalty=chosen), None)
        name = os.path.basename(os.path.normpath(run_dir))
        config = task.load_config(run_dir)
        params = config.model.params
        model = f"{config.model.type} {config.model.preset}{' + copy' if params.get('copy_attention') else ''}"
        metrics = {key: test[key] for key in ("rouge1", "rouge2", "rougeL", "rouge1_ci", "rouge2_ci", "rougeL_ci")}
        metrics.update(length_penalty=chosen, checkpoint=args.checkpoint, test_documents=test["examples"],
                       valid_documents=args.valid_pairs, mean_summary_words=test["mean_summary_words"])
        metrics.update({f"valid_rougeL_lp{penalty}": valid[penalty]["rougeL"] for penalty in penalties})
        record = tflm.results.write_record(f"summarization-decoding-{name}", "summarization",
                                           config.data.dataset or config.data.data_dir, model, metrics,
                                           directory=args.results_dir)
        rows.append((name, chosen, valid, test, record))
    print("| run | valid ROUGE-L by length penalty | chosen | test R-1 / R-2 / R-L | words |")
    print("|---|---|---|---|---|")
    for name, chosen, valid, test, record in rows:
        tried = ", ".join(f"{penalty}: {valid[penalty]['rougeL']:.2f}" for penalty in penalties)
        print(f"| {name} | {tried} | {chosen} | {test['rouge1']:.2f} / {test['rouge2']:.2f} / {test['rougeL']:.2f} | "
              f"{test['mean_summary_words']:.2f} |")
    print("records:", *[row[-1] for row in rows])


if __name__ == "__main__":
    main()
