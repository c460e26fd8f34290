"""Time the suggest command on a 1,000,000-row generated pool (README: "Active learning on your own data").

    python source/bench_suggest.py [--pool-rows 1000000] [--labelled-rows 1000] [--n 100]

The code is in al_bnn_lab.bench_suggest.
"""

import sys

from al_bnn_lab.bench_suggest import main

if __name__ == "__main__":
    sys.exit(main())
