"""Seconds and peak memory of every selection method on identical synthetic features.

Features are standard Gaussian (n_train + n_pool, d), the same matrix for every method at one size
(float64, and its float32 copy). Peak memory is the largest extra allocation during the call
(tracemalloc, which NumPy reports to; measured in a second call), on top of the features themselves. Ratios are against
maxdet (its default mode) at the same size and dtype; `lrgpa-b1` is the existing low-rank GPA with batch size 1
(the same picks as maxdet-tp, which --maxdet-tp times next to it), in the same run.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from al_bnn.randomness import numpy_generator
from al_bnn.selection.family import DEFAULT_MODES, METHODS, select_batch
from al_bnn.selection.gpa_math import select_gpa_from_factor

N_TRAIN = 500
FULL_SIZES = [(100, 10_000, 200), (100, 100_000, 500), (100, 1_000_000, 1000), (512, 10_000, 200),
              (512, 100_000, 500)]
QUICK_SIZES = [(100, 10_000, 200), (32, 50_000, 100)]


def measure(call) -> tuple[float, float]:
    """Seconds of one call, then its peak extra memory from a second, traced call (tracing slows
    NumPy's many small allocations down, so it does not run while timing)."""
    started = time.perf_counter()
    call()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak / 2**20


def run(sizes, dtypes, methods, print_row=print, maxdet_tp=False) -> list[dict]:
    rows = []
    print_row(f"{'method':<13}{'mode':<5}{'dtype':<8}{'d':>5}{'pool':>9}{'picks':>6}{'seconds':>9}"
              f"{'peak MiB':>10}{'x maxdet':>9}")
    for d, n_pool, n_select in sizes:
        features64 = numpy_generator(0, "bench_selection", d, n_pool).standard_normal((N_TRAIN + n_pool, d))
        for dtype in dtypes:
            features = features64 if dtype == "float64" else features64.astype(np.float32)
            reference = None
            entries = [(m, DEFAULT_MODES[m]) for m in methods]
            if "maxdet" in methods:
                entries += [("maxdet", "tp")] * maxdet_tp + [("lrgpa-b1", "tp")]
            for method, mode in entries:
                if method == "lrgpa-b1":
                    def call(features=features, n_select=n_select):
                        select_gpa_from_factor(features, N_TRAIN, n_select, 1, 0.01, "lowrank")
                else:
                    def call(features=features, n_select=n_select, method=method, mode=mode):
                        select_batch(features, N_TRAIN, n_select, method, mode=mode, noise=0.01, random_state=0)
                seconds, peak = measure(call)
                if method == "maxdet" and mode == DEFAULT_MODES["maxdet"]:
                    reference = seconds
                ratio = f"{seconds / reference:9.2f}" if reference else f"{'':>9}"
                print_row(f"{method:<13}{mode:<5}{dtype:<8}{d:>5}{n_pool:>9}{n_select:>6}{seconds:>9.2f}"
                          f"{peak:>10.0f}{ratio}")
                rows.append(dict(method=method, mode=mode, dtype=dtype, d=d, n_pool=n_pool, n_select=n_select,
                                 seconds=seconds, peak_mib=peak))
            del features
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (well under a minute)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    parser.add_argument("--max-pool", type=int, default=None, help="skip sizes with a larger pool")
    parser.add_argument("--sizes", nargs="+", default=None, metavar="D:POOL:PICKS",
                        help="these sizes instead, e.g. 100:1000000:1000")
    parser.add_argument("--maxdet-tp", action="store_true", help="also maxdet in tp mode (lrgpa-b1's picks)")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = [tuple(int(part) for part in size.split(":")) for size in args.sizes]
    if args.max_pool:
        sizes = [s for s in sizes if s[1] <= args.max_pool]
    print(f"{N_TRAIN} training rows; Gaussian features; peak = extra memory during the call")
    run(sizes, args.dtypes, args.methods, maxdet_tp=args.maxdet_tp)
    return 0
