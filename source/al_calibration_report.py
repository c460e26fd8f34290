"""Final-step coverage and log-likelihood of a calibrated AL benchmark sweep, paired with the uncalibrated one.

    python source/al_calibration_report.py --calibrated DIR --baseline TABLE [TABLE ...] --out DIR

The code is in al_bnn_lab.al_calibration; see its docstring.
"""

import sys

from al_bnn_lab.al_calibration import main

if __name__ == "__main__":
    sys.exit(main())
