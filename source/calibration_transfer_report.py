"""Whether the holdout calibration fitted on the copy transfers to the final model, per dataset.

    python source/calibration_transfer_report.py [--datasets NAME ...] [--models bnn] [--seeds 0 1] [--out DIR]

The code is in al_bnn_lab.calibration_transfer; see its docstring.
"""

import sys

from al_bnn_lab.calibration_transfer import main

if __name__ == "__main__":
    sys.exit(main())
