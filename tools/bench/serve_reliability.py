"""CTranslate2 threads under a shared CPU, and memory over hot swaps, for `tflm serve` (issue 32).

    python tools/bench/serve_reliability.py --export saved_models/tiny-ct2/1 \
        --sentences tflm/data/samples/tatoeba-es-en-sample/test.en.gz --threads 1,2,all --clients 8 --seconds 10

Part 1, threads: for each `--threads` value (`all`: every CPU; values that come to the same number run once),
a `tflm serve --ctranslate2-threads N` process serves a copy of the CTranslate2 export (`tflm export RUN
--format ctranslate2`); `--clients` threads send one-sentence REST `:predict` requests back to back for
`--seconds` (`serve_load.load`), first with the CPU otherwise idle, then with a busy-loop process on it
(`--busy-pinned`: pinned to CPU 0). Reported: requests/s, p50, p99 at each point, and each point's requests/s
against the first `--threads` value's (the ratio), idle and busy, and busy against idle.

Part 2, memory: one server (the default threads) under the same load while `--swaps` copies of the export
appear as the next versions (written under a temporary name and renamed, as `tflm export` does); after each
is AVAILABLE, the server's resident memory (RSS). Reported: RSS after warm-up, after each swap, the growth
over the last half of the swaps, and failed requests. A record goes to docs/results/NAME.json.
"""

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402
from serve_load import call, free_port, load  # noqa: E402
from serve_soak import rss_bytes  # noqa: E402

MODEL = "ct2"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="a version directory of `tflm export --format ctranslate2`")
    parser.add_argument("--sentences", required=True, help="a text file (or .gz), one sentence per line")
    parser.add_argument("--threads", default="1,2,all", help="--ctranslate2-threads values; all: every CPU")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="per point")
    parser.add_argument("--busy-pinned", action="store_true", help="pin the busy loop to CPU 0")
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--name", default="serve-reliability-ctranslate2")
    parser.add_argument("--dataset", default="tatoeba-es-en-sample")
    parser.add_argument("--model", default="transformer tiny (200 steps), CTranslate2 float32")
    parser.add_argument("--results-dir", default=os.path.join("docs", "results"))
    return parser.parse_args()


def read_sentences(path):
    with (gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")) as f:
        return [line.strip() for line in f if line.strip()]


def start_server(base, threads=None, timeout=300):
    """A `tflm serve` process on free ports, once its model is AVAILABLE: (process, REST port)."""
    port = free_port()
    command = [sys.executable, "-m", "tflm", "serve", base, "--rest-port", str(port), "--grpc-port",
               str(free_port()), "--poll-seconds", "0.5"] + (["--ctranslate2-threads", str(threads)] if threads else [])
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ends = time.monotonic() + timeout
    while time.monotonic() < ends and process.poll() is None:
        try:
            status, body = call(port, "GET", f"/v1/models/{MODEL}")
            if status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE":
                return process, port
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"`{' '.join(command)}` did not come up in {timeout} s")


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def busy_loop(pinned):
    """A process that keeps one CPU busy (pinned to CPU 0 if asked) until it is killed."""
    code = "import os, sys\nif sys.argv[1] == '1': os.sched_setaffinity(0, {0})\nwhile True: pass\n"
    return subprocess.Popen([sys.executable, "-c", code, "1" if pinned else "0"])


def measure_threads(args, base, sentences, values):
    results = {}
    for threads in values:
        process, port = start_server(base, threads)
        try:
            load(port, MODEL, sentences, args.clients, min(args.seconds, 3.0))  # warm-up
            for busy in (False, True):
                spinner = busy_loop(args.busy_pinned) if busy else None
                try:
                    r = results[threads, busy] = load(port, MODEL, sentences, args.clients, args.seconds)
                finally:
                    if spinner:
                        spinner.kill()
                        spinner.wait()
                print(f"threads={threads} {'busy' if busy else 'idle'}: {r['requests_per_second']:7.1f} requests/s  "
                      f"p50 {r['p50'] * 1000:5.0f} ms  p99 {r['p99'] * 1000:5.0f} ms  errors {r['errors']}",
                      flush=True)
        finally:
            stop(process)
    return results


