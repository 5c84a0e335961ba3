"""Prints the machine a benchmark ran on, one line, for docs/benchmarks.md.

    python tools/bench/machine.py
"""

from tflm.results import machine


def describe():
    return machine()


if __name__ == "__main__":
    print(describe())
