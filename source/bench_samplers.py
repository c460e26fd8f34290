"""Benchmark the GPA selection methods side by side on identical samples.

    python source/bench_samplers.py            # the sizes quoted in the README (a few minutes)
    python source/bench_samplers.py --quick    # smaller sizes, under a minute

The code is in al_bnn_lab.bench_samplers; see its docstring for details.
"""

import sys

from al_bnn_lab.bench_samplers import main

if __name__ == "__main__":
    sys.exit(main())
