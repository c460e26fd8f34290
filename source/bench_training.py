"""Benchmark the BNN trainer: Python-loop baseline, in-graph trainer, stacked trainer.

    python source/bench_training.py                 # all measurements, then compare_gpa_rand.py itself
    python source/bench_training.py --skip-script   # per-step costs and the projection only (~1 min)

The code is in al_bnn_lab.bench_training; see its docstring for details.
"""

import sys

from al_bnn_lab.bench_training import main

if __name__ == "__main__":
    sys.exit(main())
