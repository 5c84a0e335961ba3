"""Soak test of `tflm serve`: many clients for a long time while new versions are dropped in.

    python tools/bench/serve_soak.py --export saved_models/tatoeba-en-es/1 \
        --sentences ../shared/data/tatoeba-es-en/test.en --clients 32 --minutes 10 --swap-seconds 60

The export is copied into a fresh model directory as version 1 and a `tflm serve` process is started on it.
Half the clients send one-sentence REST `:predict` requests back to back, half gRPC `Predict`s; every
`--swap-seconds` a copy of the export appears as the next version (written under a temporary name and
renamed, as `tflm export` does) and versions older than the previous one are deleted. Reported: requests,
failed requests (any non-200 answer or RPC error), requests/s, p50/p99 latency, the versions that answered,
and the server's resident memory after warm-up, at its peak and at the end. A record goes to docs/results/.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402
from serve_load import call as rest_call  # noqa: E402
from serve_load import free_port  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="a version directory made by tflm export")
    parser.add_argument("--sentences", required=True, help="a text file, one sentence per line")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--swap-seconds", type=float, default=60.0)
    parser.add_argument("--name", default="serve-soak", help="the record's name (docs/results/NAME.json)")
    parser.add_argument("--dataset", default="tatoeba-es-en")
    parser.add_argument("--model", default="transformer small (beam 4)")
    parser.add_argument("--results-dir", default=os.path.join("docs", "results"))
    return parser.parse_args()


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def new_version(base, export, version):
    staging = os.path.join(base, f".staging-{version}")
    shutil.copytree(export, staging)
    os.rename(staging, os.path.join(base, "soak", str(version)))  # appears whole


def main():
    args = parse_args()
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from tflm.results import write_record

    with open(args.sentences, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    print(f"machine: {describe()}")
    work = tempfile.mkdtemp(prefix="tflm-soak-")
    base = os.path.join(work, "models")
    os.makedirs(os.path.join(base, "soak"))
    new_version(base, args.export, 1)
    rest_port, grpc_port = free_port(), free_port()
    log_path = os.path.join(work, "serve.log")
    log = open(log_path, "w")
    server = subprocess.Popen([sys.executable, "-m", "tflm.cli", "serve", base, "--rest-port", str(rest_port),
                               "--grpc-port", str(grpc_port), "--poll-seconds", "1"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if rest_call(rest_port, "GET", "/v1/models/soak")[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"the server did not come up; see {log_path}")
        for sentence in sentences[:8]:  # warm-up before the first memory reading
            rest_call(rest_port, "POST", "/v1/models/soak:predict", {"instances": [sentence]})
        rss_start = rss_bytes(server.pid)
        print(f"server up (pid {server.pid}), RSS after warm-up {rss_start / 2**20:.0f} MiB; "
              f"{args.clients} clients for {args.minutes:g} min, a new version every {args.swap_seconds:g} s",
              flush=True)

        latencies, failures, versions, lock = [], [], set(), threading.Lock()
        counter = [0]
        stop_at = time.monotonic() + args.minutes * 60

        def next_sentence():
            with lock:
                counter[0] += 1
                return sentences[counter[0] % len(sentences)]

        def rest_client():
            while time.monotonic() < stop_at:
                started = time.monotonic()
                try:
                    status, body = rest_call(rest_port, "POST", "/v1/models/soak:predict",
                                             {"instances": [next_sentence()]})
                    failure = None if status == 200 else f"HTTP {status}: {body.get('error', '')[:200]}"
                except (OSError, ValueError) as error:
                    failure = f"{type(error).__name__}: {error}"
                with lock:
                    (failures.append(failure) if failure else latencies.append(time.monotonic() - started))

        def grpc_client():
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                while time.monotonic() < stop_at:
                    request = predict_pb2.PredictRequest(model_spec={"name": "soak"})
                    request.inputs["text"].CopyFrom(tf.make_tensor_proto([next_sentence()]))
                    started = time.monotonic()
                    try:
                        version = stub.Predict(request, timeout=120).model_spec.version.value
                        failure = None
                    except grpc.RpcError as error:
                        failure = f"gRPC {error.code().name}: {error.details()[:200]}"
                    with lock:
                        if failure:
                            failures.append(failure)
                        else:
                            latencies.append(time.monotonic() - started)
                            versions.add(version)

        threads = [threading.Thread(target=rest_client if i % 2 == 0 else grpc_client, daemon=True)
                   for i in range(args.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        version, rss_peak, next_swap = 1, rss_start, started + args.swap_seconds
        while time.monotonic() < stop_at:
            time.sleep(1.0)
            rss_peak = max(rss_peak, rss_bytes(server.pid))
            if time.monotonic() >= next_swap and time.monotonic() < stop_at - 5:
                version += 1
                new_version(base, args.export, version)
                for old in range(1, version - 1):
                    shutil.rmtree(os.path.join(base, "soak", str(old)), ignore_errors=True)
                next_swap += args.swap_seconds
                with lock:
                    done = len(latencies)
                print(f"{time.monotonic() - started:5.0f} s: version {version} dropped in; {done} requests, "
                      f"{len(failures)} failed, RSS {rss_bytes(server.pid) / 2**20:.0f} MiB", flush=True)
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        rss_end = rss_bytes(server.pid)
        status, body = rest_call(rest_port, "GET", "/v1/models/soak")
        serving = [s["version"] for s in body["model_version_status"] if s["state"] == "AVAILABLE"]
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    latencies = np.asarray(latencies)
    metrics = {
        "clients": args.clients, "minutes": args.minutes, "versions_dropped_in": version - 1,
        "requests": int(len(latencies)), "failed_requests": len(failures),
        "requests_per_second": len(latencies) / wall,
        "p50_seconds": float(np.percentile(latencies, 50)), "p99_seconds": float(np.percentile(latencies, 99)),
        "grpc_versions_that_answered": len(versions), "serving_version_at_end": int(serving[0]) if serving else None,
        "rss_mib_start": rss_start / 2**20, "rss_mib_peak": rss_peak / 2**20, "rss_mib_end": rss_end / 2**20,
        "rss_end_over_start": rss_end / rss_start, "server_exit_code": server.returncode,
    }
    print(json.dumps(metrics, indent=1))
    for failure in sorted(set(failures))[:10]:
        print("failure:", failure)
    print("record:", write_record(args.name, "translation", args.dataset, args.model, metrics,
                                  directory=args.results_dir))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
