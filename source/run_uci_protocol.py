"""The standard UCI regression protocol: every model with its defaults on the 20 fixed train/test splits.

    python source/run_uci_protocol.py [--splits 5] [--datasets yacht energy] [--models bnn] [--out DIR]

The code is in al_bnn_lab.uci_protocol; see its docstring for details.
"""

import sys

from al_bnn_lab.uci_protocol import main

if __name__ == "__main__":
    sys.exit(main())
