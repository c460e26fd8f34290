"""Compare training recipes (the old and the new default model) under random selection.

    python source/bench_models.py [--quick] [--datasets kin8nm concrete] [--workers 2]

The code is in al_bnn_lab.bench_models; see its docstring for details.
"""

import sys

from al_bnn_lab.bench_models import main

if __name__ == "__main__":
    sys.exit(main())
