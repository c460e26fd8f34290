"""Benchmark the GPA selection methods side by side on identical samples.

    python source/bench_samplers.py            # the sizes quoted in the README (a few minutes)
    python source/bench_samplers.py --quick    # smaller sizes, under a minute

For each size it draws one synthetic sample matrix (correlated function samples of a random
two-layer network, seeded), runs batch, fast and low-rank GPA on it, and prints per method the
wall time and the peak memory allocated (tracemalloc, which sees NumPy's allocations) of the
whole selection from the sample matrix, centring included, and whether the picks equal batch
GPA's. A method whose dense matrices would not fit in the available memory is skipped, and the
table says so.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from al_bnn.memory import available_memory
from al_bnn.selection.gpa_math import centred_sample_factor, select_gpa_from_factor

METHODS = ("batch", "fast", "lowrank")


@dataclass
class Size:
    n_train: int
    n_pool: int
    num_samples: int
    n_select: int
    methods: tuple[str, ...] = METHODS


FULL = [Size(50, 2000, 100, 50), Size(500, 14448, 100, 200), Size(500, 1_000_000, 100, 1000, ("lowrank",))]
QUICK = [Size(50, 2000, 100, 50), Size(500, 14448, 100, 200), Size(500, 100_000, 100, 200, ("lowrank",))]


def synthetic_samples(n_points: int, num_samples: int, seed: int = 0) -> np.ndarray:
    """(T, n) function samples of a random tanh network with a Gaussian last layer: correlated
    across points like a BNN's, cheap to make for a million points."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(5, 32))
    weights = rng.normal(size=(num_samples, 32))
    values = np.empty((num_samples, n_points))
    for start in range(0, n_points, 65536):
        stop = min(start + 65536, n_points)
        x = rng.normal(size=(stop - start, 5))
        values[:, start:stop] = weights @ np.tanh(x @ inputs).T / np.sqrt(32)
    return values


def available_bytes() -> int:
    """The memory the library's probe (al_bnn.memory.available_memory) finds, 8 GiB if it finds none."""
    available = available_memory()
    return 8 * 2**30 if available is None else available


def estimated_bytes(method: str, size: Size, itemsize: int) -> int:
    n = size.n_train + size.n_pool
    if method == "fast":
        return size.n_pool**2 * itemsize
    if method == "batch":
        return 2 * (size.n_train + size.n_select) * n * itemsize
    return 3 * n * size.num_samples * itemsize


def measure(method: str, samples: np.ndarray, size: Size, batch_size: int, noise: float, dtype):
    """Time and peak memory of a whole selection from samples: centring included."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    factor = centred_sample_factor(samples, dtype)
    selection = select_gpa_from_factor(factor, size.n_train, size.n_select, batch_size, noise, method)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return selection, seconds, peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under a minute)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--batch-size", type=int, default=10, help="points per greedy round (default 10)")
    parser.add_argument("--noise", type=float, default=0.01, help="GP noise lambda (default 0.01)")
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)
    sizes = QUICK if args.quick else FULL
    memory_budget = int(0.6 * available_bytes())
    print(f"GPA selection benchmark ({args.dtype}, {args.batch_size} points per round, noise {args.noise}, "
          f"{os.cpu_count()} cores, memory budget {memory_budget / 2**30:.1f} GiB)")
    print("| n_train | n_pool | T | picks | method | seconds | peak memory (GB) | same picks as batch |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    warm_up = centred_sample_factor(synthetic_samples(60, 10), dtype)  # loads LAPACK before timing
    select_gpa_from_factor(warm_up, 10, 5, 2, 0.01, "lowrank")
    for size in sizes:
        samples = synthetic_samples(size.n_train + size.n_pool, size.num_samples)
        results = {}
        for method in METHODS:
            label = f"| {size.n_train} | {size.n_pool} | {size.num_samples} | {size.n_select} | {method} |"
            if method not in size.methods:
                print(f"{label} not run | | skipped: a lowrank-only size (needs about "
                      f"{estimated_bytes(method, size, dtype.itemsize) / 2**30:.1f} GiB) |")
                continue
            if estimated_bytes(method, size, dtype.itemsize) > memory_budget:
                print(f"{label} not run | | skipped: needs about "
                      f"{estimated_bytes(method, size, dtype.itemsize) / 2**30:.1f} GiB |")
                continue
            selection, seconds, peak = measure(method, samples, size, args.batch_size, args.noise, dtype)
            results[method] = (selection, seconds)
            same = ("(reference)" if method == "batch" else
                    str(np.array_equal(selection.indices, results["batch"][0].indices)) if "batch" in results
                    else "n/a")
            print(f"{label} {seconds:.3f} | {peak / 1e9:.3f} | {same} |", flush=True)
        if "lowrank" in results:
            lowrank_seconds = results["lowrank"][1]
            for method in ("fast", "batch"):
                if method in results:
                    ratios.append(f"at ({size.n_train}, {size.n_pool}, T {size.num_samples}, {size.n_select} picks): "
                                  f"lowrank is {results[method][1] / lowrank_seconds:.1f}x faster than {method}")
    for line in ratios:
        print(line)
    return 0

