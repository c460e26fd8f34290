"""The suggest command at scale: a 1,000,000-row pool CSV (10 features), 1,000 labelled rows,
--n 100, lrgpa and the default bnn model; prints the wall time and the peak memory of the run.

    python source/bench_suggest.py [--pool-rows 1000000] [--labelled-rows 1000] [--n 100]

The CSVs are generated in a temporary directory (a smooth function of 10 features plus noise);
the command runs in a child process, so its peak resident memory is measured alone.
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from al_bnn.randomness import numpy_generator
from al_bnn.results import ResultsWriter


def write_tables(directory: Path, pool_rows: int, labelled_rows: int, features: int = 10) -> tuple[Path, Path]:
    rng = numpy_generator(0, "bench_suggest")
    names = [f"x{i}" for i in range(features)]
    X = rng.uniform(-2, 2, size=(labelled_rows, features))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=labelled_rows)
    labelled = io.BytesIO()
    np.savetxt(labelled, np.column_stack([X, y]), delimiter=",", header=",".join([*names, "y"]), comments="",
               fmt="%.6f")
    pool = io.BytesIO()
    pool.write((",".join(names) + "\n").encode())
    for start in range(0, pool_rows, 100000):
        chunk = rng.uniform(-2, 2, size=(min(100000, pool_rows - start), features))
        np.savetxt(pool, chunk, delimiter=",", fmt="%.8f")
    writer = ResultsWriter(directory, overwrite=True)  # the package's one writer of files into a folder
    return writer.write_bytes("labelled.csv", labelled.getvalue()), writer.write_bytes("pool.csv", pool.getvalue())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Time the suggest command on a large generated pool.")
    parser.add_argument("--pool-rows", type=int, default=1_000_000)
    parser.add_argument("--labelled-rows", type=int, default=1000)
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        labelled, pool = write_tables(directory, args.pool_rows, args.labelled_rows)
        print(f"pool CSV: {args.pool_rows} rows, {pool.stat().st_size / 1e6:.0f} MB; labelled: {args.labelled_rows}")
        command = [sys.executable, "-m", "al_bnn.suggest", "--labelled", str(labelled), "--target", "y",
                   "--pool", str(pool), "--n", str(args.n), "--out", str(directory / "out"), "--sampler", "lrgpa",
                   "--model", "bnn"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        print(done.stderr[-3000:])
        if done.returncode:
            return done.returncode
        print(f"suggest --n {args.n} (lrgpa, bnn defaults): {seconds:.1f} s wall time, peak memory {peak_gib:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
