"""Run a benchmark sweep (datasets x samplers x seeds) and write its tables and plots.

    python source/run_benchmark.py --config configs/benchmark.yaml [--quick]
    python source/run_benchmark.py --config configs/benchmark.yaml --scheduler tcp://host:8786
    python source/run_benchmark.py --config configs/benchmark.yaml --data my.csv --target price

The code is in al_bnn_lab.benchmark; see its docstring for details.
"""

import sys

from al_bnn_lab.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
