"""Suggest which rows of an unlabelled pool to label next (active learning on your own data).

    python source/suggest.py --labelled L.csv --target y --pool P.csv --n 20 --out DIR
    python source/suggest.py --labelled L.csv --target y --pool P.csv --n 20 --out DIR --resume-model DIR/model.npz

The code is in al_bnn.suggest; see its docstring and the README section
"Active learning on your own data: suggest".
"""

import sys

from al_bnn.suggest import main

if __name__ == "__main__":
    sys.exit(main())
