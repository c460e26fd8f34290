"""Check the study's recommendation on datasets it never used: the recommended default against random.

    python source/heldout_check.py --uci-root DIR [--datasets NAME ...] [--seeds 0 1 2 3 4] [--out DIR] [--quick]

The code is in al_bnn_lab.heldout_check; see its docstring.
"""

import sys

from al_bnn_lab.heldout_check import main

if __name__ == "__main__":
    sys.exit(main())
