"""Benchmark the selection family (select_batch) on identical synthetic features, in one run.

    python source/bench_selection.py            # the issue's sizes (pools up to 10^6; many minutes)
    python source/bench_selection.py --quick    # small sizes, well under a minute

The code is in al_bnn_lab.bench_selection; see its docstring for details.
"""

import sys

from al_bnn_lab.bench_selection import main

if __name__ == "__main__":
    sys.exit(main())
