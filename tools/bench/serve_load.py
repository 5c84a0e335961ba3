"""Load test of `tflm serve`: N concurrent clients for a fixed time, with and without server-side batching.

    python tools/bench/serve_load.py --base-dir saved_models --model tatoeba-en-es --clients 1,8,32 \
        --seconds 30 --sentences ../shared/data/tatoeba-es-en/test.en

For each batching mode, a `tflm serve` process is started on free local ports; for each N, N client threads
send one-sentence REST predict requests back to back (sentences drawn in turn from `--sentences`) for
`--seconds`. Reported: requests/s, p50 and p99 latency, errors, and the batching / no-batching ratio of
requests/s at each N, all from this one run.

`--model A,B` compares models served by the same server (e.g. a SavedModel and the CTranslate2 export of
the same run, `tflm export --format ctranslate2`): they take turns at each point, and each model after the
first gets its requests/s and p99 as ratios against the first.

`--baseline DIR` also runs the server of another checkout of tflm (e.g. a `git worktree` of an older commit),
taking turns with this one at each point, and prints this server's requests/s and p99 against it. `--batching`
picks the modes (`on`, `off` or `on,off`). A record goes to docs/results/ (`--name`).
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-dir", default="saved_models")
    parser.add_argument("--model", required=True, help="the served model's name, or several: A,B (A is the base)")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sentences", required=True, help="a text file, one sentence per line")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-ms", type=float, default=10.0)
    parser.add_argument("--batching", default="off,on", help="modes to measure: on, off or both")
    parser.add_argument("--baseline", help="another tflm checkout whose server to measure in turn")
    parser.add_argument("--dataset", default="tatoeba-es-en", help="the record's dataset")
    parser.add_argument("--name", default="serve-load", help="the record's name (docs/results/NAME.json)")
    parser.add_argument("--results-dir", default=os.path.join("docs", "results"))
    return parser.parse_args()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, batching, checkout=None):
    port = free_port()
    command = [sys.executable, "-m", "tflm.cli", "serve", args.base_dir, "--rest-port", str(port),
               "--grpc-port", str(free_port()), "--max-batch-size", str(args.max_batch_size),
               "--batch-timeout-ms", str(args.batch_timeout_ms), "--poll-seconds", "0",
               "--batching" if batching else "--no-batching"]
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout)) if checkout else None
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            states = [call(port, "GET", f"/v1/models/{name}") for name in args.model.split(",")]
            if all(status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
                   for status, body in states):
                return process, port
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("the server did not come up")


def call(port, method, path, payload=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body=json.dumps(payload).encode() if payload else None,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def load(port, model, sentences, clients, seconds):
    latencies, errors, lock = [], [0], threading.Lock()
    stop = time.monotonic() + seconds
    counter = [0]

    def client():
        while time.monotonic() < stop:
            with lock:
                sentence = sentences[counter[0] % len(sentences)]
                counter[0] += 1
            started = time.monotonic()
            try:
                status, _ = call(port, "POST", f"/v1/models/{model}:predict", {"instances": [sentence]})
            except OSError:
                status = None
            elapsed = time.monotonic() - started
            with lock:
                if status == 200:
                    latencies.append(elapsed)
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    latencies = np.asarray(latencies)
    return {"requests_per_second": len(latencies) / wall, "p50": float(np.percentile(latencies, 50)),
            "p99": float(np.percentile(latencies, 99)), "errors": errors[0], "requests": len(latencies)}


def main():
    args = parse_args()
    with open(args.sentences, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    clients = [int(n) for n in args.clients.split(",")]
    modes = [mode.strip() == "on" for mode in args.batching.split(",")]
    servers = ["this"] + (["baseline"] if args.baseline else [])
    models = args.model.split(",")
    print(f"machine: {describe()}")
    print(f"model {args.model} in {args.base_dir}; {len(sentences)} sentences; {args.seconds:.0f}s per point; "
          f"servers: {', '.join(servers)}" + (f" (baseline: {args.baseline})" if args.baseline else ""))
    results = {}
    for batching in modes:
        running = {name: start_server(args, batching, args.baseline if name == "baseline" else None)
                   for name in servers}
        try:
            for name, (_, port) in running.items():  # warm-up at the highest concurrency: every batch size seen
                for model in models:
                    load(port, model, sentences, max(clients), 10.0)
            for index, n in enumerate(clients):
                turns = [(name, model) for name in running for model in models]
                order = turns if index % 2 == 0 else turns[::-1]  # who goes first alternates
                for name, model in order:  # the servers (and models) take turns at each point
                    r = results[name, model, batching, index] = load(running[name][1], model, sentences, n,
                                                                     args.seconds)
                    label = name if len(models) == 1 else f"{name} {model}"
                    print(f"{label:8} batching={'on ' if batching else 'off'} clients={n:3d}: "
                          f"{r['requests_per_second']:7.1f} requests/s  p50 {r['p50'] * 1000:6.0f} ms  "
                          f"p99 {r['p99'] * 1000:6.0f} ms  errors {r['errors']}  ({r['requests']} requests)",
                          flush=True)
        finally:
            for process, _ in running.values():
                process.terminate()
                process.wait(timeout=30)
    metrics = {}
    for (name, model, batching, index), r in results.items():
        key = f"{name}_batching_{'on' if batching else 'off'}_point{index + 1}_{clients[index]}_clients"
        key = key if len(models) == 1 else f"{model}_{key}"
        metrics[f"{key}_requests_per_second"] = r["requests_per_second"]
        metrics[f"{key}_p99_seconds"] = r["p99"]
        metrics[f"{key}_errors"] = r["errors"]
    for index, n in enumerate(clients):
        point = f"point{index + 1}_{n}_clients"
        first = models[0]
        if len(modes) == 2:
            ratio = results["this", first, True, index]["requests_per_second"] / \
                results["this", first, False, index]["requests_per_second"]
            metrics[f"batching_over_no_batching_{point}"] = ratio
            print(f"clients={n:3d}: batching / no batching = x{ratio:.2f} requests/s")
        for model in models[1:]:
            for batching in modes:
                this, base = results["this", model, batching, index], results["this", first, batching, index]
                ratio = this["requests_per_second"] / base["requests_per_second"]
                metrics[f"{model}_over_{first}_batching_{'on' if batching else 'off'}_{point}"] = ratio
                print(f"clients={n:3d} batching={'on' if batching else 'off'}: {model} / {first} = x{ratio:.2f} "
                      f"requests/s, p99 {this['p99'] * 1000:.0f} vs {base['p99'] * 1000:.0f} ms")
        for batching in modes if args.baseline else ():
            this, base = results["this", first, batching, index], results["baseline", first, batching, index]
            ratio = this["requests_per_second"] / base["requests_per_second"]
            metrics[f"this_over_baseline_batching_{'on' if batching else 'off'}_{point}"] = ratio
            print(f"clients={n:3d} batching={'on' if batching else 'off'}: this / baseline = x{ratio:.2f} "
                  f"requests/s, p99 {this['p99'] * 1000:.0f} vs {base['p99'] * 1000:.0f} ms")
    from tflm.results import write_record

    print("record:", write_record(args.name, "translation", args.dataset, args.model, metrics,
                                  directory=args.results_dir))


if __name__ == "__main__":
    main()
