"""Load test of `tflm serve`: N concurrent clients for a fixed time, with and without server-side batching.

    python tools/bench/serve_load.py --base-dir saved_models --model tatoeba-en-es --clients 1,8,32 \
        --seconds 30 --sentences ../shared/data/tatoeba-es-en/test.en

For each batching mode, a `tflm serve` process is started on free local ports; for each N, N client threads
send one-sentence REST predict requests back to back (sentences drawn in turn from `--sentences`) for
`--seconds`. Reported: requests/s, p50 and p99 latency, errors, and the batching / no-batching ratio of
requests/s at each N, all from this one run.
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
    parser.add_argument("--model", required=True)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sentences", required=True, help="a text file, one sentence per line")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-ms", type=float, default=10.0)
    return parser.parse_args()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, batching):
    port = free_port()
    command = [sys.executable, "-m", "tflm.cli", "serve", args.base_dir, "--rest-port", str(port),
               "--grpc-port", str(free_port()), "--max-batch-size", str(args.max_batch_size),
               "--batch-timeout-ms", str(args.batch_timeout_ms), "--poll-seconds", "0",
               "--batching" if batching else "--no-batching"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            status, body = call(port, "GET", f"/v1/models/{args.model}")
            if status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE":
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
    print(f"machine: {describe()}")
    print(f"model {args.model} in {args.base_dir}; {len(sentences)} sentences; {args.seconds:.0f}s per point")
    results = {}
    for batching in (False, True):
        process, port = start_server(args, batching)
        try:
            load(port, args.model, sentences, 2, 5.0)  # warm-up
            for n in clients:
                results[batching, n] = load(port, args.model, sentences, n, args.seconds)
                r = results[batching, n]
                print(f"batching={'on ' if batching else 'off'} clients={n:3d}: {r['requests_per_second']:7.1f} "
                      f"requests/s  p50 {r['p50'] * 1000:6.0f} ms  p99 {r['p99'] * 1000:6.0f} ms  "
                      f"errors {r['errors']}  ({r['requests']} requests)", flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
    for n in clients:
        ratio = results[True, n]["requests_per_second"] / results[False, n]["requests_per_second"]
        print(f"clients={n:3d}: batching / no batching = x{ratio:.2f} requests/s")


if __name__ == "__main__":
    main()
