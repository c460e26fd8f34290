"""Seconds per fit with and without calibration, side by side on the standard UCI splits.

    python source/bench_calibration.py [--splits 2] [--datasets yacht] [--models bnn] [--out DIR]

The code is in al_bnn_lab.bench_calibration; see its docstring.
"""

import sys

from al_bnn_lab.bench_calibration import main

if __name__ == "__main__":
    sys.exit(main())