def measure_swaps(args, base, sentences):
    """RSS after warm-up and after each of `args.swaps` new versions, under load."""
    process, port = start_server(base)
    stopping, outcome = threading.Event(), {}

    def clients():
        rounds = []
        while not stopping.is_set():
            rounds.append(load(port, MODEL, sentences, args.clients, 2.0))
        outcome["requests"] = sum(r["requests"] for r in rounds)
        outcome["errors"] = sum(r["errors"] for r in rounds)

    try:
        load(port, MODEL, sentences, args.clients, 3.0)
        readings = [rss_bytes(process.pid)]
        print(f"RSS after warm-up: {readings[0] / 2**20:.0f} MiB", flush=True)
        worker = threading.Thread(target=clients)
        worker.start()
        try:
            for version in range(2, args.swaps + 2):
                staging = os.path.join(base, f".staging-{version}")
                shutil.copytree(args.export, staging)
                os.rename(staging, os.path.join(base, MODEL, str(version)))
                ends = time.monotonic() + 120
                while time.monotonic() < ends:
                    states = {s["version"]: s["state"] for s in call(port, "GET", f"/v1/models/{MODEL}")[1]
                              ["model_version_status"]}
                    if states.get(str(version)) == "AVAILABLE":
                        break
                    time.sleep(0.2)
                else:
                    raise RuntimeError(f"version {version} did not become AVAILABLE in 120 s")
                time.sleep(1.0)  # the old version's last requests end
                readings.append(rss_bytes(process.pid))
                shutil.rmtree(os.path.join(base, MODEL, str(version - 1)))
                print(f"swap {version - 1}: version {version} AVAILABLE, RSS {readings[-1] / 2**20:.0f} MiB",
                      flush=True)
        finally:
            stopping.set()
            worker.join()
    finally:
        stop(process)
    return readings, outcome


def main():
    args = parse_args()
    sentences = read_sentences(args.sentences)
    cpus = os.cpu_count() or 1
    values = sorted({cpus if value.strip() == "all" else int(value) for value in args.threads.split(",")})
    print(f"machine: {describe()}")
    print(f"{args.export}; {len(sentences)} sentences; {args.clients} clients, {args.seconds:.0f} s per point; "
          f"threads {values} (all = {cpus}); busy loop {'pinned to CPU 0' if args.busy_pinned else 'not pinned'}")
    with tempfile.TemporaryDirectory(prefix="serve-reliability-") as base:
        shutil.copytree(args.export, os.path.join(base, MODEL, "1"))
        results = measure_threads(args, base, sentences, values)
        readings, outcome = measure_swaps(args, base, sentences)

    metrics = {}
    first = values[0]
    for (threads, busy), r in results.items():
        key = f"threads_{threads}_{'busy' if busy else 'idle'}"
        metrics[f"{key}_requests_per_second"] = r["requests_per_second"]
        metrics[f"{key}_p50_seconds"] = r["p50"]
        metrics[f"{key}_p99_seconds"] = r["p99"]
        metrics[f"{key}_errors"] = r["errors"]
    for threads in values:
        for busy in (False, True):
            condition = "busy" if busy else "idle"
            ratio = results[threads, busy]["requests_per_second"] / results[first, busy]["requests_per_second"]
            metrics[f"threads_{threads}_over_{first}_{condition}"] = ratio
            print(f"{condition}: {threads} threads / {first} = x{ratio:.2f} requests/s")
        ratio = results[threads, True]["requests_per_second"] / results[threads, False]["requests_per_second"]
        metrics[f"threads_{threads}_busy_over_idle"] = ratio
        print(f"{threads} threads: busy / idle = x{ratio:.2f} requests/s")
    half = readings[len(readings) // 2:]
    metrics.update({"rss_after_warmup_mib": readings[0] / 2**20, "rss_peak_mib": max(readings) / 2**20,
                    "rss_end_mib": readings[-1] / 2**20, "rss_growth_last_half_mib": (half[-1] - half[0]) / 2**20,
                    "swaps": args.swaps, "swap_requests": outcome["requests"], "swap_errors": outcome["errors"]})
    metrics.update({f"rss_after_swap_{i}_mib": r / 2**20 for i, r in enumerate(readings[1:], 1)})
    print(f"RSS over {args.swaps} swaps: {readings[0] / 2**20:.0f} -> peak {max(readings) / 2**20:.0f} -> end "
          f"{readings[-1] / 2**20:.0f} MiB (last half: {(half[-1] - half[0]) / 2**20:+.0f} MiB); "
          f"{outcome['requests']} requests, {outcome['errors']} failed")
    from tflm.results import write_record

    command = "python tools/bench/serve_reliability.py " + " ".join(sys.argv[1:])
    print("record:", write_record(args.name, "translation", args.dataset, args.model, metrics,
                                  directory=args.results_dir, command=command))


if __name__ == "__main__":
    main()
